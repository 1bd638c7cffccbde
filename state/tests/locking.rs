//! Locks: two backends on one path, the timeout loop, force-unlock, a holder that dies.

mod common;
mod conformance;

use state::{lock_with_timeout, LocalBackend, LockError, LockInfo, StateBackend};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "ROSCA_STATE_TEST_LOCK_CHILD";

fn held(err: LockError) -> LockInfo {
    match err {
        LockError::Held(info) => *info,
        other => panic!("expected Held, got {other:?}"),
    }
}

#[test]
fn second_backend_gets_held_with_the_first_ones_info() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let a = LocalBackend::new(path.clone());
    let b = LocalBackend::new(path.clone());
    let info = LockInfo::new("apply", path.display().to_string());
    a.lock(&info).unwrap();
    a.lock(&info).unwrap(); // same ID again: already ours
    let mine = LockInfo::new("plan", path.display().to_string());
    assert_eq!(held(b.lock(&mine).unwrap_err()), info);
    assert_eq!(b.lock_holder().unwrap(), Some(info.clone()));
    // The sidecar has Terraform's field names.
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.lock_info_path()).unwrap()).unwrap();
    for key in ["ID", "Operation", "Info", "Who", "Version", "Created", "Path"] {
        assert!(sidecar.get(key).is_some(), "{key} missing in {sidecar}");
    }
    assert!(matches!(b.unlock(&info.id), Err(LockError::NotHeld { .. })));
    a.unlock(&info.id).unwrap();
    assert!(!a.lock_info_path().exists());
    assert_eq!(b.lock_holder().unwrap(), None);
    b.lock(&mine).unwrap();
    drop(b); // dropping releases
    a.lock(&info).unwrap();
}

#[test]
fn lock_with_timeout_gives_up_with_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let a = LocalBackend::new(path.clone());
    let info = LockInfo::new("apply", "s.json");
    a.lock(&info).unwrap();
    let b = LocalBackend::new(path);
    let start = Instant::now();
    let err = lock_with_timeout(&b, &LockInfo::new("plan", "s.json"), Duration::from_secs(1)).unwrap_err();
    let took = start.elapsed();
    assert_eq!(held(err), info);
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{took:?}");
    // Zero timeout: one attempt.
    let start = Instant::now();
    assert!(lock_with_timeout(&b, &LockInfo::new("plan", "s.json"), Duration::ZERO).is_err());
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[test]
fn lock_with_timeout_succeeds_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let a = LocalBackend::new(path.clone());
    let info = LockInfo::new("apply", "s.json");
    a.lock(&info).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        a.unlock(&info.id).unwrap();
    });
    let b = LocalBackend::new(path);
    lock_with_timeout(&b, &LockInfo::new("plan", "s.json"), Duration::from_secs(10)).unwrap();
    releaser.join().unwrap();
}

#[test]
fn force_unlock_checks_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let b = LocalBackend::new(path.clone());
    let err = b.force_unlock("nope").unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    // A sidecar left by a holder that died (no OS lock held).
    let stale = LockInfo::new("apply", "s.json");
    std::fs::write(b.lock_info_path(), serde_json::to_vec(&stale).unwrap()).unwrap();
    assert_eq!(b.lock_holder().unwrap(), None, "a stale sidecar is not a holder");
    let err = b.force_unlock("wrong-id").unwrap_err();
    assert!(matches!(err, LockError::NotHeld { .. }));
    let msg = err.to_string();
    assert!(msg.contains("wrong-id") && msg.contains(&stale.id), "{msg}");
    b.force_unlock(&stale.id).unwrap();
    assert!(!b.lock_info_path().exists());
    // Our own lock can be force-unlocked too.
    let mine = LockInfo::new("apply", "s.json");
    b.lock(&mine).unwrap();
    b.force_unlock(&mine.id).unwrap();
    assert_eq!(b.lock_holder().unwrap(), None);
}

#[test]
fn stale_sidecar_does_not_block_and_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(dir.path().join("s.json"));
    let stale = LockInfo::new("apply", "s.json");
    std::fs::write(b.lock_info_path(), serde_json::to_vec(&stale).unwrap()).unwrap();
    let mine = LockInfo::new("plan", "s.json");
    b.lock(&mine).unwrap();
    let now: LockInfo = serde_json::from_slice(&std::fs::read(b.lock_info_path()).unwrap()).unwrap();
    assert_eq!(now, mine);
}

/// Runs in a child process (the test binary itself): takes the lock and waits to be killed.
#[test]
fn lock_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let b = LocalBackend::new(path.clone().into());
    let info = LockInfo::new("apply", path);
    b.lock(&info).unwrap();
    println!("LOCKED {}", info.id);
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(0);
}

#[test]
fn lock_of_a_killed_process_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let mut child = conformance::LockChild::spawn("lock_child", &[(CHILD_ENV, path.display().to_string())], &[]);
    let id = child.id.clone();
    let b = LocalBackend::new(path.clone());
    let holder = held(b.lock(&LockInfo::new("plan", "s.json")).unwrap_err());
    assert_eq!(holder.id, id);
    assert_eq!(b.lock_holder().unwrap().map(|h| h.id), Some(id.clone()));
    // force-unlock cannot break a live process's OS lock, and says so; its info stays.
    let err = b.force_unlock(&id).unwrap_err().to_string();
    assert!(err.contains("still running") && err.contains("cannot be broken"), "{err}");
    assert!(b.lock_info_path().exists());
    child.kill();
    // The OS released the lock; the dead holder's sidecar remains but does not block.
    assert!(b.lock_info_path().exists());
    assert_eq!(b.lock_holder().unwrap(), None);
    let mine = LockInfo::new("plan", "s.json");
    b.lock(&mine).unwrap();
    assert_eq!(b.lock_holder().unwrap(), Some(mine));
}
