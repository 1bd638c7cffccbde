//! An in-process API server for the tests: `server::api::router` over a SQLite store in a
//! temporary directory, with the engine's workers, served on 127.0.0.1:0; and small helpers
//! (requests, polling, fixtures, a callback receiver).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use server::api::{self, AppState, Limits};
use server::auth::Auth;
use server::engine::{Engine, EngineSettings};
use server::store::Store;

/// How long a deployment may take to settle in these tests (script-less nodes are instant).
pub const SETTLE: Duration = Duration::from_secs(30);

pub struct Options {
    pub limits: Limits,
    /// Without workers nothing runs: deployments stay in their `*_IN_PROGRESS` status.
    pub workers: bool,
    pub auth: Auth,
}

impl Default for Options {
    fn default() -> Self {
        Options { limits: Limits::default(), workers: true, auth: Auth::disabled() }
    }
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    serve: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.engine.shutdown();
        self.serve.abort();
        for w in &self.workers {
            w.abort();
        }
    }
}

pub async fn start() -> TestServer {
    start_with(Options::default()).await
}

pub async fn start_with(opts: Options) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("db").display())).await.expect("store");
    let settings = EngineSettings { data_dir: dir.path().join("data"), workers: 2, lease: Duration::from_secs(10), grace: Duration::from_secs(1), ..EngineSettings::default() };
    let engine = Engine::new(store, settings);
    let workers = if opts.workers { engine.start() } else { Vec::new() };
    let state = AppState { engine: engine.clone(), auth: opts.auth, limits: Arc::new(opts.limits), endpoints: Arc::new(serde_json::Map::new()) };
    let app = api::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let serve = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    TestServer { base, client, engine, dir, serve, workers }
}

/// A fixture's text (`fixtures/<rel>`).
pub fn fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A response read whole: status, headers, body text and (when it parses) JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn content_type(&self) -> String {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    }

    /// An upstream error body with this status; returns its message.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "expected {status}, got {}: {}", self.status, self.text);
        let v = self.json();
        assert_eq!(v["code"], json!(status), "{v}");
        assert_eq!(v["title"], json!(self.status.canonical_reason().unwrap()), "{v}");
        let m = v["message"].as_str().expect("message").to_string();
        assert!(!m.is_empty(), "empty message: {v}");
        assert_eq!(v.as_object().unwrap().len(), 3, "only code, title, message: {v}");
        assert!(self.content_type().starts_with("application/json"), "{:?}", self.headers);
        m
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        reply(req.send().await.expect("request")).await
    }

    /// A request with `Authorization: Bearer <token>` (none when `token` is `None`).
    pub async fn send_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        reply(req.send().await.expect("request")).await
    }

    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        let req = self.client.request(method, self.url(path)).header("content-type", content_type).body(body);
        reply(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text);
        r.json()
    }

    /// POST /deployments; asserts 201 and returns the body.
    pub async fn create(&self, template: &str, parameters: Value) -> Value {
        let r = self.send(Method::POST, "/deployments", Some(json!({"template": template, "parameters": parameters}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "POST /deployments: {}", r.text);
        r.json()
    }

    /// Polls the deployment until its status is one of `wanted` (panics on timeout or on a
    /// `*_FAILED` status that was not wanted).
    pub async fn wait_status(&self, id: &str, wanted: &[&str]) -> Value {
        let start = Instant::now();
        loop {
            let d = self.get_json(&format!("/deployments/{id}")).await;
            let s = d["status"].as_str().unwrap_or_default().to_string();
            if wanted.contains(&s.as_str()) {
                return d;
            }
            assert!(!s.ends_with("_FAILED"), "deployment {id} is {s}: {d}");
            assert!(start.elapsed() < SETTLE, "deployment {id} still {s} after {SETTLE:?}: {d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `wait_status` for a deployment read with a token.
    pub async fn wait_status_as(&self, token: Option<&str>, id: &str, wanted: &str) -> Value {
        let start = Instant::now();
        loop {
            let r = self.send_as(token, Method::GET, &format!("/deployments/{id}"), None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let d = r.json();
            if d["status"] == wanted {
                return d;
            }
            assert!(start.elapsed() < SETTLE, "deployment {id} not {wanted}: {d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the deployment is gone (GET 404).
    pub async fn wait_gone(&self, id: &str) {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("/deployments/{id}")).await;
            if r.status == StatusCode::NOT_FOUND {
                return;
            }
            assert!(start.elapsed() < SETTLE, "deployment {id} still there: {}", r.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every resource of a deployment (one big page).
    pub async fn resources(&self, id: &str) -> Vec<Value> {
        let v = self.get_json(&format!("/deployments/{id}/resources?size=1000")).await;
        v["content"].as_array().unwrap().clone()
    }

    /// How many deployments the server has.
    pub async fn count(&self) -> u64 {
        self.get_json("/deployments").await["page"]["totalElements"].as_u64().unwrap()
    }
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    Reply { status, headers, text }
}

/// `yyyy-MM-dd'T'HH:mmZ` in UTC, as upstream writes dates.
pub fn date_re() -> regex::Regex {
    regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}\+0000$").unwrap()
}

pub fn uuid_re() -> regex::Regex {
    regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$").unwrap()
}

/// The `href` of the link with relation `rel`.
pub fn link(v: &Value, rel: &str) -> Option<String> {
    v["links"].as_array()?.iter().find(|l| l["rel"] == rel).and_then(|l| l["href"].as_str()).map(str::to_string)
}

/// An HTTP endpoint on 127.0.0.1:0 recording the JSON bodies POSTed to it.
pub struct CallbackReceiver {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CallbackReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CallbackReceiver {
    pub async fn start() -> CallbackReceiver {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let b = bodies.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let b = b.clone();
                async move {
                    b.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CallbackReceiver { url, bodies, task }
    }

    pub fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits until a body with status `status` arrived; returns all received so far.
    pub async fn wait_for(&self, status: &str) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.iter().any(|b| b["status"] == status) {
                return got;
            }
            assert!(start.elapsed() < SETTLE, "no callback with {status}; got {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A local port nothing listens on.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
