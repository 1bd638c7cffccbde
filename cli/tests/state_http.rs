//! The CLI's `http` state backend (`state::HttpBackend`) against the real `rosca serve`
//! (`/state/{name}`): the shared conformance suite, a lock holder killed with SIGKILL whose lock
//! the server expires so a contender takes over without losing its write, and ownership with
//! authentication on (a second user gets 403 on the first user's state).

#[path = "../../state/tests/conformance/mod.rs"]
mod conformance;
mod util;
#[path = "util/state_server.rs"]
mod state_server;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use state::{lock_with_timeout, HttpAuth, HttpBackend, LockError, LockInfo, StateBackend, StateDoc, StateError};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use state_server::serve;
use std::process::Command;
use std::time::{Duration, Instant};

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

fn backend(url: &str) -> HttpBackend {
    HttpBackend::new(url, HttpAuth::None).unwrap()
}

#[test]
fn http_backend_conforms_against_rosca_serve() {
    let server = serve("", true);
    let name = unique("conformance");
    let url = format!("{}/state/{name}", server.base);
    conformance::suite(&|| Box::new(backend(&url)) as Box<dyn StateBackend>);
    let listed = backend(&url).list().unwrap();
    assert!(listed.contains(&name), "{listed:?}");
    // Deployments' states are another namespace: the REST API lists no deployment.
    let deployments: serde_json::Value = reqwest::blocking::get(format!("{}/deployments", server.base)).unwrap().json().unwrap();
    assert_eq!(deployments["page"]["totalElements"], 0, "{deployments}");
}

#[test]
fn the_protocol_answers_as_terraform_expects() {
    let server = serve("", true);
    let url = format!("{}/state/{}", server.base, unique("proto"));
    let c = reqwest::blocking::Client::new();
    assert_eq!(c.get(&url).send().unwrap().status(), 204, "no state yet");
    let info = LockInfo::new("apply", url.clone());
    let lock = |method: &str, info: &LockInfo| c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), &url).json(info).send().unwrap();
    assert_eq!(lock("LOCK", &info).status(), 200);
    let other = LockInfo::new("plan", url.clone());
    let r = lock("LOCK", &other);
    assert_eq!(r.status(), 423);
    assert_eq!(r.json::<LockInfo>().unwrap(), info, "the body is the holder's LockInfo");
    // A write naming another lock, or none, is refused with the holder.
    let body = StateDoc::new("lineage-proto".into()).to_bytes();
    let r = c.post(format!("{url}?ID={}", other.id)).body(body.clone()).send().unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<LockInfo>().unwrap().id, info.id);
    assert_eq!(c.post(&url).body(body.clone()).send().unwrap().status(), 409);
    let r = c.post(format!("{url}?ID={}", info.id)).body(body.clone()).send().unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = c.get(&url).send().unwrap();
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(r.bytes().unwrap().to_vec(), body);
    // Stale If-Match and If-None-Match: * on an existing state: 412.
    let r = c.post(format!("{url}?ID={}", info.id)).header("If-Match", "\"stale\"").body(body.clone()).send().unwrap();
    assert_eq!(r.status(), 412);
    let r = c.post(format!("{url}?ID={}", info.id)).header("If-None-Match", "*").body(body.clone()).send().unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(c.get(format!("{url}/lock")).send().unwrap().json::<LockInfo>().unwrap(), info);
    assert_eq!(lock("UNLOCK", &other).status(), 409, "another ID does not unlock");
    assert_eq!(lock("UNLOCK", &info).status(), 200);
    assert_eq!(c.get(format!("{url}/lock")).send().unwrap().status(), 204);
    assert_eq!(c.delete(&url).send().unwrap().status(), 405);
    assert_eq!(c.get(format!("{}/state/bad%20name", server.base)).send().unwrap().status(), 400);
}

const CHILD_ENV: &str = "ROSCA_STATE_HTTP_TEST_CHILD";

