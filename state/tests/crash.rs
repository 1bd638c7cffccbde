//! kill -9 of a process in the middle of an apply: every change whose `put` returned is in the
//! state the next run reads.

mod common;

use common::res;
use state::{LocalBackend, PendingOp, ResourceStatus, StateBackend, StateDoc, StateWriter};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const CHILD_ENV: &str = "ROSCA_STATE_TEST_CRASH_CHILD";
const ITERATIONS: u64 = 20;

/// Runs in a child process (the test binary itself): the write-ahead pattern of the applier,
/// `pending` then `created`, reporting each completed resource on stdout.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let Some((iteration, path)) = spec.split_once(':') else { return };
    let backend = Arc::new(LocalBackend::new(path.into()));
    let doc = backend.read().unwrap().unwrap_or_else(|| StateDoc::new(String::new()));
    let writer = StateWriter::new(backend, doc);
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000u32 {
        let address = format!("it{iteration}[{i}]");
        let mut r = res(&address, "");
        r.id = None;
        r.status = ResourceStatus::Pending;
        r.pending = Some(PendingOp { action: "create".into(), started: "2026-01-01T00:00:00Z".into() });
        writer.put(r).unwrap();
        writer.put(res(&address, &format!("id-{i}"))).unwrap();
        writeln!(out, "APPENDED {}", i + 1).unwrap();
        out.flush().unwrap();
    }
    std::process::exit(0);
}

/// A small xorshift generator: random kill points without a dependency; the seed is printed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill_9_loses_no_reported_change() {
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rosca.state.json");
    let mut reported: Vec<u32> = Vec::new();
    for iteration in 0..ITERATIONS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{iteration}:{}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let target = 1 + rng.below(400) as u32;
        let mut count = 0;
        while count < target {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some((_, n)) = line.split_once("APPENDED ") {
                        count = n.trim().parse().unwrap();
                    }
                }
                _ => panic!("child {iteration} stopped early (seed {seed})"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines written before the kill were written after their put returned.
        for line in lines.map_while(Result::ok) {
            if let Some((_, n)) = line.split_once("APPENDED ") {
                count = count.max(n.trim().parse().unwrap_or(0));
            }
        }
        reported.push(count);

        let doc = LocalBackend::new(path.clone())
            .read()
            .unwrap_or_else(|e| panic!("iteration {iteration} (seed {seed}): {e}"))
            .expect("state exists");
        for (it, &n) in reported.iter().enumerate() {
            for i in 0..n {
                let address = format!("it{it}[{i}]");
                let r = doc.resource(&address).unwrap_or_else(|| {
                    panic!("iteration {iteration} (seed {seed}): {address} reported but missing")
                });
                assert_eq!(r.status, ResourceStatus::Created, "{address}");
                assert_eq!(r.id.as_deref(), Some(format!("id-{i}").as_str()));
            }
        }
        // The one being created at the kill, if any, is recorded as pending (never lost).
        let in_flight = format!("it{iteration}[{count}]");
        if let Some(r) = doc.resource(&in_flight) {
            assert!(matches!(r.status, ResourceStatus::Pending | ResourceStatus::Created));
        }
        // Serial moves once per run that changed something.
        assert_eq!(doc.serial, iteration + 1, "seed {seed}");
    }
}
