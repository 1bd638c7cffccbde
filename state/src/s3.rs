//! The S3-compatible backend (issue 6): one object per state, a lock object beside it.
//!
//! For a state `name` under `prefix` in `bucket`:
//! - `<prefix>/<name>.state.json`: the document (`StateDoc::to_bytes`). `write` is a conditional
//!   PUT: `If-Match` on the ETag this handle last read or wrote, or `If-None-Match: *` when it saw
//!   no object; a 412 is `StateError::Conflict` and nothing is written.
//! - `<prefix>/<name>.lock`: `{"info": LockInfo, "expires": RFC 3339}`, created with
//!   `If-None-Match: *`. A live holder renews it every `RENEW_INTERVAL` (a conditional PUT on its
//!   own ETag) so it never expires while the holder runs. A lock past its expiry (its holder
//!   died) is taken over with `If-Match` on the dead holder's ETag, so exactly one contender
//!   wins; the state's ETag check still refuses any write from the dead holder's side.
//!
//! - `<prefix>/<name>.journal/<base>/<seq>`: changes since the last full write, one
//!   `JournalEntry` per object (seq zero-padded, from 1), each created with `If-None-Match: *`.
//!   `<base>` is a random id the full write stored in the state object's metadata
//!   (`x-amz-meta-rosca-base`), so entries never apply to another version of the state. `read`
//!   folds them in (up to the first gap or seal). A full write first *seals* the journal it saw
//!   (creates the next entry's object as a seal, with `If-None-Match: *`): of an appender and a
//!   writer from the same view exactly one wins, and no append can land after the seal. Then it
//!   writes the state with `If-Match`, and deletes the old journal.
//!
//! The trait is synchronous and may be called from any thread, a tokio worker's included: each
//! backend owns a small private tokio runtime, runs every request on it and waits for the answer
//! on a std channel (never `block_on` on the caller's thread).
//!
//! Credentials come only from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, or the web-identity / container variables object_store reads).

use crate::backend::{LockError, LockInfo, StateBackend, StateError};
use crate::doc::{JournalEntry, StateDoc};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjPath;
use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, PutResult, RetryConfig, UpdateVersion,
};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// How long a lock object stays valid without renewal. A holder that dies (SIGKILL, a lost
/// machine) blocks others for at most this long.
pub const LOCK_TTL: Duration = Duration::from_secs(20);
/// How often a live holder renews its lock object (a third of the TTL: two renewals may fail
/// before it expires).
pub const RENEW_INTERVAL: Duration = Duration::from_millis(20_000 / 3);

const STATE_SUFFIX: &str = ".state.json";
const LOCK_SUFFIX: &str = ".lock";
const JOURNAL_SUFFIX: &str = ".journal";
/// The state object's metadata naming its journal (`x-amz-meta-rosca-base`).
const BASE_METADATA: &str = "rosca-base";
/// The body of the object that seals a journal.
const SEAL: &[u8] = b"{\"op\":\"seal\"}";
/// Journal objects fetched or deleted at once.
const PARALLEL: usize = 32;
const CONTENT_TYPE: &str = "application/json";

/// Where the states live. Credentials are not part of it: they come from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// An S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (path-style requests; plain
    /// HTTP allowed). `None`: AWS S3 itself.
    pub endpoint: Option<String>,
    /// `None`: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// A key prefix (`team/prod`) under which the states live.
    pub prefix: Option<String>,
}

pub struct S3Backend {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    store: Arc<AmazonS3>,
    http: reqwest_s3::Client,
    bucket: String,
    /// For messages: the endpoint given, or AWS's.
    endpoint: String,
    prefix: Option<ObjPath>,
    state_key: ObjPath,
    lock_key: ObjPath,
    /// `<prefix>/<name>.journal`: journals live under it, one folder per base.
    journal_root: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// ETag of the state object this handle last read or wrote (`Some(None)`: it saw none), for
    /// the compare-and-swap of `write`; `None` until the first read or write.
    seen: Option<Option<String>>,
    /// The journal base of the state this handle last saw (`None`: the object has none), and
    /// how many entries it had.
    seen_base: Option<String>,
    seen_entries: u64,
    /// (serial, lineage) of the document this handle wrote last: `append` journals only on
    /// top of it (else it writes in full).
    journaling: Option<(u64, String)>,
    lock: Option<Held>,
}

