//! The etcd backend (issue 6, docs/state.md): the state document in one key, the lock in another
//! key bound to a lease that a background task keeps alive.
//!
//! Keys, for a state named `NAME`:
//! - `rosca/states/NAME`: the state document (`StateDoc::to_bytes`);
//! - `rosca/locks/NAME`: the holder's `LockInfo` as JSON, attached to a lease of
//!   `LOCK_TTL_SECS`. The holder renews the lease every `KEEPALIVE_EVERY`; when it dies
//!   (even by SIGKILL) renewals stop, the lease expires and etcd deletes the key, so a lock can
//!   never stay stuck for longer than the TTL.
//!
//! Writes are a transaction comparing the key's mod revision with the one this handle last
//! read or wrote (or, when it saw no state, that the key still does not exist): a writer whose
//! view is stale gets `StateError::Conflict` and writes nothing.
//!
//! Changes between full writes are journaled: `rosca/journal/NAME/<seq>` (seq zero-padded, from
//! 1), one `JournalEntry` each. `append` puts the next key in a transaction that checks the
//! state key's mod revision and that the key does not exist yet (so of two appenders, or an
//! appender and a writer, from the same view exactly one wins); `read` gets the state and its
//! journal in one transaction and folds the entries in; `write` puts the state and deletes the
//! journal in one transaction, which also checks that no entry was appended beyond what this
//! handle saw.
//!
//! The trait is synchronous and may be called from any thread, including one that runs a tokio
//! runtime of its own. So each backend owns a small private runtime; every call is spawned on it
//! and its result waited for through a std channel (never `block_on` on the caller's thread,
//! which panics inside a runtime).

use crate::backend::{LockError, LockInfo, StateBackend, StateError};
use crate::doc::{JournalEntry, StateDoc};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Lifetime of the lease a lock key is bound to: how long a lock survives its holder's death.
pub const LOCK_TTL_SECS: i64 = 10;
/// How often a holder renews its lease (a third of the TTL: two renewals may be lost in a row).
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(3);
/// How long one call to etcd may take before it fails (`with_timeout` changes it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long releasing the lock on drop may take; after that the lease expires by itself.
const DROP_TIMEOUT: Duration = Duration::from_secs(3);

const STATES_PREFIX: &str = "rosca/states/";
const LOCKS_PREFIX: &str = "rosca/locks/";
const JOURNAL_PREFIX: &str = "rosca/journal/";

