//! An in-process QCG-Computing for the QCG client's tests: no QCG service can be installed here,
//! so this fake answers on 127.0.0.1 and ENFORCES the request shapes docs/providers/hpc.md lists
//! (read from indigo-dc/deep-qcg-client's model classes and the orchestrator's QcgServiceImpl):
//! every request needs `Authorization: Bearer <a token it accepts>`, a job description with an
//! unknown, missing or ill-typed field is refused with 400 and a Django-REST-style body naming the
//! field. Jobs move one state per look: SUBMITTED → PENDING → EXECUTING → FINISHED or FAILED.
//!
//! Test knobs: which tokens are accepted (expiry = removing one), the next answers forced to a
//! status (503, 429), the queues that exist, and a log of what was asked.

#![allow(dead_code)]

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Clone, Debug)]
pub struct FakeJob {
    pub id: String,
    pub description: Value,
    pub state: &'static str,
    /// Looks so far (each GET moves the job one step).
    pub looks: u32,
    pub exit_code: i64,
}

#[derive(Default)]
struct State {
    tokens: Vec<String>,
    queues: Vec<String>,
    jobs: BTreeMap<String, FakeJob>,
    next_id: u64,
    forced: VecDeque<u16>,
    seen: Vec<Seen>,
    /// Put the request's Authorization header into error bodies, as a careless server might,
    /// to show the client scrubs it.
    echo_authorization: bool,
}

pub struct QcgFake {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl QcgFake {
    /// A fake accepting `token`, with the queues `standard` and `debug`.
    pub async fn start(token: &str) -> QcgFake {
        let state = Arc::new(Mutex::new(State {
            tokens: vec![token.to_string()],
            queues: vec!["standard".into(), "debug".into()],
            next_id: 1000,
            ..State::default()
        }));
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any()).respond_with(Responder { state: state.clone() }).mount(&server).await;
        QcgFake { server, state }
    }

    /// The API root the client is given.
    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn accept_token(&self, token: &str) {
        lock(&self.state).tokens.push(token.to_string());
    }

    /// The token stops being accepted, as an expired one.
    pub fn expire_token(&self, token: &str) {
        lock(&self.state).tokens.retain(|t| t != token);
    }

    /// The next `n` requests (after auth) are answered with `status` and nothing else happens.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut s = lock(&self.state);
        for _ in 0..n {
            s.forced.push_back(status);
        }
    }

    pub fn echo_authorization_in_errors(&self) {
        lock(&self.state).echo_authorization = true;
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    pub fn job(&self, id: &str) -> Option<FakeJob> {
        lock(&self.state).jobs.get(id).cloned()
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
}

fn detail(status: u16, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"detail": text}))
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = lock(&self.state);
        let method = req.method.as_str().to_string();
        let path = req.url.path().to_string();
        let authorization = req.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let (status, resp) = answer(&mut st, req, &method, &path, authorization.as_deref());
        st.seen.push(Seen { method, path, authorization, status });
        resp
    }
}

