//! The HTTP backend: Terraform's HTTP backend protocol, as `rosca serve` (`/state/{name}`) and
//! other servers speak it.
//!
//! - `GET url`: 200 with the state (an `ETag` when the server gives one), 204 or 404 (or an
//!   empty 200) when there is none;
//! - `POST url` with the state as body, `?ID=<lock id>` while this backend holds the lock, and
//!   `If-Match: <etag>` (or `If-None-Match: *` when the last read found no state) so a write
//!   from a stale read is refused: 412 is `StateError::Conflict`;
//! - `LOCK url` with the LockInfo JSON: 200 taken; 409 or 423 with the holder's LockInfo held;
//! - `UNLOCK url` with the LockInfo JSON: 200 released (force-unlock sends a LockInfo with the
//!   ID to break);
//! - a server whose locks lapse (`rosca serve`, after `[server] state_lock_ttl`) says so in a
//!   granted LOCK's `X-Rosca-Lock-TTL-Ms`: a live holder then renews its lock from a thread of
//!   its own every third of that (a LOCK with `X-Rosca-Lock-Renew`, which never re-takes a lock
//!   that lapsed or was broken), until it unlocks or the backend is dropped;
//! - `GET url/lock` (a Rosca addition): the holder, 204 when free; servers without it simply
//!   report no holder;
//! - `GET` of the parent URL (the collection): a JSON array of state names, where the server
//!   offers one (`rosca serve` does).
//!
//! Credentials (`HttpAuth`) come from the caller (the CLI reads them from the environment) and
//! never appear in messages. Every request runs on a thread of the backend's own (the blocking
//! client must not run on an async runtime's thread), so the backend may be used from anywhere.

use crate::backend::{LockError, LockInfo, StateBackend, StateError};
use crate::doc::StateDoc;
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode, Url};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum HttpAuth {
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic { username: String, password: String },
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpAuth::None => write!(f, "None"),
            HttpAuth::Bearer(_) => write!(f, "Bearer(***)"),
            HttpAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
        }
    }
}

/// What the last read or write saw, for the compare-and-swap of the next write.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    /// Never read, or the server gave no ETag: the next write is unconditional.
    Unknown,
    Absent,
    Etag(String),
}

struct Answer {
    status: StatusCode,
    etag: Option<String>,
    /// `X-Rosca-Lock-TTL-Ms` of a granted LOCK.
    headers_ttl: Option<u64>,
    body: Vec<u8>,
}

type Job = Box<dyn FnOnce(&Client) + Send>;

/// Response header of `rosca serve`'s LOCK: the lock's time to live without renewal (ms).
const LOCK_TTL_HEADER: &str = "x-rosca-lock-ttl-ms";
/// Request header of a LOCK that only renews a lock still held by its ID (`rosca serve`).
const RENEW_HEADER: &str = "x-rosca-lock-renew";
/// Renewals never come closer together than this, whatever the server's TTL.
const MIN_RENEW_EVERY: Duration = Duration::from_millis(100);

/// Sends requests on the backend's client thread; cheap to clone (the renewal thread has one).
#[derive(Clone)]
struct Requester {
    jobs: mpsc::Sender<Job>,
    auth: HttpAuth,
}

/// The lock this backend holds, and the thread renewing it when the server's locks lapse.
struct Held {
    info: LockInfo,
    renewal: Option<Renewal>,
}

