//! The conformance suite and the etcd-specific cases on a real etcd (scripts/services/etcd.sh),
//! at the endpoints in `ROSCA_TEST_ETCD_ENDPOINTS` (comma-separated). Each run uses its own
//! state names (pid and time), and removes its keys at the end.
#![cfg(feature = "etcd")]

mod conformance;

use state::etcd::LOCK_TTL_SECS;
use state::{lock_with_timeout, EtcdBackend, LockError, LockInfo, StateBackend, StateDoc, StateError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ENDPOINTS_ENV: &str = "ROSCA_TEST_ETCD_ENDPOINTS";
const CHILD_ENV: &str = "ROSCA_STATE_TEST_ETCD_LOCK_CHILD";

/// The endpoints to test against, or `None` (with a message) when `ROSCA_SKIP_ETCD=1`.
fn endpoints() -> Option<Vec<String>> {
    match std::env::var(ENDPOINTS_ENV) {
        Ok(v) if !v.trim().is_empty() => Some(v.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect()),
        _ if std::env::var("ROSCA_SKIP_ETCD").as_deref() == Ok("1") => {
            eprintln!("ROSCA_SKIP_ETCD=1 and {ENDPOINTS_ENV} unset: etcd backend tests skipped");
            None
        }
        _ => panic!(
            "{ENDPOINTS_ENV} is not set: run the tests through scripts/test.sh (it starts etcd), or start etcd with \
             scripts/services/etcd.sh and export {ENDPOINTS_ENV}=http://127.0.0.1:2379 \
             (ROSCA_SKIP_ETCD=1 skips these tests)"
        ),
    }
}

fn unique(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("test-{tag}-{}-{nanos}", std::process::id())
}

fn backend(endpoints: &[String], name: &str) -> EtcdBackend {
    EtcdBackend::new(endpoints.to_vec(), name).unwrap()
}

/// Deletes a test's keys (state and lock) when it ends, whatever happens.
struct Cleanup {
    endpoints: Vec<String>,
    name: String,
}
impl Drop for Cleanup {
    fn drop(&mut self) {
        let endpoints = self.endpoints.clone();
        let name = self.name.clone();
        // A runtime of its own on a thread of its own: this may run while a test panics.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut c = etcd_client::Client::connect(endpoints, None).await.ok()?;
                let _ = c.delete(format!("rosca/states/{name}"), None).await;
                let _ = c.delete(format!("rosca/locks/{name}"), None).await;
                let _ = c.delete(format!("rosca/journal/{name}/"), Some(etcd_client::DeleteOptions::new().with_prefix())).await;
                Some(())
            })
        })
        .join();
    }
}

fn put_raw(endpoints: &[String], key: &str, value: &[u8]) {
    let endpoints = endpoints.to_vec();
    let (key, value) = (key.to_string(), value.to_vec());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = etcd_client::Client::connect(endpoints, None).await.unwrap();
        c.put(key, value, None).await.unwrap();
    });
}

fn held(err: LockError) -> LockInfo {
    match err {
        LockError::Held(info) => *info,
        other => panic!("expected Held, got {other:?}"),
    }
}

#[test]
fn etcd_backend_conforms() {
    let Some(eps) = endpoints() else { return };
    let name = unique("conformance");
    let _cleanup = Cleanup { endpoints: eps.clone(), name: name.clone() };
    conformance::suite(&|| Box::new(backend(&eps, &name)) as Box<dyn StateBackend>);
    assert!(backend(&eps, &name).list().unwrap().contains(&name), "list names the state");
}

#[test]
fn location_keys_and_list() {
    let Some(eps) = endpoints() else { return };
    let name = unique("list");
    let _cleanup = Cleanup { endpoints: eps.clone(), name: name.clone() };
    let b = backend(&eps, &name);
    let host = eps[0].trim_start_matches("http://").trim_end_matches('/');
    assert_eq!(b.location(), format!("etcd://{host}/rosca/states/{name}"));
    assert_eq!(b.state_key(), format!("rosca/states/{name}"));
    assert_eq!(b.lock_key(), format!("rosca/locks/{name}"));
    assert!(!b.list().unwrap().contains(&name), "no state yet");
    b.write(&StateDoc::new("lineage-list".into())).unwrap();
    let names = b.list().unwrap();
    assert!(names.contains(&name), "{names:?}");
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted: {names:?}");
}