/// A lock this handle holds, and its renewal task.
struct Held {
    info: LockInfo,
    shared: Arc<LockShared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// What the renewal task and the handle share: the lock object's current ETag, and why the lock
/// was lost if the renewal found it taken over or deleted.
struct LockShared {
    etag: Mutex<String>,
    lost: Mutex<Option<String>>,
}

impl LockShared {
    fn etag(&self) -> String {
        self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set_etag(&self, etag: String) {
        *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = etag;
    }
    fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set_lost(&self, why: String) {
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// The lock object's content.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LockRecord {
    info: LockInfo,
    /// RFC 3339, UTC: after this instant the holder is taken for dead.
    expires: String,
}

impl LockRecord {
    fn new(info: &LockInfo) -> LockRecord {
        LockRecord {
            info: info.clone(),
            expires: humantime::format_rfc3339_millis(SystemTime::now() + LOCK_TTL).to_string(),
        }
    }
    fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
    fn parse(bytes: &[u8]) -> Result<LockRecord, String> {
        let record: LockRecord = serde_json::from_slice(bytes).map_err(|e| {
            format!("expected {{\"info\": LockInfo, \"expires\": RFC 3339}}, found {} bytes that are not that ({e})", bytes.len())
        })?;
        humantime::parse_rfc3339(&record.expires)
            .map_err(|e| format!("its \"expires\" {:?} is not an RFC 3339 time ({e})", record.expires))?;
        Ok(record)
    }
    fn expired(&self) -> bool {
        humantime::parse_rfc3339(&self.expires).map(|t| t <= SystemTime::now()).unwrap_or(true)
    }
}

/// An object's bytes and ETag.
type Fetched = Option<(Vec<u8>, Option<String>)>;

async fn fetch(store: Arc<AmazonS3>, key: ObjPath) -> object_store::Result<Fetched> {
    Ok(fetch_state(store, key).await?.map(|(bytes, etag, _)| (bytes, etag)))
}

/// The state object: bytes, ETag and journal base.
type FetchedState = Option<(Vec<u8>, Option<String>, Option<String>)>;

async fn fetch_state(store: Arc<AmazonS3>, key: ObjPath) -> object_store::Result<FetchedState> {
    match store.get(&key).await {
        Ok(got) => {
            let etag = got.meta.e_tag.clone();
            let base = got.attributes.get(&Attribute::Metadata(BASE_METADATA.into())).map(|v| v.to_string());
            Ok(Some((got.bytes().await?.to_vec(), etag, base)))
        }
        Err(object_store::Error::NotFound { path, source }) => {
            // A missing bucket is a 404 too: that is an error, not an absent object.
            if chain(&*source).contains("NoSuchBucket") {
                Err(object_store::Error::NotFound { path, source })
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e),
    }
}

async fn put(store: Arc<AmazonS3>, key: ObjPath, bytes: Vec<u8>, mode: PutMode) -> object_store::Result<PutResult> {
    put_with_base(store, key, bytes, mode, None).await
}

/// A PUT, with the state's journal base as metadata when given.
async fn put_with_base(store: Arc<AmazonS3>, key: ObjPath, bytes: Vec<u8>, mode: PutMode, base: Option<String>) -> object_store::Result<PutResult> {
    // moto stores the body of a PUT without a Content-Type as form data, i.e. empty.
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, CONTENT_TYPE.into());
    if let Some(base) = base {
        attributes.insert(Attribute::Metadata(BASE_METADATA.into()), base.into());
    }
    let opts = PutOptions { mode, attributes, ..Default::default() };
    store.put_opts(&key, PutPayload::from(bytes), opts).await
}

/// The journal under `folder`, in order: entry objects 1, 2, ... up to the first gap or seal.
/// Returns the entries and whether a seal ended them.
async fn fetch_journal(store: Arc<AmazonS3>, folder: ObjPath) -> object_store::Result<(Vec<(ObjPath, Vec<u8>)>, bool)> {
    let listed = store.list_with_delimiter(Some(&folder)).await?;
    let mut keys: Vec<(u64, ObjPath)> =
        listed.objects.into_iter().filter_map(|o| o.location.filename().and_then(|f| f.parse().ok()).map(|n: u64| (n, o.location.clone()))).collect();
    keys.sort_by_key(|(n, _)| *n);
    let in_order = keys.iter().enumerate().take_while(|(i, (n, _))| *n == *i as u64 + 1).count();
    keys.truncate(in_order);
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(PARALLEL) {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (_, key)) in chunk.iter().enumerate() {
            let (store, key) = (store.clone(), key.clone());
            tasks.spawn(async move { (i, key.clone(), fetch(store, key).await) });
        }
        let mut got: Vec<Option<(ObjPath, Vec<u8>)>> = vec![None; chunk.len()];
        while let Some(done) = tasks.join_next().await {
            let (i, key, fetched) = done.map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e) })?;
            got[i] = fetched?.map(|(bytes, _)| (key, bytes));
        }
        for item in got {
            // Deleted meanwhile (a full write folded it in): the caller re-checks the state.
            let Some((key, bytes)) = item else { return Ok((out, false)) };
            if bytes == SEAL {
                return Ok((out, true));
            }
            out.push((key, bytes));
        }
    }
    Ok((out, false))
}