/// Run by the child process: take the lock, write, say so, and wait to be killed.
#[test]
fn lock_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else { return };
    let b = backend(&url);
    let info = LockInfo::new("apply", b.location());
    b.lock(&info).unwrap();
    let mut doc = b.read().unwrap().unwrap_or_else(|| StateDoc::new("lineage-killed".into()));
    doc.serial += 1;
    b.write(&doc).unwrap();
    println!("LOCKED {}", info.id);
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(0);
}

#[test]
fn a_killed_holders_lock_expires_and_is_taken_over() {
    let ttl = Duration::from_secs(3);
    let server = serve("[server]\nstate_lock_ttl = \"3s\"\n", true);
    let url = format!("{}/state/{}", server.base, unique("killed"));
    let mut child = conformance::LockChild::spawn("lock_child", &[(CHILD_ENV, url.clone())], &[]);
    let id = child.id.clone();
    let b = backend(&url);
    match b.lock(&LockInfo::new("plan", b.location())) {
        Err(LockError::Held(holder)) => assert_eq!(holder.id, id, "the contender names the holder"),
        other => panic!("expected Held, got {other:?}"),
    }
    let killed = Instant::now();
    child.kill();
    let mine = LockInfo::new("plan", b.location());
    lock_with_timeout(&b, &mine, Duration::from_secs(30)).unwrap();
    let waited = killed.elapsed();
    assert!(waited < ttl + Duration::from_secs(10), "the lock expired within its TTL: {waited:?}");
    // The dead holder's write is there; the taker builds on it.
    let mut doc = b.read().unwrap().expect("the holder's write survives");
    assert_eq!(doc.serial, 1);
    doc.serial += 1;
    b.write(&doc).unwrap();
    b.unlock(&mine.id).unwrap();
    assert_eq!(backend(&url).read().unwrap().unwrap().serial, 2);
}

/// `rosca serve`'s locks lapse after `state_lock_ttl`, but a live holder renews its lock in the
/// background: idle for several TTLs, it still holds it and a contender is refused; after
/// unlock (or drop) the renewals stop and the lock is free, and a force-unlocked holder's
/// renewals never take the lock back.
#[test]
fn a_live_holder_keeps_its_lock_past_the_ttl() {
    let ttl = Duration::from_secs(1);
    let server = serve("[server]\nstate_lock_ttl = \"1s\"\n", true);
    let url = format!("{}/state/{}", server.base, unique("renewed"));
    let (holder, contender) = (backend(&url), backend(&url));
    let info = LockInfo::new("apply", holder.location());
    holder.lock(&info).unwrap();
    std::thread::sleep(ttl * 4);
    match contender.lock(&LockInfo::new("plan", contender.location())) {
        Err(LockError::Held(h)) => assert_eq!(*h, info, "the contender is refused, naming the holder"),
        other => panic!("the holder's lock lapsed although it is alive: {other:?}"),
    }
    let mut doc = StateDoc::new("lineage-renewed".into());
    doc.serial = 1;
    holder.write(&doc).unwrap();
    holder.unlock(&info.id).unwrap();
    let mine = LockInfo::new("plan", contender.location());
    contender.lock(&mine).unwrap();
    // Past several TTLs, the contender (renewing too) still holds it: the first holder's
    // renewals stopped with its unlock.
    std::thread::sleep(ttl * 3);
    assert_eq!(backend(&url).lock_holder().unwrap(), Some(mine.clone()));
    contender.unlock(&mine.id).unwrap();

    // Dropping a holder stops its renewals and releases the lock.
    let dropped = backend(&url);
    dropped.lock(&LockInfo::new("apply", dropped.location())).unwrap();
    drop(dropped);
    assert_eq!(backend(&url).lock_holder().unwrap(), None);

    // A force-unlock sticks although the holder is alive and renewing.
    let alive = backend(&url);
    let theirs = LockInfo::new("apply", alive.location());
    alive.lock(&theirs).unwrap();
    backend(&url).force_unlock(&theirs.id).unwrap();
    std::thread::sleep(ttl * 2);
    assert_eq!(backend(&url).lock_holder().unwrap(), None, "a renewal re-took a broken lock");
    let next = LockInfo::new("plan", contender.location());
    contender.lock(&next).unwrap();
    match alive.write(&doc) {
        Err(StateError::Lock(LockError::Held(h))) => assert_eq!(h.id, next.id),
        other => panic!("the broken holder's write must be refused: {other:?}"),
    }
    contender.unlock(&next.id).unwrap();
}