fn answer(st: &mut State, req: &Request, method: &str, path: &str, authorization: Option<&str>) -> (u16, ResponseTemplate) {
    // Authentication first, as the real service would.
    let token = authorization.and_then(|h| {
        let (scheme, token) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    let Some(token) = token else {
        return (401, detail(401, "Authentication credentials were not provided."));
    };
    if !st.tokens.contains(&token) {
        let mut body = json!({"detail": "Invalid token."});
        if st.echo_authorization {
            body["received"] = json!(authorization);
        }
        return (401, ResponseTemplate::new(401).set_body_json(body));
    }
    if let Some(status) = st.forced.pop_front() {
        return (status, detail(status, "Service temporarily unavailable, try again later."));
    }
    let echo = |mut body: Value| {
        if st.echo_authorization {
            body["received"] = json!(authorization);
        }
        body
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("POST", ["jobs"]) => {
            if !path.ends_with('/') {
                // Django's APPEND_SLASH cannot redirect a POST.
                return (404, detail(404, "Not found."));
            }
            let json_type = req.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
            if !json_type {
                return (415, detail(415, "Unsupported media type in request."));
            }
            let Ok(desc) = serde_json::from_slice::<Value>(&req.body) else {
                return (400, detail(400, "JSON parse error."));
            };
            let mut errors = BTreeMap::new();
            check_description(&desc, &st.queues, &mut errors);
            if !errors.is_empty() {
                let body: Map<String, Value> = errors.into_iter().map(|(k, v)| (k, json!([v]))).collect();
                return (400, ResponseTemplate::new(400).set_body_json(echo(Value::Object(body))));
            }
            st.next_id += 1;
            let id = st.next_id.to_string();
            let exit_code = outcome(&desc);
            let job = FakeJob { id: id.clone(), description: desc, state: "SUBMITTED", looks: 0, exit_code };
            let body = job_json(&job);
            st.jobs.insert(id, job);
            (201, ResponseTemplate::new(201).set_body_json(body))
        }
        ("GET", ["jobs"]) => {
            let size = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "page_size")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(20);
            let results: Vec<Value> = st.jobs.values().take(size).map(job_json).collect();
            (200, ResponseTemplate::new(200).set_body_json(json!({"count": st.jobs.len(), "next": null, "previous": null, "results": results})))
        }
        ("GET", ["jobs", id]) => match st.jobs.get_mut(*id) {
            None => (404, detail(404, "Not found.")),
            Some(job) => {
                job.looks += 1;
                job.state = match job.state {
                    "SUBMITTED" => "PENDING",
                    "PENDING" => "EXECUTING",
                    "EXECUTING" if job.exit_code == 0 => "FINISHED",
                    "EXECUTING" => "FAILED",
                    other => other,
                };
                (200, ResponseTemplate::new(200).set_body_json(job_json(job)))
            }
        },
        ("DELETE", ["jobs", id]) => match st.jobs.get_mut(*id) {
            None => (404, detail(404, "Not found.")),
            Some(job) if matches!(job.state, "FINISHED" | "FAILED" | "CANCELED") => {
                let text = format!("Job {} in state {} cannot be canceled.", job.id, job.state);
                (400, ResponseTemplate::new(400).set_body_json(echo(json!({"detail": text}))))
            }
            Some(job) => {
                job.state = "CANCELED";
                (204, ResponseTemplate::new(204))
            }
        },
        (_, ["jobs"]) | (_, ["jobs", _]) => (405, detail(405, &format!("Method \"{method}\" not allowed."))),
        _ => (404, detail(404, "Not found.")),
    }
}

/// The exit code the job will end with: `/bin/false` fails with 1, `/bin/sh -c "exit N"` with N.
fn outcome(desc: &Value) -> i64 {
    let exec = &desc["execution"];
    match exec["executable"].as_str() {
        Some("/bin/false") => 1,
        Some("/bin/sh") | Some("sh") => {
            let args: Vec<&str> = exec["args"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            match args.as_slice() {
                ["-c", script, ..] => script.trim().strip_prefix("exit ").and_then(|n| n.trim().parse().ok()).unwrap_or(0),
                _ => 0,
            }
        }
        _ => 0,
    }
}

fn job_json(job: &FakeJob) -> Value {
    let terminal = matches!(job.state, "FINISHED" | "FAILED");
    let started = matches!(job.state, "EXECUTING" | "FINISHED" | "FAILED");
    json!({
        "id": job.id,
        "attributes": job.description.get("attributes").cloned().unwrap_or(json!({})),
        "user": "fake-user",
        "state": job.state,
        "operation": null,
        "note": job.description.get("note"),
        "description": job.description,
        "queue": job.description["resources"]["queue"].as_str().unwrap_or("standard"),
        "local_user": "fake",
        "local_id": format!("slurm-{}", job.id),
        "submit_time": "2019-06-07T12:55:23.912772Z",
        "start_time": if started { json!("2019-06-07T12:55:25Z") } else { Value::Null },
        "finish_time": if terminal { json!("2019-06-07T12:56:25Z") } else { Value::Null },
        "exit_code": if terminal { json!(job.exit_code) } else { Value::Null },
        "errors": if job.state == "FAILED" { json!(format!("application exited with code {}", job.exit_code)) } else { Value::Null },
        "resubmit": 1,
        "work_dir": format!("/qcg/{}", job.id),
        "created_work_dir": true,
    })
}

// --- the description schema (client model classes, docs/providers/hpc.md) ---------------------

enum Ty {
    Str,
    Int,
    StrList,
    StrMap,
    OneOf(&'static [&'static str]),
    Obj(&'static [(&'static str, Ty)]),
    List(&'static [(&'static str, Ty)]),
}