/// Deletes a folded journal (`folder`), `PARALLEL` objects at a time.
async fn delete_folder(store: Arc<AmazonS3>, folder: ObjPath) -> object_store::Result<()> {
    let listed = store.list_with_delimiter(Some(&folder)).await?;
    for chunk in listed.objects.chunks(PARALLEL) {
        let mut tasks = tokio::task::JoinSet::new();
        for o in chunk {
            let (store, key) = (store.clone(), o.location.clone());
            tasks.spawn(async move { store.delete(&key).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(()) | Err(object_store::Error::NotFound { .. })) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(object_store::Error::Generic { store: "S3", source: Box::new(e) }),
            }
        }
    }
    Ok(())
}

/// The ETag of a PUT's answer, or of the object when the answer had none.
async fn etag_after(store: &AmazonS3, key: &ObjPath, result: PutResult) -> object_store::Result<String> {
    match result.e_tag {
        Some(e) => Ok(e),
        None => store.head(key).await?.e_tag.ok_or_else(|| object_store::Error::Generic {
            store: "S3",
            source: "the server returned no ETag, which compare-and-swap needs".into(),
        }),
    }
}

enum Deleted {
    /// Deleted, or already gone.
    Yes,
    /// The object's ETag is no longer the one given.
    Changed,
}

/// `DELETE` with `If-Match: etag`, through a presigned URL (object_store's delete has no
/// preconditions). A server that does not support it (501) gets a check of the ETag, then a
/// plain delete.
async fn delete_if_match(
    store: Arc<AmazonS3>,
    http: reqwest_s3::Client,
    key: ObjPath,
    etag: String,
) -> object_store::Result<Deleted> {
    let generic = |message: String| object_store::Error::Generic { store: "S3", source: message.into() };
    let if_match = HeaderValue::from_str(&etag).map_err(|e| generic(format!("unusable ETag {etag:?}: {e}")))?;
    let options = SignedUrlOptions::new().with_signed_header(HeaderName::from_static("if-match"), if_match);
    let url = store.signed_url_opts(Method::DELETE, &key, Duration::from_secs(300), &options).await?;
    let response = http
        .delete(url.as_str())
        .header("if-match", etag.as_str())
        .send()
        .await
        .map_err(|e| generic(format!("DELETE {key} failed: {}", chain(&e))))?;
    let status = response.status().as_u16();
    match status {
        200 | 204 | 404 => Ok(Deleted::Yes),
        412 => Ok(Deleted::Changed),
        501 => {
            match store.head(&key).await {
                Ok(meta) if meta.e_tag.as_deref() == Some(etag.as_str()) => {}
                Ok(_) => return Ok(Deleted::Changed),
                Err(object_store::Error::NotFound { .. }) => return Ok(Deleted::Yes),
                Err(e) => return Err(e),
            }
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(Deleted::Yes),
                Err(e) => Err(e),
            }
        }
        _ => {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(500).collect();
            Err(generic(format!("DELETE {key} answered HTTP {status}: {body}")))
        }
    }
}

/// Renews the lock object every `RENEW_INTERVAL` until told to stop, or until the lock turns
/// out to be someone else's (then `shared.lost` says so and writes are refused).
async fn renew(
    store: Arc<AmazonS3>,
    key: ObjPath,
    info: LockInfo,
    shared: Arc<LockShared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut wait = RENEW_INTERVAL;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let record = LockRecord::new(&info);
        let mode = PutMode::Update(UpdateVersion { e_tag: Some(shared.etag()), version: None });
        match put(store.clone(), key.clone(), record.to_bytes(), mode).await {
            Ok(result) => {
                if let Ok(etag) = etag_after(&store, &key, result).await {
                    shared.set_etag(etag);
                }
                wait = RENEW_INTERVAL;
            }
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
                // Either someone else has it now, or a renewal whose answer we missed changed
                // the ETag: the record tells which.
                match fetch(store.clone(), key.clone()).await {
                    Ok(Some((bytes, Some(etag)))) => match LockRecord::parse(&bytes) {
                        Ok(r) if r.info.id == info.id => {
                            shared.set_etag(etag);
                            wait = Duration::ZERO;
                        }
                        Ok(r) => {
                            shared.set_lost(format!(
                                "the lock expired (no renewal got through for {}s) and was taken over by {} (lock ID {}, operation {})",
                                LOCK_TTL.as_secs(),
                                r.info.who,
                                r.info.id,
                                r.info.operation
                            ));
                            return;
                        }
                        Err(_) => {
                            shared.set_lost("the lock object was replaced by something that is not a lock record".into());
                            return;
                        }
                    },
                    Ok(_) => {
                        shared.set_lost("the lock object was deleted (force-unlocked?) while this run held it".into());
                        return;
                    }
                    // Transient: try again soon.
                    Err(_) => wait = Duration::from_secs(1),
                }
            }
            // Transient (network, 5xx after retries): try again soon, before the TTL runs out.
            Err(_) => wait = Duration::from_secs(1),
        }
    }
}