pub struct EtcdBackend {
    endpoints: Vec<String>,
    name: String,
    state_key: String,
    lock_key: String,
    /// `rosca/journal/NAME/`: the journal's keys are this and a sequence number.
    journal_prefix: String,
    timeout: Duration,
    client: Client,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Mod revision of the state key this handle last read or wrote (`Some(0)`: it saw no
    /// state), for the compare-and-swap of `write`; `None` until the first read or write.
    seen: Option<i64>,
    /// Journal entries that the state this handle last saw had.
    seen_entries: u64,
    /// (serial, lineage) of the document this handle wrote last: `append` journals only on
    /// top of it (else it writes in full).
    journaling: Option<(u64, String)>,
    lock: Option<Held>,
}

struct Held {
    info: LockInfo,
    /// The exact bytes stored under the lock key: unlock deletes the key only if they are
    /// still there (a force-unlock and a new holder may have come in between).
    value: Vec<u8>,
    lease: i64,
    keepalive: tokio::task::JoinHandle<()>,
    /// Set by the keepalive task when etcd says the lease is gone (it expired: this process
    /// could not renew it in time). The lock is then no longer ours.
    lost: Arc<AtomicBool>,
}

/// Why a call to etcd failed.
enum Failure {
    Etcd(etcd_client::Error),
    Timeout(Duration),
    Stopped,
}

impl EtcdBackend {
    /// A backend on the state `name` of the etcd cluster at `endpoints` (`http://host:port` or
    /// `host:port`). Connects lazily: an etcd that does not answer is reported by the first
    /// call, naming the endpoints.
    pub fn new(endpoints: Vec<String>, name: &str) -> Result<EtcdBackend, StateError> {
        let endpoints: Vec<String> =
            endpoints.iter().map(|e| e.trim().trim_end_matches('/').to_string()).filter(|e| !e.is_empty()).collect();
        let location = format!("etcd://{}/{STATES_PREFIX}{name}", endpoints.first().map(|e| host_of(e)).unwrap_or(""));
        let invalid = |message: String| StateError::Read { location: location.clone(), message };
        if endpoints.is_empty() {
            return Err(invalid(
                "no etcd endpoint given: set the backend's endpoints, e.g. endpoints = [\"http://127.0.0.1:2379\"]".into(),
            ));
        }
        for e in &endpoints {
            if e.starts_with("https://") {
                return Err(invalid(format!(
                    "endpoint {e}: TLS to etcd is not supported yet; use an http:// endpoint (e.g. on a private network or through a local TLS tunnel)"
                )));
            }
            let bare = e.strip_prefix("http://").unwrap_or(e);
            if bare.is_empty() || bare.contains('/') || bare.contains("://") || bare.chars().any(char::is_whitespace) {
                return Err(invalid(format!(
                    "endpoint {e:?} is not an etcd client URL; write http://HOST:PORT, e.g. http://127.0.0.1:2379"
                )));
            }
        }
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) || name.len() > 200 {
            return Err(invalid(format!(
                "invalid state name {name:?}: it must be 1 to 200 characters without '/' or control characters"
            )));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rosca-etcd")
            .enable_all()
            .build()
            .map_err(|e| invalid(format!("cannot start the etcd client's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(DEFAULT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let connect = {
            let endpoints = endpoints.clone();
            async move { Client::connect(endpoints, Some(options)).await }
        };
        let client = match run_on(&handle, DEFAULT_TIMEOUT, connect) {
            Ok(c) => c,
            Err(f) => {
                runtime.shutdown_background();
                return Err(invalid(format!(
                    "cannot set up the etcd client for {}: {}",
                    endpoints.join(","),
                    describe(&f)
                )));
            }
        };
        Ok(EtcdBackend {
            state_key: format!("{STATES_PREFIX}{name}"),
            lock_key: format!("{LOCKS_PREFIX}{name}"),
            journal_prefix: format!("{JOURNAL_PREFIX}{name}/"),
            name: name.to_string(),
            endpoints,
            timeout: DEFAULT_TIMEOUT,
            client,
            runtime: Some(runtime),
            handle,
            inner: Mutex::default(),
        })
    }

    /// Sets how long one call to etcd may take before it fails (default `DEFAULT_TIMEOUT`).
    pub fn with_timeout(mut self, timeout: Duration) -> EtcdBackend {
        self.timeout = timeout;
        self
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The key holding the state document.
    pub fn state_key(&self) -> &str {
        &self.state_key
    }
    /// The key holding the lock.
    pub fn lock_key(&self) -> &str {
        &self.lock_key
    }

    /// The key of journal entry `seq` (from 1): zero-padded, so keys sort in entry order.
    fn journal_key(&self, seq: u64) -> String {
        format!("{}{seq:020}", self.journal_prefix)
    }

    fn lock_location(&self) -> String {
        format!("etcd://{}/{}", host_of(&self.endpoints[0]), self.lock_key)
    }

    /// A poisoned mutex only means another thread panicked mid-call; what it guards stays
    /// consistent (a revision and a lock handle).
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run<T, F>(&self, fut: F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
        T: Send + 'static,
    {
        run_on(&self.handle, self.timeout, fut)
    }

    /// "etcd at ENDPOINTS (OP KEY): WHAT; WHAT TO DO".
    fn explain(&self, op: &str, key: &str, failure: &Failure) -> String {
        let mut message = format!("etcd at {} ({op} {key}): {}", self.endpoints.join(","), describe(failure));
        let lower = message.to_lowercase();
        if lower.contains("too large") || lower.contains("message length too large") {
            message.push_str(
                "; etcd refuses requests over its --max-request-bytes (1.5 MiB by default): raise it on the etcd server",
            );
        } else if matches!(failure, Failure::Timeout(_))
            || lower.contains("connect")
            || lower.contains("unavailable")
            || lower.contains("transport")
        {
            message.push_str("; check that etcd runs and answers there, and the backend's endpoints setting");
        }
        message
    }

    fn lock_failed(&self, op: &str, failure: &Failure) -> LockError {
        LockError::Failed { location: self.lock_location(), message: self.explain(op, &self.lock_key, failure) }
    }

    fn parse_lock_info(&self, value: &[u8]) -> Result<LockInfo, LockError> {
        serde_json::from_slice(value).map_err(|e| LockError::Failed {
            location: self.lock_location(),
            message: format!(
                "the lock key {} holds no valid lock record ({e}); if no rosca operation runs on this state, remove it with: etcdctl --endpoints={} del {}",
                self.lock_key,
                self.endpoints.join(","),
                self.lock_key
            ),
        })
    }

    /// Deletes the lock key if it still holds `held.value`, stops the renewals and revokes the
    /// lease (which would delete the key too).
    fn release(&self, held: Held, timeout: Duration) -> Result<(), Failure> {
        held.keepalive.abort();
        let client = self.client.clone();
        let key = self.lock_key.clone();
        run_on(&self.handle, timeout, async move {
            let txn = Txn::new()
                .when([Compare::value(key.clone(), CompareOp::Equal, held.value)])
                .and_then([TxnOp::delete(key, None)]);
            client.kv_client().txn(txn).await?;
            // Best effort: a lease that cannot be revoked (already expired, or etcd went away
            // after the delete) ends by itself within the TTL.
            let _ = client.lease_client().revoke(held.lease).await;
            Ok(())
        })
    }
}

/// `host:port` of an endpoint, for `location()`.
fn host_of(endpoint: &str) -> &str {
    endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://")).unwrap_or(endpoint)
}

/// Runs `fut` on the private runtime and waits for it through a std channel, which works from
/// any thread (a thread inside another tokio runtime included).
fn run_on<T, F>(handle: &tokio::runtime::Handle, timeout: Duration, fut: F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    handle.spawn(async move {
        let result = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r.map_err(Failure::Etcd),
            Err(_) => Err(Failure::Timeout(timeout)),
        };
        let _ = tx.send(result);
    });
    rx.recv().unwrap_or(Err(Failure::Stopped))
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Timeout(d) => format!("no answer within {}", humantime::format_duration(*d)),
        Failure::Stopped => "the etcd client's runtime stopped".into(),
        Failure::Etcd(etcd_client::Error::GRpcStatus(s)) => {
            let message = s.message();
            if message.is_empty() {
                format!("{:?}", s.code())
            } else {
                format!("{:?}: {message}", s.code())
            }
        }
        Failure::Etcd(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let part = s.to_string();
                if !text.contains(&part) {
                    text.push_str(": ");
                    text.push_str(&part);
                }
                source = s.source();
            }
            text
        }
    }
}

/// Renews `lease` every `KEEPALIVE_EVERY` until aborted. A broken stream is reopened at the next
/// tick; etcd answering TTL 0 means the lease is gone, which sets `lost` and ends the task.
async fn keep_alive(client: Client, lease: i64, lost: Arc<AtomicBool>) {
    let mut leases = client.lease_client();
    let mut stream = None;
    loop {
        tokio::time::sleep(KEEPALIVE_EVERY).await;
        if stream.is_none() {
            match tokio::time::timeout(KEEPALIVE_EVERY, leases.keep_alive(lease)).await {
                // Opening the stream renews once and checks the lease.
                Ok(Ok(s)) => {
                    stream = Some(s);
                    continue;
                }
                Ok(Err(etcd_client::Error::LeaseKeepAliveError(_))) => {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                _ => continue,
            }
        }
        let Some((keeper, responses)) = stream.as_mut() else { continue };
        let renewed = tokio::time::timeout(KEEPALIVE_EVERY, async {
            keeper.keep_alive().await?;
            responses.message().await
        })
        .await;
        match renewed {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {}
            Ok(Ok(Some(_))) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            _ => stream = None,
        }
    }
}

impl StateBackend for EtcdBackend {
    fn location(&self) -> String {
        format!("etcd://{}/{}", host_of(&self.endpoints[0]), self.state_key)
    }

    fn read(&self) -> Result<Option<StateDoc>, StateError> {
        let mut inner = self.inner();
        let client = self.client.clone();
        let (key, prefix) = (self.state_key.clone(), self.journal_prefix.clone());
        // One transaction: the state and its journal at the same revision.
        let resp = self
            .run(async move {
                let txn = Txn::new().and_then([TxnOp::get(key, None), TxnOp::get(prefix, Some(GetOptions::new().with_prefix()))]);
                client.kv_client().txn(txn).await
            })
            .map_err(|f| StateError::Read { location: self.location(), message: self.explain("get", &self.state_key, &f) })?;
        let mut gets = resp.op_responses().into_iter().filter_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g),
            _ => None,
        });
        let (state, journal) = (gets.next(), gets.next());
        inner.journaling = None;
        let Some(kv) = state.as_ref().and_then(|g| g.kvs().first()) else {
            inner.seen = Some(0);
            inner.seen_entries = 0;
            return Ok(None);
        };
        let mut doc = StateDoc::from_bytes(kv.value()).map_err(|message| StateError::Corrupt {
            location: self.location(),
            message: format!(
                "the value of key {} (mod revision {}) is not a state document: {message}; inspect it with: etcdctl --endpoints={} get {}",
                self.state_key,
                kv.mod_revision(),
                self.endpoints.join(","),
                self.state_key
            ),
        })?;
        let entries = journal.as_ref().map(|g| g.kvs()).unwrap_or_default();
        for e in entries {
            let entry: JournalEntry = serde_json::from_slice(e.value()).map_err(|err| StateError::Corrupt {
                location: self.location(),
                message: format!(
                    "journal key {} is not a journal record ({err}); remove the journal to fall back to the last full state, losing the changes since: etcdctl --endpoints={} del --prefix {}",
                    String::from_utf8_lossy(e.key()),
                    self.endpoints.join(","),
                    self.journal_prefix
                ),
            })?;
            doc.apply(&entry);
        }
        inner.seen = Some(kv.mod_revision());
        inner.seen_entries = entries.len() as u64;
        Ok(Some(doc))
    }

