//! Harness of the end-to-end workflow tests (cli/tests/workflow.rs), in the manner of ripgrep's
//! tests/util.rs: a `Workdir` is a fresh temporary directory in which the real `rosca` binary
//! runs with that directory as its current directory, so its state (rosca.state.json, journal,
//! lock) and the local provider's sandboxes (.rosca/sandboxes) live there and nowhere else.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The repository's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures").canonicalize().expect("fixtures/")
}

/// An example template, as an absolute path string: `example("hello/hello.yaml")`.
pub fn example(rel: &str) -> String {
    fixtures().join("examples").join(rel).display().to_string()
}

/// A template of this test suite (fixtures/cli/workflow), as an absolute path string.
pub fn workflow_fixture(rel: &str) -> String {
    fixtures().join("cli/workflow").join(rel).display().to_string()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// `GET` of an `http://host:port/path` URL over a plain TcpStream; the response body, or
/// `None` when nothing answers.
pub fn http_get(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = hostport.to_socket_addrs().ok()?.next()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "GET {url}: {head}");
    Some(body.to_string())
}

/// Whether something accepts connections on 127.0.0.1:port.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

/// The process's output as text, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary working directory for one test. Dropping it kills every background process a
/// lifecycle script recorded in a `*.pid` file under .rosca/sandboxes (the hello and
/// three-tier web servers), so a failing test leaves no server behind, then removes the directory.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new(name: &str) -> Workdir {
        let dir = tempfile::Builder::new().prefix(&format!("rosca-e2e-{name}-")).tempdir().expect("temp dir");
        Workdir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rosca ARGS` in this directory: no colour, stdin closed (no terminal).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("rosca"));
        c.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run rosca")
    }

    /// Runs `rosca ARGS` and asserts its exit code.
    pub fn expect(&self, code: i32, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "rosca {}\n{}", args.join(" "), show(&out));
        out
    }

    /// Runs `rosca ARGS`, asserts exit 0 and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        stdout(&self.expect(0, args))
    }

    /// The state as `rosca state pull` prints it (snapshot with the journal replayed).
    pub fn state(&self) -> Value {
        let out = self.ok(&["state", "pull"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("state pull is not JSON: {e}\n{out}"))
    }

    /// The state's addresses, sorted.
    pub fn addresses(&self) -> Vec<String> {
        let mut v: Vec<String> = resources(&self.state()).iter().map(|r| r["address"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    }

    /// One resource of the state.
    pub fn resource(&self, address: &str) -> Option<Value> {
        resources(&self.state()).into_iter().find(|r| r["address"] == address)
    }

    pub fn sandboxes_dir(&self) -> PathBuf {
        self.path().join(".rosca/sandboxes")
    }

    /// Names of the sandbox directories on disk.
    pub fn sandboxes(&self) -> BTreeSet<String> {
        match std::fs::read_dir(self.sandboxes_dir()) {
            Ok(rd) => rd.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => BTreeSet::new(),
        }
    }

    /// Copies a directory of fixtures/cli/workflow into this directory (to edit it); returns
    /// the copy's path.
    pub fn copy_fixture(&self, rel: &str) -> PathBuf {
        let from = fixtures().join("cli/workflow").join(rel);
        let to = self.path().join("tpl").join(rel);
        copy_dir(&from, &to);
        to
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let Ok(rd) = std::fs::read_dir(self.sandboxes_dir()) else { return };
        for sandbox in rd.filter_map(|e| e.ok()) {
            let Ok(files) = std::fs::read_dir(sandbox.path()) else { continue };
            for f in files.filter_map(|e| e.ok()) {
                if f.path().extension().is_some_and(|x| x == "pid") {
                    if let Ok(pid) = std::fs::read_to_string(f.path()) {
                        let pid = pid.trim();
                        if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
                            let _ = Command::new("kill").args(["-9", pid]).stderr(Stdio::null()).status();
                        }
                    }
                }
            }
        }
    }
}

/// The `resources` array of a state document.
pub fn resources(state: &Value) -> Vec<Value> {
    state["resources"].as_array().cloned().unwrap_or_default()
}

/// The sandbox directory names the state refers to: `attributes.sandbox` and the local
/// provider's `private.dir` of every resource.
pub fn referenced_sandboxes(state: &Value) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for r in resources(state) {
        for v in [&r["attributes"]["sandbox"], &r["private"]["dir"]] {
            if let Some(p) = v.as_str() {
                if let Some(name) = Path::new(p).file_name() {
                    set.insert(name.to_string_lossy().into_owned());
                }
            }
        }
    }
    set
}

/// The local provider's file name of an address (`web[0]` → `web-0`), as in providers/src/local.
pub fn safe_name(address: &str) -> String {
    let mut s: String = address.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '-' }).collect();
    while s.ends_with('-') {
        s.pop();
    }
    s
}

/// A tiny deterministic PRNG (xorshift64*), so the crash test needs no extra crate and a
/// failing run can be repeated with its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Waits until the `rosca serve` process `child` answers `/healthz` on `listen`; panics if it
/// exits first or 30 s pass.
pub fn wait_serving(child: &mut std::process::Child, listen: &str) {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("rosca serve exited early: {status}");
        }
        if TcpStream::connect(listen).is_ok() {
            let ok = reqwest::blocking::get(format!("http://{listen}/healthz")).map(|r| r.status().is_success()).unwrap_or(false);
            if ok {
                return;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "rosca serve did not answer on {listen}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
