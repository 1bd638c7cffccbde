//! The conformance suite on PostgreSQL (the server scripts/test.sh finds or starts; its URL in
//! ROSCA_TEST_PG_URL), and a lock holder killed with SIGKILL: its session dies, and PostgreSQL
//! releases the advisory lock at once.

#![cfg(feature = "postgres")]

mod conformance;

use state::{lock_with_timeout, LockError, LockInfo, PostgresBackend, StateBackend};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "ROSCA_STATE_TEST_PG_CHILD";

fn url() -> Option<String> {
    match std::env::var("ROSCA_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("ROSCA_SKIP_PG").as_deref() == Ok("1") => {
            eprintln!("ROSCA_SKIP_PG=1: PostgreSQL state tests skipped");
            None
        }
        _ => panic!("ROSCA_TEST_PG_URL is not set: run the tests with scripts/test.sh (which finds or starts PostgreSQL) or set ROSCA_SKIP_PG=1"),
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

#[test]
fn postgres_backend_conforms() {
    let Some(url) = url() else { return };
    let name = unique("conformance");
    conformance::suite(&|| Box::new(PostgresBackend::new(&url, &name).unwrap()) as Box<dyn StateBackend>);
    assert!(PostgresBackend::new(&url, &name).unwrap().list().unwrap().contains(&name));
}

/// Run by the child process: take the lock, say so, and wait to be killed.
#[test]
fn lock_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (url, name) = spec.split_once('\n').unwrap();
    let b = PostgresBackend::new(url, name).unwrap();
    let info = LockInfo::new("apply", b.location());
    b.lock(&info).unwrap();
    println!("LOCKED {}", info.id);
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(0);
}

#[test]
fn a_killed_holders_lock_is_released_by_postgresql() {
    let Some(url) = url() else { return };
    let name = unique("killed");
    let mut child = conformance::LockChild::spawn("lock_child", &[(CHILD_ENV, format!("{url}\n{name}"))], &[]);
    let id = child.id.clone();
    let b = PostgresBackend::new(&url, &name).unwrap();
    match b.lock(&LockInfo::new("plan", b.location())) {
        Err(LockError::Held(holder)) => assert_eq!(holder.id, id, "the contender names the holder"),
        other => panic!("expected Held, got {other:?}"),
    }
    child.kill();
    let start = Instant::now();
    let mine = LockInfo::new("plan", b.location());
    lock_with_timeout(&b, &mine, Duration::from_secs(30)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(10), "released with the session: {:?}", start.elapsed());
    b.unlock(&mine.id).unwrap();
}

#[test]
fn force_unlock_ends_the_holders_session() {
    let Some(url) = url() else { return };
    let name = unique("force");
    let a = PostgresBackend::new(&url, &name).unwrap();
    let b = PostgresBackend::new(&url, &name).unwrap();
    let info = LockInfo::new("apply", a.location());
    a.lock(&info).unwrap();
    assert!(matches!(b.force_unlock("other-id"), Err(LockError::NotHeld { .. })));
    b.force_unlock(&info.id).unwrap();
    let mine = LockInfo::new("plan", b.location());
    lock_with_timeout(&b, &mine, Duration::from_secs(10)).unwrap();
    b.unlock(&mine.id).unwrap();
}