    fn append(&self, doc: &StateDoc, entry: &JournalEntry) -> Result<(), StateError> {
        let mut inner = self.inner();
        let on_top = inner.journaling.as_ref().is_some_and(|(serial, lineage)| *serial == doc.serial && *lineage == doc.lineage);
        let rev = match inner.seen {
            Some(rev) if rev > 0 && on_top => rev,
            // The first change of a run (the serial moved) or after a read: the whole document,
            // once; journaled from there on.
            _ => {
                drop(inner);
                return self.write(doc);
            }
        };
        let value = serde_json::to_vec(entry).map_err(|e| StateError::Write { location: self.location(), message: e.to_string() })?;
        let seq = inner.seen_entries + 1;
        let (key, state_key) = (self.journal_key(seq), self.state_key.clone());
        let client = self.client.clone();
        let txn_key = key.clone();
        let resp = self
            .run(async move {
                let txn = Txn::new()
                    .when([Compare::mod_revision(state_key, CompareOp::Equal, rev), Compare::create_revision(txn_key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(txn_key, value, None)]);
                client.kv_client().txn(txn).await
            })
            .map_err(|f| {
                // Unknown outcome: the next append or write must not trust this view.
                if matches!(f, Failure::Timeout(_)) {
                    inner.seen = Some(-1);
                }
                StateError::Write { location: self.location(), message: self.explain("txn put", &key, &f) }
            })?;
        if !resp.succeeded() {
            inner.journaling = None;
            return Err(StateError::Conflict {
                location: self.location(),
                message: format!(
                    "key {} is no longer at mod revision {rev} with {} journal entries: another run wrote or appended since",
                    self.state_key,
                    seq - 1
                ),
            });
        }
        inner.seen_entries = seq;
        Ok(())
    }

    fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
        let mut inner = self.inner();
        let bytes = doc.to_bytes();
        let key = self.state_key.clone();
        let compare = match inner.seen {
            None => None,
            Some(0) => Some(Compare::create_revision(key.clone(), CompareOp::Equal, 0)),
            Some(rev) => Some(Compare::mod_revision(key.clone(), CompareOp::Equal, rev)),
        };
        // Nothing appended beyond the entries this handle saw.
        let no_more = inner.seen.map(|_| Compare::create_revision(self.journal_key(inner.seen_entries + 1), CompareOp::Equal, 0));
        let prefix = self.journal_prefix.clone();
        let client = self.client.clone();
        let resp = self
            .run(async move {
                let mut txn = Txn::new();
                let compares: Vec<Compare> = compare.into_iter().chain(no_more).collect();
                if !compares.is_empty() {
                    txn = txn.when(compares);
                }
                let txn = txn
                    .and_then([TxnOp::put(key.clone(), bytes, None), TxnOp::delete(prefix, Some(DeleteOptions::new().with_prefix()))])
                    .or_else([TxnOp::get(key, Some(GetOptions::new().with_keys_only()))]);
                client.kv_client().txn(txn).await
            })
            .map_err(|f| {
                // The outcome of a timed-out put is unknown: forget what we saw, so the next
                // write is refused unless the state is read again.
                if matches!(f, Failure::Timeout(_)) {
                    inner.seen = Some(-1);
                }
                StateError::Write {
                    location: self.location(),
                    message: format!(
                        "{}{}",
                        self.explain("txn put", &self.state_key, &f),
                        if matches!(f, Failure::Timeout(_)) { " (the write may or may not have happened: read the state again)" } else { "" }
                    ),
                }
            })?;
        if !resp.succeeded() {
            let now = resp.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0)),
                _ => None,
            });
            let seen = inner.seen.unwrap_or(0);
            inner.journaling = None;
            if now == Some(seen) {
                return Err(StateError::Conflict {
                    location: self.location(),
                    message: format!(
                        "another run appended changes to the journal ({}) beyond the {} entries this run saw",
                        self.journal_prefix, inner.seen_entries
                    ),
                });
            }
            let said = |rev: i64| if rev <= 0 { "no state".to_string() } else { format!("mod revision {rev}") };
            return Err(StateError::Conflict {
                location: self.location(),
                message: format!(
                    "key {} now has {}, this run last saw {}",
                    self.state_key,
                    now.map(said).unwrap_or_else(|| "another revision".into()),
                    if seen < 0 { "an unknown revision (an earlier write timed out)".into() } else { said(seen) }
                ),
            });
        }
        // The transaction's revision is the new mod revision of the key it put.
        match resp.header().map(|h| h.revision()) {
            Some(rev) if rev > 0 => inner.seen = Some(rev),
            _ => inner.seen = Some(-1),
        }
        inner.seen_entries = 0;
        inner.journaling = Some((doc.serial, doc.lineage.clone()));
        Ok(())
    }

    fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let mut inner = self.inner();
        if let Some(held) = &inner.lock {
            if held.lost.load(Ordering::SeqCst) {
                // Our lease expired (renewals failed): the lock is not ours any more.
                if let Some(h) = inner.lock.take() {
                    let _ = self.release(h, DROP_TIMEOUT);
                }
            } else if held.info.id == info.id {
                return Ok(());
            } else {
                return Err(LockError::Held(Box::new(held.info.clone())));
            }
        }
        let value = serde_json::to_vec(info).map_err(|e| LockError::Failed {
            location: self.lock_location(),
            message: format!("cannot encode the lock record: {e}"),
        })?;
        let client = self.client.clone();
        let key = self.lock_key.clone();
        let put_value = value.clone();
        let (lease, resp) = self
            .run(async move {
                let lease = client.lease_client().grant(LOCK_TTL_SECS, None).await?.id();
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.clone(), put_value, Some(PutOptions::new().with_lease(lease)))])
                    .or_else([TxnOp::get(key, None)]);
                match client.kv_client().txn(txn).await {
                    Ok(resp) => Ok((lease, resp)),
                    Err(e) => {
                        let _ = client.lease_client().revoke(lease).await;
                        Err(e)
                    }
                }
            })
            .map_err(|f| self.lock_failed("lock", &f))?;
        if resp.succeeded() {
            let lost = Arc::new(AtomicBool::new(false));
            let keepalive = self.handle.spawn(keep_alive(self.client.clone(), lease, lost.clone()));
            inner.lock = Some(Held { info: info.clone(), value, lease, keepalive, lost });
            return Ok(());
        }
        // Held by someone else: give the unused lease back (not waited for).
        let client = self.client.clone();
        self.handle.spawn(async move {
            let _ = client.lease_client().revoke(lease).await;
        });
        let holder = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        match holder {
            Some(v) => Err(LockError::Held(Box::new(self.parse_lock_info(&v)?))),
            // Released between the compare and the get cannot happen (one transaction).
            None => Err(LockError::Failed {
                location: self.lock_location(),
                message: "etcd refused the lock but reported no holder; try again".into(),
            }),
        }
    }

    fn unlock(&self, id: &str) -> Result<(), LockError> {
        let mut inner = self.inner();
        match inner.lock.take() {
            Some(held) if held.info.id == id => self.release(held, self.timeout).map_err(|f| LockError::Failed {
                location: self.lock_location(),
                message: format!(
                    "{}; renewals stopped, so the lock expires by itself within {LOCK_TTL_SECS} s",
                    self.explain("unlock", &self.lock_key, &f)
                ),
            }),
            other => {
                inner.lock = other;
                Err(LockError::NotHeld { location: self.lock_location(), id: id.to_string() })
            }
        }
    }

    fn lock_holder(&self) -> Result<Option<LockInfo>, LockError> {
        let client = self.client.clone();
        let key = self.lock_key.clone();
        let resp = self
            .run(async move { client.kv_client().get(key, None).await })
            .map_err(|f| self.lock_failed("get", &f))?;
        match resp.kvs().first() {
            Some(kv) => self.parse_lock_info(kv.value()).map(Some),
            None => Ok(None),
        }
    }

    fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        {
            let mut inner = self.inner();
            if inner.lock.as_ref().is_some_and(|h| h.info.id == id) {
                if let Some(held) = inner.lock.take() {
                    return self.release(held, self.timeout).map_err(|f| self.lock_failed("force-unlock", &f));
                }
            }
        }
        let client = self.client.clone();
        let key = self.lock_key.clone();
        let resp = self
            .run(async move { client.kv_client().get(key, None).await })
            .map_err(|f| self.lock_failed("get", &f))?;
        let Some(kv) = resp.kvs().first() else {
            return Err(LockError::NotHeld {
                location: format!("{} (it is not locked)", self.lock_location()),
                id: id.to_string(),
            });
        };
        let value = kv.value().to_vec();
        let holder = self.parse_lock_info(&value)?;
        if holder.id != id {
            return Err(LockError::NotHeld {
                location: format!("{} (the lock there has ID {})", self.lock_location(), holder.id),
                id: id.to_string(),
            });
        }
        let client = self.client.clone();
        let key = self.lock_key.clone();
        let resp = self
            .run(async move {
                let txn = Txn::new()
                    .when([Compare::value(key.clone(), CompareOp::Equal, value)])
                    .and_then([TxnOp::delete(key, None)]);
                client.kv_client().txn(txn).await
            })
            .map_err(|f| self.lock_failed("force-unlock", &f))?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(LockError::NotHeld {
                location: format!("{} (the lock was released or taken by another operation meanwhile)", self.lock_location()),
                id: id.to_string(),
            })
        }
    }

    fn list(&self) -> Result<Vec<String>, StateError> {
        let client = self.client.clone();
        let resp = self
            .run(async move {
                client.kv_client().get(STATES_PREFIX, Some(GetOptions::new().with_prefix().with_keys_only())).await
            })
            .map_err(|f| StateError::Read { location: self.location(), message: self.explain("list", STATES_PREFIX, &f) })?;
        let mut names: Vec<String> = resp
            .kvs()
            .iter()
            .filter_map(|kv| kv.key().strip_prefix(STATES_PREFIX.as_bytes()))
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        let held = self.inner.get_mut().unwrap_or_else(|e| e.into_inner()).lock.take();
        if let Some(held) = held {
            let _ = self.release(held, DROP_TIMEOUT);
        }
        // Never waits (dropping a runtime inside another one's context would panic).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