#[test]
fn invalid_settings_are_errors_not_panics() {
    for (endpoints, name, expect) in [
        (vec![], "x", "no etcd endpoint"),
        (vec!["  ".to_string()], "x", "no etcd endpoint"),
        (vec!["https://127.0.0.1:2379".to_string()], "x", "TLS"),
        (vec!["http://127.0.0.1:2379/some/path".to_string()], "x", "not an etcd client URL"),
        (vec!["http://127.0.0.1:2379".to_string()], "", "invalid state name"),
        (vec!["http://127.0.0.1:2379".to_string()], "a/b", "invalid state name"),
        (vec!["http://127.0.0.1:2379".to_string()], "a\nb", "invalid state name"),
    ] {
        match EtcdBackend::new(endpoints.clone(), name) {
            Ok(_) => panic!("{endpoints:?} {name:?} accepted"),
            Err(e) => assert!(e.to_string().contains(expect), "{endpoints:?} {name:?}: {e}"),
        }
    }
}

#[test]
fn an_unreachable_etcd_is_named_in_the_error() {
    // Nothing listens on port 1: every call fails within the timeout, naming the endpoint.
    let b = EtcdBackend::new(vec!["http://127.0.0.1:1".into()], "unreachable")
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let start = Instant::now();
    let err = b.read().unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("127.0.0.1:1") && err.contains("rosca/states/unreachable"), "{err}");
    assert!(err.contains("check that etcd runs"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    let err = b.lock(&LockInfo::new("apply", b.location())).unwrap_err();
    assert!(matches!(err, LockError::Failed { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(b.list().is_err() && b.lock_holder().is_err());
}

#[test]
fn garbage_under_the_keys_is_reported_with_the_key() {
    let Some(eps) = endpoints() else { return };
    let name = unique("corrupt");
    let _cleanup = Cleanup { endpoints: eps.clone(), name: name.clone() };
    let b = backend(&eps, &name);
    put_raw(&eps, b.state_key(), b"this is not json \xff");
    match b.read() {
        Err(e @ StateError::Corrupt { .. }) => {
            eprintln!("{e}");
            assert!(e.to_string().contains(b.state_key()), "{e}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    put_raw(&eps, b.lock_key(), b"{\"not\": \"a lock\"}");
    for err in [
        b.lock(&LockInfo::new("apply", b.location())).unwrap_err(),
        b.lock_holder().unwrap_err(),
        b.force_unlock("some-id").unwrap_err(),
    ] {
        let text = err.to_string();
        eprintln!("{text}");
        assert!(matches!(err, LockError::Failed { .. }), "{err:?}");
        assert!(text.contains(b.lock_key()) && text.contains("etcdctl"), "{text}");
    }
}

#[test]
fn dropping_releases_the_lock_and_works_inside_a_runtime() {
    let Some(eps) = endpoints() else { return };
    let name = unique("drop");
    let _cleanup = Cleanup { endpoints: eps.clone(), name: name.clone() };
    // Called from a thread that runs a tokio runtime: no nested block_on, no panic on drop.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (eps2, name2) = (eps.clone(), name.clone());
    let id = rt.block_on(async move {
        let a = backend(&eps2, &name2);
        let info = LockInfo::new("apply", a.location());
        a.lock(&info).unwrap();
        a.lock(&info).unwrap(); // same ID again: already ours
        assert!(a.read().unwrap().is_none());
        a.write(&StateDoc::new("lineage-drop".into())).unwrap();
        assert_eq!(held(backend(&eps2, &name2).lock(&LockInfo::new("plan", "x")).unwrap_err()), info);
        drop(a);
        info.id
    });
    let b = backend(&eps, &name);
    assert_eq!(b.lock_holder().unwrap(), None, "drop released lock {id}");
    let mine = LockInfo::new("plan", b.location());
    b.lock(&mine).unwrap();
    b.unlock(&mine.id).unwrap();
    assert!(matches!(b.unlock(&mine.id), Err(LockError::NotHeld { .. })), "unlocking twice fails");
}

/// Runs in a child process (the test binary itself): takes the lock, writes the state once as
/// an apply would (serial + 1, a resource of its own), then waits to be killed.
#[test]
fn lock_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (eps, name) = spec.split_once('|').expect("ENDPOINTS|NAME");
    let eps: Vec<String> = eps.split(',').map(str::to_string).collect();
    let b = backend(&eps, name);
    let info = LockInfo::new("apply", b.location());
    b.lock(&info).unwrap();
    let mut doc = b.read().unwrap().unwrap();
    doc.serial += 1;
    doc.outputs.insert("written_by_child".into(), state::OutputState { value: serde_json::json!(true), sensitive: false });
    b.write(&doc).unwrap();
    println!("LOCKED {}", info.id);
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(0);
}

#[test]
fn lock_of_a_killed_holder_expires_and_is_taken_over() {
    let Some(eps) = endpoints() else { return };
    let name = unique("sigkill");
    let _cleanup = Cleanup { endpoints: eps.clone(), name: name.clone() };
    let b = backend(&eps, &name);
    let mut first = StateDoc::new("lineage-sigkill".into());
    first.serial = 1;
    b.write(&first).unwrap();
    // A handle that read before the child's write: its view goes stale.
    let stale = backend(&eps, &name);
    let stale_doc = stale.read().unwrap().unwrap();

    let mut child = conformance::LockChild::spawn("lock_child", &[(CHILD_ENV, format!("{}|{name}", eps.join(",")))], &["ROSCA_SKIP_ETCD"]);
    let id = child.id.clone();
    let mine = LockInfo::new("apply", b.location());
    assert_eq!(held(b.lock(&mine).unwrap_err()).id, id, "the child holds it");
    // Alive, the child renews its lease: the lock outlives the TTL.
    std::thread::sleep(Duration::from_secs(LOCK_TTL_SECS as u64 + 2));
    assert_eq!(b.lock_holder().unwrap().map(|h| h.id), Some(id.clone()), "a live holder keeps the lock");

    child.kill();
    let killed = Instant::now();
    // A watcher polls the lock key, to measure when etcd dropped it (lock_with_timeout's
    // backoff, up to 4 s +50% between attempts, adds to the takeover time).
    let watcher = {
        let w = backend(&eps, &name);
        std::thread::spawn(move || {
            while killed.elapsed() < Duration::from_secs(30) {
                match w.lock_holder() {
                    Ok(Some(h)) if h.id == id => std::thread::sleep(Duration::from_millis(100)),
                    _ => return Some(killed.elapsed()),
                }
            }
            None
        })
    };
    lock_with_timeout(&b, &mine, Duration::from_secs(30)).unwrap();
    let took = killed.elapsed();
    let freed = watcher.join().unwrap().expect("the dead holder's lock key was never removed");
    eprintln!("after SIGKILL: lock key removed by etcd after {freed:?}, taken over after {took:?} (TTL {LOCK_TTL_SECS} s)");
    assert!(freed <= Duration::from_secs(LOCK_TTL_SECS as u64 + 2), "{freed:?}");
    assert!(took <= Duration::from_secs(LOCK_TTL_SECS as u64 + 10), "{took:?}");
    assert_eq!(b.lock_holder().unwrap(), Some(mine.clone()));

    // The child's update is there (nothing lost), and the new holder writes on top of it.
    let mut now = b.read().unwrap().unwrap();
    assert_eq!(now.serial, 2);
    assert!(now.outputs.contains_key("written_by_child"));
    now.serial += 1;
    b.write(&now).unwrap();
    // The handle that read before the takeover is refused and writes nothing.
    let mut late = stale_doc.clone();
    late.serial += 1;
    match stale.write(&late) {
        Err(e @ StateError::Conflict { .. }) => {
            eprintln!("{e}");
            assert!(e.to_string().contains("revision"), "{e}")
        }
        other => panic!("a stale handle must be refused, got {other:?}"),
    }
    assert_eq!(backend(&eps, &name).read().unwrap().unwrap(), now);
    b.unlock(&mine.id).unwrap();
}