/// An error and its sources, each once.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The error with an S3 XML error document in it cut down to its code and message.
fn tidy(text: String) -> String {
    let Some(start) = text.find("<?xml") else { return text };
    let xml = &text[start..];
    let tag = |t: &str| {
        let (open, close) = (format!("<{t}>"), format!("</{t}>"));
        let from = xml.find(&open)? + open.len();
        let len = xml[from..].find(&close)?;
        Some(xml[from..from + len].to_string())
    };
    let summary = match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => "an S3 error document".to_string(),
    };
    let rest = xml.find("</Error>").map_or("", |end| &xml[end + "</Error>".len()..]);
    format!("{}{summary}{rest}", &text[..start])
}

/// Names allowed for a state and for prefix segments: what S3 keys and object_store paths keep
/// as they are.
fn check_segment(what: &str, segment: &str) -> Result<(), String> {
    if segment.is_empty() || segment == "." || segment == ".." {
        return Err(format!("{what} {segment:?} is not a usable name"));
    }
    if let Some(c) = segment.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.+=@,".contains(*c))) {
        return Err(format!(
            "{what} {segment:?} contains {c:?}; use letters, digits and - _ . + = @ , only"
        ));
    }
    Ok(())
}

/// Only environment credentials: without them object_store would ask the EC2 instance metadata
/// service, which is not a configuration anybody wrote down.
fn env_has_credentials() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"))
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
}

impl S3Backend {
    /// A backend on the state `name` (`<prefix>/<name>.state.json`). Makes no request: a wrong
    /// endpoint, bucket or credentials show on the first call.
    pub fn new(config: S3Config, name: &str) -> Result<S3Backend, StateError> {
        let rough_location = format!("s3://{}/{name}{STATE_SUFFIX}", config.bucket);
        let invalid = |message: String| StateError::Read {
            location: rough_location.clone(),
            message: format!("invalid S3 backend configuration: {message}"),
        };
        let bucket = config.bucket.trim().to_string();
        if bucket.len() < 3 || bucket.len() > 63 || bucket.contains('/') {
            return Err(invalid(format!("bucket {bucket:?} is not an S3 bucket name (3 to 63 characters, no '/')")));
        }
        check_segment("the state name", name).map_err(invalid)?;
        let prefix = match config.prefix.as_deref().map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => {
                for segment in p.split('/') {
                    check_segment("the prefix segment", segment).map_err(invalid)?;
                }
                Some(p.to_string())
            }
        };
        if !env_has_credentials() {
            return Err(invalid(
                "no S3 credentials in the environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 (and AWS_SESSION_TOKEN for temporary credentials); rosca reads S3 credentials only \
                 from the environment"
                    .into(),
            ));
        }
        let key = |suffix: &str| match &prefix {
            Some(p) => format!("{p}/{name}{suffix}"),
            None => format!("{name}{suffix}"),
        };
        let journal_root = key(JOURNAL_SUFFIX);
        let state_key = ObjPath::parse(key(STATE_SUFFIX)).map_err(|e| invalid(e.to_string()))?;
        let lock_key = ObjPath::parse(key(LOCK_SUFFIX)).map_err(|e| invalid(e.to_string()))?;
        let prefix = prefix.map(|p| ObjPath::parse(p).map_err(|e| invalid(e.to_string()))).transpose()?;