// ---- authentication ------------------------------------------------------------------------

/// An RSA key made by `openssl`, and the identity provider's JWKS served from a thread.
struct Idp {
    issuer: String,
    key: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

impl Idp {
    fn start() -> Idp {
        let dir = tempfile::tempdir().unwrap();
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"], dir.path());
        let modulus = String::from_utf8(openssl(&["rsa", "-in", "key.pem", "-noout", "-modulus"], dir.path())).unwrap();
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1", "n": b64(&n), "e": "AQAB"}]}).to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwks}", jwks.len());
            }
        });
        Idp { issuer, key: dir.path().join("key.pem"), _dir: dir }
    }

    fn token(&self, sub: &str) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let header = b64(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
        let claims = serde_json::json!({"iss": self.issuer, "sub": sub, "iat": now, "exp": now + 3600, "scope": "openid profile"});
        let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let dir = self.key.parent().unwrap();
        let file = dir.join(format!("input-{sub}"));
        std::fs::write(&file, &input).unwrap();
        let sig = openssl(&["dgst", "-sha256", "-sign", "key.pem", "-binary", file.to_str().unwrap()], dir);
        format!("{input}.{}", b64(&sig))
    }
}

#[test]
fn another_user_gets_403_on_the_owners_state() {
    let idp = Idp::start();
    let config = format!("[[server.auth.issuers]]\nissuer = \"{0}\"\njwks_uri = \"{0}/jwks\"\n", idp.issuer);
    let server = serve(&config, false);
    let name = unique("owned");
    let url = format!("{}/state/{name}", server.base);
    let as_user = |sub: &str| HttpBackend::new(&url, HttpAuth::Bearer(idp.token(sub))).unwrap();

    let alice = as_user("alice");
    assert!(alice.read().unwrap().is_none());
    let info = LockInfo::new("apply", alice.location());
    alice.lock(&info).unwrap();
    let mut doc = StateDoc::new("lineage-owned".into());
    doc.serial = 1;
    alice.write(&doc).unwrap();
    alice.unlock(&info.id).unwrap();
    assert_eq!(as_user("alice").read().unwrap().unwrap(), doc);

    let bob = as_user("bob");
    match bob.read() {
        Err(StateError::Read { message, location }) => {
            assert!(message.contains("403"), "{message}");
            assert!(location.contains(&name) && !location.contains("Bearer"), "{location}");
        }
        other => panic!("bob reads alice's state: {other:?}"),
    }
    match bob.lock(&LockInfo::new("apply", bob.location())) {
        Err(LockError::Failed { message, .. }) => assert!(message.contains("403"), "{message}"),
        other => panic!("bob locks alice's state: {other:?}"),
    }
    match bob.write(&doc) {
        Err(StateError::Write { message, .. }) => assert!(message.contains("403"), "{message}"),
        other => panic!("bob writes alice's state: {other:?}"),
    }
    let listed = bob.list().unwrap();
    assert!(!listed.contains(&name), "bob does not see alice's state: {listed:?}");
    assert!(as_user("alice").list().unwrap().contains(&name));
    // Without a token: 401, and the message says which variables to set.
    match HttpBackend::new(&url, HttpAuth::None).unwrap().read() {
        Err(StateError::Read { message, .. }) => assert!(message.contains("401") && message.contains("ROSCA_BACKEND_HTTP_TOKEN"), "{message}"),
        other => panic!("an anonymous read: {other:?}"),
    }
}
