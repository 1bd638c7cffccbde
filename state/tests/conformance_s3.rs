//! The conformance suite and the lock-expiry cases on the S3 backend, against the S3 server at
//! `ROSCA_TEST_S3_ENDPOINT` (moto, started by scripts/services/s3.sh; docs/state-testbed.md).
//! Every test makes its own bucket, with a name unique to the run.

#![cfg(feature = "s3")]

mod conformance;

use state::s3::{LOCK_TTL, RENEW_INTERVAL};
use state::{lock_with_timeout, LockError, LockInfo, S3Backend, S3Config, StateBackend, StateDoc, StateError};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Set in the child process: `<endpoint> <bucket> <name>`.
const CHILD_ENV: &str = "ROSCA_STATE_TEST_S3_CHILD";

/// The endpoint, or `None` when the S3 tests are skipped on purpose.
fn endpoint() -> Option<String> {
    match std::env::var("ROSCA_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => {
            credentials();
            Some(e)
        }
        _ if std::env::var("ROSCA_SKIP_S3").as_deref() == Ok("1") => {
            eprintln!("ROSCA_SKIP_S3=1: the S3 backend tests are skipped");
            None
        }
        _ => panic!(
            "ROSCA_TEST_S3_ENDPOINT is not set: run the tests through scripts/test.sh, which starts the \
             S3 test server (moto) with scripts/services/s3.sh, or run that script and export \
             ROSCA_TEST_S3_ENDPOINT=http://127.0.0.1:9000; set ROSCA_SKIP_S3=1 to skip these tests"
        ),
    }
}

/// moto takes any key; the backend reads credentials only from the environment.
fn credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")] {
            if std::env::var(k).map_or(true, |v| v.is_empty()) {
                std::env::set_var(k, v);
            }
        }
    });
}

/// Creates a bucket named for this run. moto does not check signatures on bucket creation, so a
/// plain HTTP PUT does (object_store has no bucket API).
fn new_bucket(endpoint: &str, tag: &str) -> String {
    let bucket = format!("rosca-{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let host = endpoint.strip_prefix("http://").expect("the test S3 endpoint is http://host:port").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("cannot connect to {endpoint}: {e}"));
    write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or("");
    assert!(status.contains(" 200"), "creating bucket {bucket} at {endpoint}: {status}\n{answer}");
    bucket
}

fn config(endpoint: &str, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        endpoint: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        prefix: Some("team/prod".into()),
    }
}

fn backend(endpoint: &str, bucket: &str, name: &str) -> S3Backend {
    S3Backend::new(config(endpoint, bucket), name).unwrap()
}

fn held(err: LockError) -> LockInfo {
    match err {
        LockError::Held(info) => *info,
        other => panic!("expected Held, got {other:?}"),
    }
}

/// The object's raw bytes, read with object_store directly.
fn raw_get(endpoint: &str, bucket: &str, key: &str) -> Vec<u8> {
    use object_store::ObjectStoreExt;
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { store.get(&object_store::path::Path::from(key)).await.unwrap().bytes().await.unwrap().to_vec() })
}

/// Writes raw bytes to an object, with object_store directly.
fn raw_put(endpoint: &str, bucket: &str, key: &str, bytes: &[u8]) {
    use object_store::ObjectStore;
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .build()
        .unwrap();
    let mut attributes = object_store::Attributes::new();
    attributes.insert(object_store::Attribute::ContentType, "application/json".into());
    let opts = object_store::PutOptions { attributes, ..Default::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        store.put_opts(&object_store::path::Path::from(key), bytes.to_vec().into(), opts).await.unwrap();
    });
}

#[test]
fn s3_backend_conforms() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = new_bucket(&endpoint, "conf");
    let make = || Box::new(backend(&endpoint, &bucket, "conformance")) as Box<dyn StateBackend>;
    conformance::suite(&make);
    let b = backend(&endpoint, &bucket, "conformance");
    assert_eq!(b.location(), format!("s3://{bucket}/team/prod/conformance.state.json"));
    // What is stored is exactly the document's bytes (moto keeps a body only with a Content-Type).
    let doc = b.read().unwrap().unwrap();
    assert_eq!(raw_get(&endpoint, &bucket, "team/prod/conformance.state.json"), doc.to_bytes());
    // A second state under the prefix and one elsewhere: list names those under the prefix only.
    let other = backend(&endpoint, &bucket, "other");
    other.write(&StateDoc::new("l2".into())).unwrap();
    let elsewhere = S3Backend::new(S3Config { prefix: None, ..config(&endpoint, &bucket) }, "root").unwrap();
    elsewhere.write(&StateDoc::new("l3".into())).unwrap();
    assert_eq!(b.list().unwrap(), vec!["conformance".to_string(), "other".to_string()]);
    assert_eq!(elsewhere.list().unwrap(), vec!["root".to_string()]);
    assert_eq!(elsewhere.location(), format!("s3://{bucket}/root.state.json"));
}