        let client = ClientOptions::new()
            .with_timeout(Duration::from_secs(30))
            .with_connect_timeout(Duration::from_secs(5));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_client_options(client)
            .with_retry(retry)
            .with_bucket_name(&bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_virtual_hosted_style_request(false);
        if let Some(region) = config.region.as_deref().filter(|r| !r.is_empty()) {
            builder = builder.with_region(region);
        }
        let endpoint = match config.endpoint.as_deref().map(|e| e.trim_end_matches('/')).filter(|e| !e.is_empty()) {
            Some(e) => {
                builder = builder.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                e.to_string()
            }
            None => "AWS S3".to_string(),
        };
        let store = builder.build().map_err(|e| invalid(chain(&e)))?;
        let http = reqwest_s3::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| invalid(format!("cannot make an HTTP client: {}", chain(&e))))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rosca-s3")
            .enable_all()
            .build()
            .map_err(|e| invalid(format!("cannot start the S3 client's runtime: {e}")))?;
        Ok(S3Backend {
            runtime: Some(runtime),
            store: Arc::new(store),
            http,
            bucket,
            endpoint,
            prefix,
            state_key,
            lock_key,
            journal_root,
            inner: Mutex::default(),
        })
    }

    /// `s3://bucket/key` of the state object.
    pub fn state_url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.state_key)
    }

    /// `s3://bucket/key` of the lock object.
    pub fn lock_url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.lock_key)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The folder of the journal of `base`.
    fn journal_folder(&self, base: &str) -> Result<ObjPath, StateError> {
        ObjPath::parse(format!("{}/{base}", self.journal_root)).map_err(|e| self.corrupt_base(base, e.to_string()))
    }

    /// Journal entry `seq` (from 1) of `base`: zero-padded, so names sort in entry order.
    fn journal_key(&self, base: &str, seq: u64) -> Result<ObjPath, StateError> {
        ObjPath::parse(format!("{}/{base}/{seq:020}", self.journal_root)).map_err(|e| self.corrupt_base(base, e.to_string()))
    }

    fn corrupt_base(&self, base: &str, why: String) -> StateError {
        StateError::Corrupt {
            location: self.state_url(),
            message: format!("its metadata {BASE_METADATA} = {base:?} is not a journal id ({why}); write the state again (rosca state push) to replace it"),
        }
    }

    fn write_failed(&self, e: &object_store::Error) -> StateError {
        StateError::Write { location: self.state_url(), message: self.explain(e, &self.state_url()) }
    }

    /// Why this handle may not write: its lock was lost to a takeover.
    fn lock_lost(&self, inner: &Inner) -> Option<StateError> {
        let why = inner.lock.as_ref().and_then(|h| h.shared.lost())?;
        Some(StateError::Lock(LockError::Failed { location: self.lock_url(), message: format!("{why}; nothing was written: run the command again") }))
    }

    /// Seals the journal this handle saw (its next entry becomes a seal), so nothing can be
    /// appended to it from here on. `Conflict` when another run appended beyond it.
    fn seal(&self, base: &str, entries: u64) -> Result<(), StateError> {
        let key = self.journal_key(base, entries + 1)?;
        match self.run(put(self.store.clone(), key.clone(), SEAL.to_vec(), PutMode::Create)) {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                match self.run(fetch(self.store.clone(), key)) {
                    // Sealed already (by a writer that then lost the If-Match, or by an earlier
                    // try of ours): the state's ETag decides.
                    Ok(Some((bytes, _))) if bytes == SEAL => Ok(()),
                    Ok(_) => Err(StateError::Conflict {
                        location: self.state_url(),
                        message: format!("another run appended to the journal beyond the {entries} entries this run saw"),
                    }),
                    Err(e) => Err(self.write_failed(&e)),
                }
            }
            Err(e) => Err(self.write_failed(&e)),
        }
    }

    /// Runs `fut` on the private runtime and waits for it on this thread (any thread, one of
    /// another runtime's included).
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> object_store::Result<T> {
        let gone = || object_store::Error::Generic { store: "S3", source: "the S3 client's runtime has stopped".into() };
        let runtime = self.runtime.as_ref().ok_or_else(gone)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| Err(gone()))
    }

    /// What went wrong with a request on `url`, and what to do about it.
    fn explain(&self, err: &object_store::Error, url: &str) -> String {
        let text = tidy(chain(err));
        let hint = if text.contains("NoSuchBucket") {
            format!("the bucket {} does not exist at {}: create it, or fix the backend's bucket", self.bucket, self.endpoint)
        } else if matches!(err, object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. })
            || text.contains("AccessDenied")
            || text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
        {
            format!(
                "the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) are not allowed to use {url} at {}",
                self.endpoint
            )
        } else {
            format!(
                "check that the endpoint {} answers, that the bucket {} exists there and that the credentials in the environment may use it",
                self.endpoint, self.bucket
            )
        };
        format!("{text} ({hint})")
    }

    fn lock_failed(&self, err: &object_store::Error) -> LockError {
        LockError::Failed { location: self.lock_url(), message: self.explain(err, &self.lock_url()) }
    }

    fn corrupt_lock(&self, message: String) -> LockError {
        LockError::Failed {
            location: self.lock_url(),
            message: format!(
                "the lock object is not valid: {message}; if no rosca run is using this state, delete the object {}",
                self.lock_url()
            ),
        }
    }

    /// The lock object's record and ETag, if there is one.
    fn read_lock(&self) -> Result<Option<(LockRecord, String)>, LockError> {
        match self.run(fetch(self.store.clone(), self.lock_key.clone())) {
            Ok(None) => Ok(None),
            Ok(Some((bytes, etag))) => {
                let record = LockRecord::parse(&bytes).map_err(|m| self.corrupt_lock(m))?;
                let etag = etag.ok_or_else(|| self.corrupt_lock("the server returned it without an ETag".into()))?;
                Ok(Some((record, etag)))
            }
            Err(e) => Err(self.lock_failed(&e)),
        }
    }

    /// Starts holding: the renewal task runs from here on.
    fn hold(&self, info: &LockInfo, etag: String) -> Result<Held, LockError> {
        let shared = Arc::new(LockShared { etag: Mutex::new(etag), lost: Mutex::new(None) });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = self.runtime.as_ref().ok_or_else(|| LockError::Failed {
            location: self.lock_url(),
            message: "the S3 client's runtime has stopped".into(),
        })?;
        let task = runtime.spawn(renew(self.store.clone(), self.lock_key.clone(), info.clone(), shared.clone(), stopped));
        Ok(Held { info: info.clone(), shared, stop: Some(stop), task: Some(task) })
    }

    /// Stops the renewal and deletes the lock object if it is still ours.
    fn release(&self, mut held: Held) -> Result<(), LockError> {
        if let Some(stop) = held.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = held.task.take() {
            // Wait for an in-flight renewal, so the ETag below is the last one.
            let _ = self.run(async move {
                let _ = task.await;
                Ok(())
            });
        }
        if held.shared.lost().is_some() {
            return Ok(()); // someone else's now: nothing of ours to delete
        }
        let mut etag = held.shared.etag();
        for _ in 0..3 {
            match self.run(delete_if_match(self.store.clone(), self.http.clone(), self.lock_key.clone(), etag.clone())) {
                Ok(Deleted::Yes) => return Ok(()),
                Ok(Deleted::Changed) => match self.read_lock() {
                    // A renewal we missed the answer of: still ours.
                    Ok(Some((r, e))) if r.info.id == held.info.id => etag = e,
                    Ok(_) | Err(_) => return Ok(()),
                },
                Err(e) => return Err(self.lock_failed(&e)),
            }
        }
        Err(LockError::Failed {
            location: self.lock_url(),
            message: format!("the lock object kept changing while it was being released; delete {} if no run holds it", self.lock_url()),
        })
    }

    fn take_lock(&self, info: &LockInfo) -> Result<Held, LockError> {
        for _ in 0..4 {
            let record = LockRecord::new(info);
            let body = record.to_bytes();
            let created = self.run(put(self.store.clone(), self.lock_key.clone(), body.clone(), PutMode::Create));
            match created {
                Ok(result) => {
                    let etag = self
                        .run({
                            let (store, key) = (self.store.clone(), self.lock_key.clone());
                            async move { etag_after(&store, &key, result).await }
                        })
                        .map_err(|e| self.lock_failed(&e))?;
                    return self.hold(info, etag);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(self.lock_failed(&e)),
            }
            let fetched = self.run(fetch(self.store.clone(), self.lock_key.clone())).map_err(|e| self.lock_failed(&e))?;
            let Some((bytes, etag)) = fetched else { continue }; // released meanwhile: try again
            let etag = etag.ok_or_else(|| self.corrupt_lock("the server returned it without an ETag".into()))?;
            if bytes == body {
                // Our own create got through; a retry of it was what failed.
                return self.hold(info, etag);
            }
            let current = LockRecord::parse(&bytes).map_err(|m| self.corrupt_lock(m))?;
            if !current.expired() {
                return Err(LockError::Held(Box::new(current.info)));
            }
            // Its holder stopped renewing it: take it over, against exactly that version.
            let mode = PutMode::Update(UpdateVersion { e_tag: Some(etag), version: None });
            match self.run(put(self.store.clone(), self.lock_key.clone(), body, mode)) {
                Ok(result) => {
                    let etag = self
                        .run({
                            let (store, key) = (self.store.clone(), self.lock_key.clone());
                            async move { etag_after(&store, &key, result).await }
                        })
                        .map_err(|e| self.lock_failed(&e))?;
                    return self.hold(info, etag);
                }
                // Another contender took it over (or it was released) first.
                Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.lock_failed(&e)),
            }
        }
        match self.read_lock()? {
            Some((r, _)) if !r.expired() => Err(LockError::Held(Box::new(r.info))),
            _ => Err(LockError::Failed {
                location: self.lock_url(),
                message: "the lock object kept changing under every attempt; try again".into(),
            }),
        }
    }
}