const REMOVE_CUSTOM: &[(&str, Ty)] = &[("status", Ty::OneOf(&["FINISHED", "FAILED", "CANCELED"])), ("origin", Ty::OneOf(&["ANY", "OWNED", "FOREIGN"]))];
const POLICY: &[(&str, Ty)] = &[
    ("create", Ty::OneOf(&["OVERWRITE", "NOT_OVERWRITE"])),
    ("remove", Ty::OneOf(&["ALWAYS", "NEVER", "FINISHED_OWNED", "CUSTOM"])),
    ("remove_custom", Ty::Obj(REMOVE_CUSTOM)),
];
const EXECUTION: &[(&str, Ty)] = &[
    ("executable", Ty::Str),
    ("args", Ty::StrList),
    ("stdout", Ty::Str),
    ("stderr", Ty::Str),
    ("std_outerr", Ty::Str),
    ("stdin", Ty::Str),
    ("environment", Ty::StrMap),
    ("directory", Ty::Str),
    ("directory_policy", Ty::Obj(POLICY)),
];
const COMPONENT: &[(&str, Ty)] = &[
    ("total_cores", Ty::Int),
    ("total_nodes", Ty::Int),
    ("cores_per_node", Ty::Int),
    ("node_attrs", Ty::StrList),
    ("memory_per_node", Ty::Int),
    ("memory_per_core", Ty::Int),
    ("consumable", Ty::Str),
    ("native", Ty::StrList),
];
const RESOURCES: &[(&str, Ty)] = &[("components", Ty::List(COMPONENT)), ("wall_clock", Ty::Str), ("queue", Ty::Str)];
const MONITORING: &[(&str, Ty)] = &[];
const DESCRIPTION: &[(&str, Ty)] = &[
    ("note", Ty::Str),
    ("schema", Ty::Str),
    ("execution", Ty::Obj(EXECUTION)),
    ("resources", Ty::Obj(RESOURCES)),
    ("monitoring", Ty::Obj(MONITORING)),
    ("attributes", Ty::StrMap),
];

fn check_description(desc: &Value, queues: &[String], errors: &mut BTreeMap<String, String>) {
    if !desc.is_object() {
        errors.insert("non_field_errors".into(), "Invalid data. Expected a dictionary.".into());
        return;
    }
    check_object("", desc, DESCRIPTION, errors);
    let has_schema = desc.get("schema").is_some_and(|s| !s.is_null());
    let exe = desc.get("execution").and_then(|e| e.get("executable"));
    if !has_schema && exe.is_none_or(|e| e.is_null() || e.as_str().is_some_and(|s| s.trim().is_empty())) {
        errors.insert("execution.executable".into(), "This field is required.".into());
    }
    if let Some(q) = desc.get("resources").and_then(|r| r.get("queue")).and_then(Value::as_str) {
        if !queues.iter().any(|x| x == q) {
            errors.insert("resources.queue".into(), format!("Unknown queue \"{q}\"."));
        }
    }
}

fn check_object(prefix: &str, v: &Value, fields: &[(&str, Ty)], errors: &mut BTreeMap<String, String>) {
    let Some(m) = v.as_object() else {
        errors.insert(prefix.to_string(), "Expected a dictionary of items.".into());
        return;
    };
    for (k, x) in m {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match fields.iter().find(|(name, _)| name == k) {
            None => {
                errors.insert(path, "Unknown field.".into());
            }
            Some((_, ty)) => {
                if !x.is_null() {
                    check(&path, x, ty, errors);
                }
            }
        }
    }
}

fn check(path: &str, x: &Value, ty: &Ty, errors: &mut BTreeMap<String, String>) {
    let mut bad = |m: &str| {
        errors.insert(path.to_string(), m.to_string());
    };
    match ty {
        Ty::Str => {
            if !x.is_string() {
                bad("Not a valid string.");
            }
        }
        Ty::Int => {
            if !x.as_i64().is_some_and(|i| (0..=i64::from(i32::MAX)).contains(&i)) {
                bad("A valid integer is required.");
            }
        }
        Ty::StrList => {
            if !x.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                bad("Expected a list of strings.");
            }
        }
        Ty::StrMap => {
            if !x.as_object().is_some_and(|m| m.values().all(Value::is_string)) {
                bad("Expected a dictionary of strings.");
            }
        }
        Ty::OneOf(allowed) => {
            if !x.as_str().is_some_and(|s| allowed.contains(&s)) {
                bad(&format!("\"{}\" is not a valid choice.", x.as_str().unwrap_or("?")));
            }
        }
        Ty::Obj(fields) => check_object(path, x, fields, errors),
        Ty::List(fields) => match x.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_object(&format!("{path}[{i}]"), item, fields, errors);
                }
            }
            None => bad("Expected a list of items."),
        },
    }
}