#[test]
fn garbage_objects_are_errors_naming_the_key() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = new_bucket(&endpoint, "garbage");
    let b = backend(&endpoint, &bucket, "g");
    for body in [&b"not json"[..], b"", b"{\"version\": 1}", b"\xff\xfe"] {
        raw_put(&endpoint, &bucket, "team/prod/g.state.json", body);
        match b.read() {
            Err(StateError::Corrupt { location, .. }) => assert!(location.ends_with("team/prod/g.state.json"), "{location}"),
            other => panic!("garbage state {body:?}: {other:?}"),
        }
    }
    for body in [&b"nope"[..], b"", b"{\"info\": {}, \"expires\": \"x\"}", b"{\"info\": {\"ID\":\"a\",\"Operation\":\"o\",\"Who\":\"w\",\"Version\":\"v\",\"Created\":\"c\",\"Path\":\"p\"}, \"expires\": \"soon\"}"] {
        raw_put(&endpoint, &bucket, "team/prod/g.lock", body);
        let mine = LockInfo::new("apply", b.location());
        for err in [b.lock(&mine).unwrap_err(), b.lock_holder().unwrap_err(), b.force_unlock("x").unwrap_err()] {
            let text = err.to_string();
            eprintln!("{text}");
            assert!(matches!(err, LockError::Failed { .. }), "{text}");
            assert!(text.contains("team/prod/g.lock") && text.contains("not valid"), "{text}");
        }
    }
}

#[test]
fn configuration_and_connection_errors_say_what_to_do() {
    let Some(endpoint) = endpoint() else { return };
    for (bucket, name, prefix) in [("ok-bucket", "a/b", None), ("x", "a", None), ("ok-bucket", "..", None), ("ok-bucket", "a", Some("p//q"))] {
        let cfg = S3Config { bucket: bucket.into(), endpoint: Some(endpoint.clone()), region: None, prefix: prefix.map(Into::into) };
        let err = S3Backend::new(cfg, name).err().expect("refused").to_string();
        assert!(err.contains("invalid S3 backend configuration"), "{err}");
    }
    // A bucket that does not exist: named, not mistaken for an empty state.
    let b = backend(&endpoint, "rosca-no-such-bucket-here", "s");
    let err = b.read().unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("rosca-no-such-bucket-here") && err.contains("does not exist"), "{err}");
    let err = b.lock(&LockInfo::new("apply", "s")).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    // Nothing listens: the endpoint is named, and it does not take long.
    let start = Instant::now();
    let b = backend("http://127.0.0.1:9", "some-bucket", "s");
    let err = b.read().unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("http://127.0.0.1:9") && err.contains("s3://some-bucket/team/prod/s.state.json"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
}

/// The trait is sync; callers inside a tokio runtime (a worker thread or `block_on`) must work,
/// and dropping the backend there must not panic.
#[test]
fn works_from_inside_a_tokio_runtime() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = new_bucket(&endpoint, "rt");
    let run = |rt: tokio::runtime::Runtime| {
        let (endpoint, bucket) = (endpoint.clone(), bucket.clone());
        rt.block_on(async move {
            let task = tokio::spawn(async move {
                let b = backend(&endpoint, &bucket, "rt");
                let info = LockInfo::new("apply", b.location());
                b.lock(&info).unwrap();
                let mut d = b.read().unwrap().unwrap_or_else(|| StateDoc::new("rt".into()));
                d.serial += 1;
                b.write(&d).unwrap();
                drop(b); // releases the lock, from inside the runtime
                d.serial
            });
            task.await.unwrap()
        })
    };
    assert_eq!(run(tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()), 1);
    assert_eq!(run(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()), 2);
    let b = backend(&endpoint, &bucket, "rt");
    assert_eq!(b.lock_holder().unwrap(), None, "dropping released the lock");
}

/// A live holder renews its lock: past the TTL, contenders still get `Held` with its info, and
/// its writes go through. Dropping the holder releases the lock at once.
#[test]
fn a_renewing_holder_keeps_the_lock_past_the_ttl() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = new_bucket(&endpoint, "renew");
    let a = backend(&endpoint, &bucket, "r");
    let b = backend(&endpoint, &bucket, "r");
    let info = LockInfo::new("apply", a.location());
    a.lock(&info).unwrap();
    let mut d = a.read().unwrap().unwrap_or_else(|| StateDoc::new("renew".into()));
    let start = Instant::now();
    while start.elapsed() < LOCK_TTL + Duration::from_secs(5) {
        assert_eq!(held(b.lock(&LockInfo::new("plan", b.location())).unwrap_err()), info, "at {:?}", start.elapsed());
        assert_eq!(b.lock_holder().unwrap(), Some(info.clone()));
        std::thread::sleep(Duration::from_secs(2));
    }
    d.serial += 1;
    a.write(&d).unwrap();
    drop(a);
    let mine = LockInfo::new("plan", b.location());
    b.lock(&mine).unwrap();
    assert_eq!(b.read().unwrap().unwrap().serial, d.serial);
    b.unlock(&mine.id).unwrap();
}