impl StateBackend for S3Backend {
    fn location(&self) -> String {
        self.state_url()
    }

    fn read(&self) -> Result<Option<StateDoc>, StateError> {
        let read_failed = |e: &object_store::Error| StateError::Read { location: self.state_url(), message: self.explain(e, &self.state_url()) };
        // The state and its journal are two requests: if a full write came in between (it
        // deletes the journal it folded), read again.
        for _ in 0..5 {
            let fetched = self.run(fetch_state(self.store.clone(), self.state_key.clone())).map_err(|e| read_failed(&e))?;
            let Some((bytes, etag, base)) = fetched else {
                let mut inner = self.inner();
                inner.seen = Some(None);
                inner.seen_base = None;
                inner.seen_entries = 0;
                inner.journaling = None;
                return Ok(None);
            };
            let mut doc = StateDoc::from_bytes(&bytes).map_err(|message| StateError::Corrupt {
                location: self.state_url(),
                message: format!("{message}; fix the object, or restore an earlier version of it if the bucket keeps versions"),
            })?;
            let mut entries = 0;
            if let Some(base) = &base {
                let folder = self.journal_folder(base)?;
                let (journal, _sealed) = self.run(fetch_journal(self.store.clone(), folder)).map_err(|e| read_failed(&e))?;
                if !journal.is_empty() {
                    let now = self.run({
                        let (store, key) = (self.store.clone(), self.state_key.clone());
                        async move { store.head(&key).await }
                    });
                    match now {
                        Ok(meta) if meta.e_tag == etag => {}
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => continue,
                        Err(e) => return Err(read_failed(&e)),
                    }
                }
                for (key, bytes) in &journal {
                    let entry: JournalEntry = serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
                        location: format!("s3://{}/{key}", self.bucket),
                        message: format!(
                            "not a journal record ({e}); delete the objects under s3://{}/{}/{base}/ to fall back to the last full state, losing the changes since",
                            self.bucket, self.journal_root
                        ),
                    })?;
                    doc.apply(&entry);
                }
                entries = journal.len() as u64;
            }
            let mut inner = self.inner();
            // Without an ETag there is nothing to compare against: writes go unconditionally.
            inner.seen = etag.map(Some);
            inner.seen_base = base;
            inner.seen_entries = entries;
            inner.journaling = None;
            return Ok(Some(doc));
        }
        Err(StateError::Read {
            location: self.state_url(),
            message: "the state kept changing while it was read (other runs are writing it); try again".into(),
        })
    }

    fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
        let mut inner = self.inner();
        if let Some(e) = self.lock_lost(&inner) {
            return Err(e);
        }
        let bytes = doc.to_bytes();
        let mode = match &inner.seen {
            None => PutMode::Overwrite,
            Some(None) => PutMode::Create,
            Some(Some(etag)) => PutMode::Update(UpdateVersion { e_tag: Some(etag.clone()), version: None }),
        };
        let expected = match &mode {
            PutMode::Create => "no state object".to_string(),
            PutMode::Update(v) => format!("the object with ETag {}", v.e_tag.as_deref().unwrap_or("")),
            PutMode::Overwrite => String::new(),
        };
        // The journal this handle saw is closed for appends before the state replaces it.
        let old_base = inner.seen_base.clone();
        if let (Some(Some(_)), Some(base)) = (&inner.seen, &old_base) {
            if let Err(e) = self.seal(base, inner.seen_entries) {
                inner.journaling = None;
                return Err(e);
            }
        }
        let base = uuid::Uuid::new_v4().simple().to_string();
        let written = self.run({
            let (store, key, bytes, base) = (self.store.clone(), self.state_key.clone(), bytes.clone(), base.clone());
            async move {
                let result = put_with_base(store.clone(), key.clone(), bytes, mode, Some(base)).await?;
                etag_after(&store, &key, result).await
            }
        });
        let done = match written {
            Ok(etag) => Ok((etag, base)),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                // A retried request whose first try got through looks like this too: then the
                // object holds exactly our bytes (and our base).
                match self.run(fetch_state(self.store.clone(), self.state_key.clone())) {
                    Ok(Some((now, Some(etag), Some(b)))) if now == bytes && b == base => Ok((etag, base)),
                    _ => Err(StateError::Conflict {
                        location: self.state_url(),
                        message: format!("this run read {expected}, and the bucket now holds another"),
                    }),
                }
            }
            Err(e) => Err(self.write_failed(&e)),
        };
        let (etag, base) = match done {
            Ok(d) => d,
            Err(e) => {
                inner.journaling = None;
                return Err(e);
            }
        };
        inner.seen = Some(Some(etag));
        inner.seen_base = Some(base);
        inner.seen_entries = 0;
        inner.journaling = Some((doc.serial, doc.lineage.clone()));
        // The old journal is folded in: delete its entries. Best effort: nothing reads a
        // journal whose base is not the state's.
        if let Some(old) = old_base {
            if let Ok(folder) = self.journal_folder(&old) {
                let _ = self.run(delete_folder(self.store.clone(), folder));
            }
        }
        Ok(())
    }

    fn append(&self, doc: &StateDoc, entry: &JournalEntry) -> Result<(), StateError> {
        let mut inner = self.inner();
        let on_top = inner.journaling.as_ref().is_some_and(|(serial, lineage)| *serial == doc.serial && *lineage == doc.lineage);
        let base = match (&inner.seen, &inner.seen_base) {
            (Some(Some(_)), Some(base)) if on_top => base.clone(),
            // The first change of a run (the serial moved) or after a read: the whole document,
            // once; journaled from there on.
            _ => {
                drop(inner);
                return self.write(doc);
            }
        };
        if let Some(e) = self.lock_lost(&inner) {
            return Err(e);
        }
        let body = serde_json::to_vec(entry).map_err(|e| StateError::Write { location: self.state_url(), message: e.to_string() })?;
        let seq = inner.seen_entries + 1;
        let key = self.journal_key(&base, seq)?;
        let etag = match &inner.seen {
            Some(Some(etag)) => etag.clone(),
            _ => String::new(),
        };
        let created = self.run({
            let (store, key, body, state_key) = (self.store.clone(), key.clone(), body.clone(), self.state_key.clone());
            async move {
                put(store.clone(), key, body, PutMode::Create).await?;
                // The entry counts only if its base is still the state's: a full write since may
                // have folded and deleted this journal (so the key was free again).
                Ok(store.head(&state_key).await?.e_tag)
            }
        });
        match created {
            Ok(now) if now.as_deref() == Some(etag.as_str()) => {
                inner.seen_entries = seq;
                Ok(())
            }
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {
                inner.journaling = None;
                Err(StateError::Conflict {
                    location: self.state_url(),
                    message: format!("this run last saw the object with ETag {etag}, and another run has written it since"),
                })
            }
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                // A retried request whose first try got through: the object is our entry (and
                // its base still the state's).
                if let Ok(Some((now, _))) = self.run(fetch(self.store.clone(), key)) {
                    let head = self.run({
                        let (store, state_key) = (self.store.clone(), self.state_key.clone());
                        async move { Ok(store.head(&state_key).await?.e_tag) }
                    });
                    if now == body && matches!(head, Ok(Some(ref t)) if *t == etag) {
                        inner.seen_entries = seq;
                        return Ok(());
                    }
                }
                inner.journaling = None;
                Err(StateError::Conflict {
                    location: self.state_url(),
                    message: format!("journal entry {seq} exists already: another run wrote or appended since this one"),
                })
            }
            Err(e) => Err(self.write_failed(&e)),
        }
    }

    fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let mut inner = self.inner();
        if let Some(held) = &inner.lock {
            if held.shared.lost().is_none() {
                return if held.info.id == info.id { Ok(()) } else { Err(LockError::Held(Box::new(held.info.clone()))) };
            }
            // Lost to a takeover: forget it and contend again.
            if let Some(old) = inner.lock.take() {
                let _ = self.release(old);
            }
        }
        inner.lock = Some(self.take_lock(info)?);
        Ok(())
    }

    fn unlock(&self, id: &str) -> Result<(), LockError> {
        let mut inner = self.inner();
        match inner.lock.take() {
            Some(held) if held.info.id == id => self.release(held),
            other => {
                inner.lock = other;
                Err(LockError::NotHeld { location: self.lock_url(), id: id.to_string() })
            }
        }
    }

    fn lock_holder(&self) -> Result<Option<LockInfo>, LockError> {
        if let Some(held) = &self.inner().lock {
            if held.shared.lost().is_none() {
                return Ok(Some(held.info.clone()));
            }
        }
        Ok(self.read_lock()?.filter(|(r, _)| !r.expired()).map(|(r, _)| r.info))
    }

    fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        if self.inner().lock.as_ref().is_some_and(|h| h.info.id == id) {
            return self.unlock(id);
        }
        for _ in 0..3 {
            let Some((record, etag)) = self.read_lock()? else {
                return Err(LockError::NotHeld {
                    location: format!("{} (there is no lock object)", self.lock_url()),
                    id: id.to_string(),
                });
            };
            if record.info.id != id {
                return Err(LockError::NotHeld {
                    location: format!("{} (the lock there has ID {})", self.lock_url(), record.info.id),
                    id: id.to_string(),
                });
            }
            match self.run(delete_if_match(self.store.clone(), self.http.clone(), self.lock_key.clone(), etag)) {
                Ok(Deleted::Yes) => return Ok(()),
                Ok(Deleted::Changed) => continue, // renewed meanwhile: look again
                Err(e) => return Err(self.lock_failed(&e)),
            }
        }
        Err(LockError::Failed {
            location: self.lock_url(),
            message: "the lock object kept changing (its holder is renewing it, so it is alive); try again".into(),
        })
    }

    /// The states under the prefix: `<prefix>/<name>.state.json`, listed by `<name>`.
    fn list(&self) -> Result<Vec<String>, StateError> {
        let listed = self.run({
            let (store, prefix) = (self.store.clone(), self.prefix.clone());
            async move { store.list_with_delimiter(prefix.as_ref()).await }
        });
        let location = match &self.prefix {
            Some(p) => format!("s3://{}/{p}/", self.bucket),
            None => format!("s3://{}/", self.bucket),
        };
        let listed = listed.map_err(|e| StateError::Read { message: self.explain(&e, &location), location })?;
        let mut names: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename().and_then(|f| f.strip_suffix(STATE_SUFFIX)).map(str::to_string))
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        Ok(names)
    }
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        let held = self.inner.get_mut().unwrap_or_else(|e| e.into_inner()).lock.take();
        if let Some(held) = held {
            let _ = self.release(held);
        }
        // Not `drop(runtime)`: that blocks, and panics on a thread inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