struct Renewal {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Renewal {
    /// Stops the renewals and waits for one in flight, so no LOCK follows an UNLOCK.
    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

pub struct HttpBackend {
    url: Url,
    /// The URL without credentials, for messages.
    shown: String,
    name: String,
    requester: Option<Requester>,
    worker: Option<std::thread::JoinHandle<()>>,
    seen: Mutex<Seen>,
    held: Mutex<Option<Held>>,
}

impl HttpBackend {
    /// A backend on the state at `url` (`http://` or `https://`).
    pub fn new(url: &str, auth: HttpAuth) -> Result<HttpBackend, StateError> {
        let failed = |message: String| StateError::Read { location: "http state".into(), message };
        let mut url = Url::parse(url).map_err(|e| failed(format!("invalid URL: {e} (write http://host:port/state/NAME)")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(failed(format!("the URL must start with http:// or https://, not {}://", url.scheme())));
        }
        // Credentials in the URL become basic auth when none were given, and never show.
        let mut auth = auth;
        if !url.username().is_empty() && auth == HttpAuth::None {
            auth = HttpAuth::Basic { username: url.username().to_string(), password: url.password().unwrap_or_default().to_string() };
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let shown = url.to_string();
        let name = url.path_segments().and_then(|mut s| s.rfind(|s| !s.is_empty())).unwrap_or("default").to_string();
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("rosca-state-http".into())
            .spawn(move || {
                let client = Client::builder().connect_timeout(Duration::from_secs(10)).timeout(Duration::from_secs(60)).build();
                let client = match client {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                for job in rx {
                    job(&client);
                }
            })
            .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
        ready_rx.recv().map_err(|_| failed("the HTTP client thread stopped".into()))?.map_err(|e| failed(format!("cannot make an HTTP client: {e}")))?;
        Ok(HttpBackend {
            url,
            shown,
            name,
            requester: Some(Requester { jobs: tx, auth }),
            worker: Some(worker),
            seen: Mutex::new(Seen::Unknown),
            held: Mutex::new(None),
        })
    }

    /// Sends one request on the backend's thread and waits for the answer.
    fn send(&self, method: Method, url: Url, headers: Vec<(&'static str, String)>, body: Option<Vec<u8>>) -> Result<Answer, String> {
        self.requester.as_ref().ok_or("the backend is closed")?.send(method, url, headers, body)
    }
}

impl Requester {
    fn send(&self, method: Method, url: Url, headers: Vec<(&'static str, String)>, body: Option<Vec<u8>>) -> Result<Answer, String> {
        let auth = self.auth.clone();
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |client: &Client| {
            let mut req = client.request(method, url);
            req = match &auth {
                HttpAuth::None => req,
                HttpAuth::Bearer(t) => req.bearer_auth(t),
                HttpAuth::Basic { username, password } => req.basic_auth(username, Some(password)),
            };
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b);
            }
            let out = req.send().and_then(|r| {
                let status = r.status();
                let etag = r.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
                let headers_ttl = r.headers().get(LOCK_TTL_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
                Ok(Answer { status, etag, headers_ttl, body: r.bytes()?.to_vec() })
            });
            let _ = tx.send(out.map_err(|e| {
                // reqwest's message names the URL; ours has no credentials in it.
                let mut m = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    m.push_str(&format!(": {s}"));
                    src = s.source();
                }
                m
            }));
        });
        self.jobs.send(job).map_err(|_| "the HTTP client thread stopped".to_string())?;
        rx.recv().map_err(|_| "the HTTP client thread stopped".to_string())?
    }
}

impl HttpBackend {
    fn location_of(&self, url: &Url) -> String {
        let mut u = url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.to_string()
    }

    /// What a failed answer means, and what to do.
    fn explain(&self, method: &str, a: &Answer) -> String {
        let body = String::from_utf8_lossy(&a.body);
        let body: String = body.trim().chars().take(300).collect();
        let hint = match a.status.as_u16() {
            401 => "; the server wants credentials: set ROSCA_BACKEND_HTTP_TOKEN, or ROSCA_BACKEND_HTTP_USERNAME and ROSCA_BACKEND_HTTP_PASSWORD",
            403 => "; these credentials may not use this state (another user owns it?): use your own state name or ask its owner or an admin",
            404 | 405 | 501 => "; check the URL: it must name a state of a server speaking Terraform's HTTP backend protocol",
            s if s >= 500 => "; the server failed: retry, or see its logs",
            _ => "",
        };
        if body.is_empty() {
            format!("{method} answered {}{hint}", a.status)
        } else {
            format!("{method} answered {}: {body}{hint}", a.status)
        }
    }

    fn unreachable(&self, method: &str, e: String) -> String {
        format!("{method} failed: {e}; check that the server answers at {}", self.shown)
    }

    fn lock_failed(&self, message: String) -> LockError {
        LockError::Failed { location: self.location(), message }
    }

    fn parse_holder(&self, body: &[u8]) -> LockInfo {
        serde_json::from_slice(body).unwrap_or_else(|_| LockInfo {
            id: String::new(),
            operation: "unknown".into(),
            info: "the server did not say who holds the lock".into(),
            who: "unknown".into(),
            version: String::new(),
            created: String::new(),
            path: self.location(),
        })
    }

    fn lock_url(&self) -> Url {
        let mut u = self.url.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.pop_if_empty().push("lock");
        }
        u
    }

    fn lock_request(&self, method: &str, info: &LockInfo) -> Result<Answer, LockError> {
        let body = serde_json::to_vec(info).map_err(|e| self.lock_failed(e.to_string()))?;
        let m = Method::from_bytes(method.as_bytes()).map_err(|e| self.lock_failed(e.to_string()))?;
        self.send(m, self.url.clone(), vec![], Some(body)).map_err(|e| self.lock_failed(self.unreachable(method, e)))
    }

    /// Starts renewing a lock just granted, when the server said it lapses (`rosca serve`
    /// does; servers whose locks never lapse need no renewal and get none).
    fn start_renewal(&self, info: &LockInfo, granted: &Answer) -> Option<Renewal> {
        let ttl_ms: u64 = granted.headers_ttl?;
        let every = (Duration::from_millis(ttl_ms) / 3).max(MIN_RENEW_EVERY);
        let requester = self.requester.clone()?;
        let body = serde_json::to_vec(info).ok()?;
        let url = self.url.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rosca-state-http-renew".into())
            .spawn(move || renew(requester, url, body, every, stopped))
            .ok()?;
        Some(Renewal { stop, thread })
    }
}

/// Re-sends LOCK (renew only) every `every` until told to stop, or until the server says the
/// lock is no longer ours (it lapsed or was force-unlocked: the server then refuses this run's
/// writes, so nothing more is needed here). A failed request is retried at the next tick.
fn renew(requester: Requester, url: Url, body: Vec<u8>, every: Duration, stopped: mpsc::Receiver<()>) {
    let Ok(method) = Method::from_bytes(b"LOCK") else { return };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
        if let Ok(a) = requester.send(method.clone(), url.clone(), vec![(RENEW_HEADER, "1".into())], Some(body.clone())) {
            if matches!(a.status.as_u16(), 404 | 409 | 410 | 423) {
                return;
            }
        }
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(held) = held {
            if let Some(r) = held.renewal {
                r.stop();
            }
            let _ = self.lock_request("UNLOCK", &held.info);
        }
        self.requester.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl StateBackend for HttpBackend {
    fn location(&self) -> String {
        self.shown.clone()
    }

    fn read(&self) -> Result<Option<StateDoc>, StateError> {
        let failed = |message: String| StateError::Read { location: self.location(), message };
        let a = self.send(Method::GET, self.url.clone(), vec![], None).map_err(|e| failed(self.unreachable("GET", e)))?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match a.status.as_u16() {
            200 if a.body.iter().all(u8::is_ascii_whitespace) => {
                *seen = Seen::Absent;
                Ok(None)
            }
            200 => {
                let doc = StateDoc::from_bytes(&a.body).map_err(|message| StateError::Corrupt { location: self.location(), message })?;
                *seen = a.etag.map(Seen::Etag).unwrap_or(Seen::Unknown);
                Ok(Some(doc))
            }
            204 | 404 => {
                *seen = Seen::Absent;
                Ok(None)
            }
            _ => Err(failed(self.explain("GET", &a))),
        }
    }

    fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
        let failed = |message: String| StateError::Write { location: self.location(), message };
        let mut url = self.url.clone();
        if let Some(h) = self.held.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            url.query_pairs_mut().append_pair("ID", &h.info.id);
        }
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let headers = match &seen {
            Seen::Unknown => vec![],
            Seen::Absent => vec![("If-None-Match", "*".to_string())],
            Seen::Etag(t) => vec![("If-Match", t.clone())],
        };
        let a = self.send(Method::POST, url, headers, Some(doc.to_bytes())).map_err(|e| failed(self.unreachable("POST", e)))?;
        match a.status.as_u16() {
            200..=299 => {
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = a.etag.map(Seen::Etag).unwrap_or(Seen::Unknown);
                Ok(())
            }
            412 => Err(StateError::Conflict {
                location: self.location(),
                message: match seen {
                    Seen::Etag(t) => format!("its ETag is no longer {t}"),
                    _ => "a state was written since this one found none".into(),
                },
            }),
            409 | 423 => Err(StateError::Lock(LockError::Held(Box::new(self.parse_holder(&a.body))))),
            _ => Err(failed(self.explain("POST", &a))),
        }
    }

    fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let a = self.lock_request("LOCK", info)?;
        match a.status.as_u16() {
            200..=299 => {
                // Locking again with the same ID renews on the server: keep the running renewal.
                if !held.as_ref().is_some_and(|h| h.info.id == info.id && h.renewal.as_ref().is_some_and(|r| !r.thread.is_finished())) {
                    if let Some(old) = held.take().and_then(|h| h.renewal) {
                        old.stop();
                    }
                    *held = Some(Held { info: info.clone(), renewal: self.start_renewal(info, &a) });
                }
                Ok(())
            }
            409 | 423 => Err(LockError::Held(Box::new(self.parse_holder(&a.body)))),
            _ => Err(self.lock_failed(self.explain("LOCK", &a))),
        }
    }

    fn unlock(&self, id: &str) -> Result<(), LockError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let info = match held.as_mut() {
            Some(h) if h.info.id == id => {
                if let Some(r) = h.renewal.take() {
                    r.stop();
                }
                h.info.clone()
            }
            _ => LockInfo { id: id.to_string(), ..LockInfo::new("unlock", self.location()) },
        };
        let a = self.lock_request("UNLOCK", &info)?;
        match a.status.as_u16() {
            200..=299 => {
                if held.as_ref().is_some_and(|h| h.info.id == id) {
                    *held = None;
                }
                Ok(())
            }
            404 | 409 | 412 | 423 => Err(LockError::NotHeld { location: self.location(), id: id.to_string() }),
            _ => Err(self.lock_failed(self.explain("UNLOCK", &a))),
        }
    }