/// A lock taken over behind a holder's back (as after a long network partition) is never deleted
/// by that holder's unlock, and once its renewal notices, its writes are refused.
#[test]
fn a_holder_whose_lock_was_taken_over_neither_writes_nor_deletes_it() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = new_bucket(&endpoint, "lost");
    let a = backend(&endpoint, &bucket, "l");
    let info = LockInfo::new("apply", a.location());
    a.lock(&info).unwrap();
    let d = a.read().unwrap().unwrap_or_else(|| StateDoc::new("lost".into()));
    let take_over = || {
        let other = LockInfo::new("apply", a.location());
        let record = serde_json::json!({
            "info": other,
            "expires": humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(300)).to_string(),
        });
        raw_put(&endpoint, &bucket, "team/prod/l.lock", &serde_json::to_vec(&record).unwrap());
        other
    };
    // Unlocked before its renewal noticed: the conditional DELETE (If-Match on its own ETag) is
    // refused, and the new holder keeps the lock.
    let other = take_over();
    a.unlock(&info.id).unwrap();
    assert_eq!(a.lock_holder().unwrap(), Some(other.clone()));
    a.force_unlock(&other.id).unwrap();
    // Its renewal notices, and writes are refused.
    a.lock(&info).unwrap();
    let other = take_over();
    std::thread::sleep(RENEW_INTERVAL + Duration::from_secs(2));
    let err = a.write(&d).unwrap_err().to_string();
    assert!(err.contains("taken over") && err.contains(&other.id) && err.contains("nothing was written"), "{err}");
    a.unlock(&info.id).unwrap();
    let b = backend(&endpoint, &bucket, "l");
    assert_eq!(b.lock_holder().unwrap(), Some(other.clone()), "the new holder's lock object stays");
    // Its unlock (a stale ETag) does not delete the new holder's lock either.
    a.lock(&LockInfo::new("plan", a.location())).unwrap_err();
    b.force_unlock(&other.id).unwrap();
    assert_eq!(b.lock_holder().unwrap(), None);
}

/// Runs in a child process (the test binary itself): takes the lock, writes the state, then
/// waits to be killed.
#[test]
fn s3_lock_child() {
    let Ok(args) = std::env::var(CHILD_ENV) else { return };
    let mut parts = args.split(' ');
    let (Some(endpoint), Some(bucket), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("{CHILD_ENV}={args:?}")
    };
    credentials();
    let b = backend(endpoint, bucket, name);
    let info = LockInfo::new("apply", b.location());
    b.lock(&info).unwrap();
    let mut d = b.read().unwrap().unwrap();
    d.serial += 1;
    d.outputs.insert("written_by".into(), state::OutputState { value: serde_json::json!("child"), sensitive: false });
    b.write(&d).unwrap();
    println!("LOCKED {}", info.id);
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(0);
}

/// The holder is killed with SIGKILL: its lock object stays until it expires, then a contender
/// takes it over; the child's write is there, and a handle that read before it is refused.
#[test]
fn the_lock_of_a_killed_holder_is_taken_over_after_the_ttl() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = new_bucket(&endpoint, "killed");
    let setup = backend(&endpoint, &bucket, "k");
    setup.read().unwrap();
    setup.write(&StateDoc::new("killed".into())).unwrap();
    let stale = backend(&endpoint, &bucket, "k");
    let before = stale.read().unwrap().unwrap();

    let mut child = conformance::LockChild::spawn("s3_lock_child", &[(CHILD_ENV, format!("{endpoint} {bucket} k"))], &[]);
    let id = child.id.clone();

    let b = backend(&endpoint, &bucket, "k");
    assert_eq!(held(b.lock(&LockInfo::new("plan", b.location())).unwrap_err()).id, id);
    child.kill();
    let killed = Instant::now();
    assert_eq!(b.lock_holder().unwrap().map(|h| h.id), Some(id.clone()), "the dead holder's lock stays until it expires");

    let mine = LockInfo::new("apply", b.location());
    lock_with_timeout(&b, &mine, Duration::from_secs(60)).unwrap();
    let took = killed.elapsed();
    eprintln!("lock taken over {:.1}s after the SIGKILL (TTL {:?}, renewed every {:?})", took.as_secs_f64(), LOCK_TTL, RENEW_INTERVAL);
    assert!(took >= LOCK_TTL - RENEW_INTERVAL - Duration::from_secs(2), "taken over before it expired: {took:?}");
    assert!(took < LOCK_TTL + Duration::from_secs(10), "{took:?}");
    assert_eq!(b.lock_holder().unwrap(), Some(mine.clone()));

    // The child's update is there; the new holder reads and writes.
    let mut d = b.read().unwrap().unwrap();
    assert_eq!(d.serial, before.serial + 1);
    assert!(d.outputs.contains_key("written_by"));
    d.serial += 1;
    b.write(&d).unwrap();
    // A handle that read before the child wrote is refused: no update is lost.
    let mut old = before.clone();
    old.serial += 1;
    assert!(matches!(stale.write(&old), Err(StateError::Conflict { .. })));
    assert_eq!(backend(&endpoint, &bucket, "k").read().unwrap().unwrap(), d);
    b.unlock(&mine.id).unwrap();
    assert_eq!(b.lock_holder().unwrap(), None);
}
