//! A `rosca serve` process serving `/state/{name}` (the HTTP state backend), for the tests that
//! run one (cli/tests/state_http.rs, cli/tests/backends.rs, cli/tests/serve_compat.rs). Included with
//! `#[path]`, next to `mod util`.

use std::process::{Child, Command, Stdio};

/// A `rosca serve` process, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rosca serve` with `rosca.toml` holding `config`; `--no-auth` when `no_auth`.
pub fn serve(config: &str, no_auth: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rosca.toml"), config).unwrap();
    let listen = format!("127.0.0.1:{}", super::util::free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rosca"));
    cmd.arg("serve");
    if no_auth {
        cmd.arg("--no-auth");
    }
    let child = cmd
        .args(["--listen", &listen, "--data-dir"])
        .arg(dir.path().join("data"))
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rosca serve starts");
    let mut server = Server { child, base: format!("http://{listen}"), _dir: dir };
    super::util::wait_serving(&mut server.child, &listen);
    server
}