    fn lock_holder(&self) -> Result<Option<LockInfo>, LockError> {
        let url = self.lock_url();
        let a = self.send(Method::GET, url.clone(), vec![], None).map_err(|e| self.lock_failed(self.unreachable("GET", e)))?;
        match a.status.as_u16() {
            200 => Ok(serde_json::from_slice(&a.body).ok()),
            s if s >= 500 => Err(self.lock_failed(format!("GET {}: {}", self.location_of(&url), self.explain("GET", &a)))),
            // 204: free; anything else: the server has no such call, so nobody can be named.
            _ => Ok(None),
        }
    }

    fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        if let Some(h) = self.lock_holder()? {
            if h.id != id {
                return Err(LockError::NotHeld { location: format!("{} (the lock there has ID {})", self.location(), h.id), id: id.to_string() });
            }
        }
        let info = LockInfo { id: id.to_string(), ..LockInfo::new("force-unlock", self.location()) };
        let a = self.lock_request("UNLOCK", &info)?;
        match a.status.as_u16() {
            200..=299 => Ok(()),
            404 | 409 | 412 | 423 => Err(LockError::NotHeld { location: self.location(), id: id.to_string() }),
            _ => Err(self.lock_failed(self.explain("UNLOCK", &a))),
        }
    }

    fn list(&self) -> Result<Vec<String>, StateError> {
        let mut parent = self.url.clone();
        parent.set_query(None);
        if let Ok(mut s) = parent.path_segments_mut() {
            s.pop_if_empty().pop();
        }
        let listed = self.send(Method::GET, parent, vec![], None).ok().filter(|a| a.status == StatusCode::OK).and_then(|a| serde_json::from_slice::<Vec<String>>(&a.body).ok());
        Ok(listed.unwrap_or_else(|| vec![self.name.clone()]))
    }
}
