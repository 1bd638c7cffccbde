//! The Slurm client against recorded and documented slurmrestd answers, served by wiremock: the
//! 22.05 (v0.0.38) answers captured from a real slurmrestd (providers/tests/data/slurm/), and a
//! v0.0.41 double built from the shapes in v0.0.41-shapes.md. The real server is exercised by
//! cli/tests/hpc.rs; this file covers what a real server cannot be made to do on demand (other
//! API versions, 503s, a token refused mid-run) and pins every recorded answer's reading.

#![cfg(feature = "hpc")]

use providers::hpc::slurm::token::TokenSource;
use providers::hpc::slurm::{SlurmConfig, SlurmScheduler};
use providers::hpc::{JobSpec, Phase, Scheduler, SchedulerErrorKind};
use providers::retry::RetryPolicy;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn data(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/slurm").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn scheduler(url: &str, token: TokenSource) -> SlurmScheduler {
    SlurmScheduler::new(SlurmConfig {
        url: url.to_string(),
        user: "root".into(),
        token,
        api_version: None,
        retry: RetryPolicy { attempts: 3, base: Duration::from_millis(1), max: Duration::from_millis(5) },
        request_timeout: Duration::from_secs(5),
    })
    .unwrap()
}

async fn serving_22_05() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path("/openapi/v3")).respond_with(ResponseTemplate::new(200).set_body_json(data("openapi-22.05.json"))).mount(&server).await;
    server
}

#[tokio::test]
async fn every_recorded_22_05_job_answer_reads_as_slurm_meant_it() {
    let server = serving_22_05().await;
    // (file, its HTTP status, job id) → (state, phase, exit code, reason)
    let cases: &[(&str, u16, &str, Option<(&str, Phase, Option<i64>, Option<&str>)>)] = &[
        ("v0.0.38-job-completed.json", 200, "47", Some(("COMPLETED", Phase::Succeeded, Some(0), None))),
        ("v0.0.38-job-failed.json", 200, "48", Some(("FAILED", Phase::Failed, Some(3), Some("NonZeroExitCode")))),
        ("v0.0.38-job-cancelled.json", 200, "45", Some(("CANCELLED", Phase::Cancelled, None, Some("killed by signal 15")))),
        ("v0.0.38-job-timeout.json", 200, "44", Some(("TIMEOUT", Phase::Failed, None, Some("TimeLimit; killed by signal 15")))),
        ("v0.0.38-job-pending.json", 200, "46", Some(("PENDING", Phase::Queued, None, Some("Dependency")))),
        ("v0.0.38-job-running.json", 200, "45", Some(("RUNNING", Phase::Running, None, None))),
        ("v0.0.38-job-dependency-never-satisfied.json", 200, "50", Some(("PENDING", Phase::Failed, None, Some("DependencyNeverSatisfied")))),
        ("v0.0.38-job-purged.json", 500, "30", None),
        ("v0.0.38-job-unknown.json", 500, "999999", None),
    ];
    for (file, status, id, want) in cases {
        server.reset().await;
        Mock::given(method("GET")).and(path("/openapi/v3")).respond_with(ResponseTemplate::new(200).set_body_json(data("openapi-22.05.json"))).mount(&server).await;
        Mock::given(method("GET"))
            .and(path(format!("/slurm/v0.0.38/job/{id}")))
            .respond_with(ResponseTemplate::new(*status).set_body_json(data(file)))
            // An unknown job is a final answer: it must not be retried like a 500 from a proxy.
            .expect(1)
            .mount(&server)
            .await;
        let s = scheduler(&server.uri(), TokenSource::Fixed("t".into()));
        let got = s.status(id).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        match (want, got) {
            (None, None) => {}
            (Some((state, phase, exit, reason)), Some(g)) => {
                assert_eq!((g.state.as_str(), g.phase, g.exit_code, g.reason.as_deref()), (*state, *phase, *exit, *reason), "{file}");
                assert!(g.stdout.as_deref().is_some_and(|o| o.ends_with(&format!("/{id}.out"))), "{file}: stdout {:?}", g.stdout);
            }
            (w, g) => panic!("{file}: wanted {w:?}, got {g:?}"),
        }
        server.verify().await;
    }
}

#[tokio::test]
async fn recorded_22_05_refusals_keep_slurms_words() {
    let server = serving_22_05().await;
    Mock::given(method("POST"))
        .and(path("/slurm/v0.0.38/job/submit"))
        .respond_with(ResponseTemplate::new(500).set_body_json(data("v0.0.38-job-submit-error-partition.json")))
        .expect(1)
        .mount(&server)
        .await;
    let s = scheduler(&server.uri(), TokenSource::Fixed("t".into()));
    let job = JobSpec { name: "j".into(), script: Some("#!/bin/sh\ntrue\n".into()), partition: Some("nope".into()), ..Default::default() };
    let e = s.submit(&job).await.unwrap_err();
    assert_eq!(e.kind, SchedulerErrorKind::Rejected);
    assert!(e.message.contains("Invalid partition name specified"), "{}", e.message);
}

#[tokio::test]
async fn a_token_refused_the_22_05_way_is_renewed_by_the_command_once() {
    let server = serving_22_05().await;
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("runs");
    // First run prints token-1, later runs token-2.
    let cmd = format!("echo x >> {c}; if [ $(wc -l < {c}) -eq 1 ]; then echo SLURM_JWT=token-1; else echo SLURM_JWT=token-2; fi", c = counter.display());
    Mock::given(method("GET"))
        .and(path("/slurm/v0.0.38/job/47"))
        .and(header("X-SLURM-USER-TOKEN", "token-1"))
        .respond_with(ResponseTemplate::new(500).set_body_json(data("v0.0.38-auth-expired-token.json")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/slurm/v0.0.38/job/47"))
        .and(header("X-SLURM-USER-TOKEN", "token-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(data("v0.0.38-job-completed.json")))
        .mount(&server)
        .await;
    let s = scheduler(&server.uri(), TokenSource::Command(cmd));
    let got = s.status("47").await.unwrap().unwrap();
    assert_eq!(got.phase, Phase::Succeeded);
    assert_eq!(std::fs::read_to_string(&counter).unwrap().lines().count(), 2);

    // A fixed token cannot be renewed: the answer says to check it, and never shows it.
    let s = scheduler(&server.uri(), TokenSource::Fixed("token-1".into()));
    let e = s.status("47").await.unwrap_err();
    assert_eq!(e.kind, SchedulerErrorKind::Auth);
    assert!(e.message.contains("check the token") && !e.message.contains("token-1"), "{}", e.message);
}

#[tokio::test]
async fn a_current_slurm_is_spoken_to_in_v0_0_41() {
    let server = MockServer::start().await;
    let spec = json!({"openapi": "3.0.3", "paths": {
        "/slurm/v0.0.40/job/submit": {}, "/slurm/v0.0.41/job/submit": {}, "/slurm/v0.0.41/job/{job_id}": {}, "/slurm/v0.0.41/ping/": {}
    }});
    Mock::given(method("GET")).and(path("/openapi/v3")).respond_with(ResponseTemplate::new(200).set_body_json(spec)).mount(&server).await;
    // The submit body of v0.0.41-shapes.md: the script at the top and in `job`, the environment
    // as NAME=value strings, limits as {set, infinite, number}.
    Mock::given(method("POST"))
        .and(path("/slurm/v0.0.41/job/submit"))
        .and(|r: &Request| {
            let b: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            b["script"].is_string()
                && b["job"]["script"] == b["script"]
                && b["job"]["environment"].as_array().is_some_and(|e| e.iter().all(|v| v.as_str().is_some_and(|s| s.contains('='))))
                && b["job"]["time_limit"] == json!({"set": true, "infinite": false, "number": 5})
                && b["job"].get("argv").is_none()
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"job_id": 812, "step_id": "batch", "job_submit_user_msg": "", "errors": [], "warnings": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/slurm/v0.0.41/job/812"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"jobs": [{
            "job_id": 812, "job_state": ["COMPLETED"], "state_reason": "None",
            "exit_code": {"status": ["SUCCESS"], "return_code": {"set": true, "infinite": false, "number": 0}, "signal": {"id": {"set": false, "infinite": false, "number": 0}, "name": ""}},
            "start_time": {"set": true, "infinite": false, "number": 1700000000}, "end_time": {"set": true, "infinite": false, "number": 1700000005},
            "standard_output": "/home/u/%j.out", "current_working_directory": "/home/u"}], "last_backfill": {"set": false}, "last_update": {"set": false}, "errors": [], "warnings": []})))
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path("/slurm/v0.0.41/ping/")).respond_with(ResponseTemplate::new(200).set_body_json(json!({"pings": [{"hostname": "c1", "pinged": "UP", "latency": 120, "mode": "primary"}]}))).expect(1).mount(&server).await;
    let s = scheduler(&server.uri(), TokenSource::Fixed("t".into()));
    s.check().await.unwrap();
    let job = JobSpec { name: "j".into(), script: Some("#!/bin/sh\ntrue\n".into()), time_limit_minutes: Some(5), ..Default::default() };
    let id = s.submit(&job).await.unwrap();
    assert_eq!(id, "812");
    assert_eq!(s.version().await.unwrap(), "v0.0.41");
    let st = s.status(&id).await.unwrap().unwrap();
    assert_eq!((st.phase, st.exit_code, st.stdout.as_deref()), (Phase::Succeeded, Some(0), Some("/home/u/812.out")));
    server.verify().await;
}

#[tokio::test]
async fn a_server_without_a_version_in_common_is_named_with_what_it_serves() {
    let server = MockServer::start().await;
    let spec = json!({"paths": {"/slurm/v0.0.36/job/submit": {}, "/slurm/v0.0.37/job/submit": {}}});
    Mock::given(method("GET")).and(path("/openapi/v3")).respond_with(ResponseTemplate::new(200).set_body_json(spec)).mount(&server).await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404).set_body_string("Unable to find path")).mount(&server).await;
    let s = scheduler(&server.uri(), TokenSource::Fixed("t".into()));
    let e = s.check().await.unwrap_err();
    assert_eq!(e.kind, SchedulerErrorKind::Setup);
    assert!(e.message.contains("it serves: v0.0.36, v0.0.37") && e.message.contains("-s openapi/v0.0.38"), "{}", e.message);
}

#[tokio::test]
async fn unavailable_answers_are_retried_and_a_dead_server_is_named() {
    let server = serving_22_05().await;
    Mock::given(method("GET")).and(path("/slurm/v0.0.38/job/47")).respond_with(ResponseTemplate::new(503)).up_to_n_times(2).mount(&server).await;
    Mock::given(method("GET")).and(path("/slurm/v0.0.38/job/47")).respond_with(ResponseTemplate::new(200).set_body_json(data("v0.0.38-job-completed.json"))).mount(&server).await;
    let s = scheduler(&server.uri(), TokenSource::Fixed("t".into()));
    assert_eq!(s.status("47").await.unwrap().unwrap().phase, Phase::Succeeded);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = scheduler(&format!("http://127.0.0.1:{port}"), TokenSource::Fixed("t".into()));
    let e = s.check().await.unwrap_err();
    assert_eq!(e.kind, SchedulerErrorKind::Transient);
    assert!(e.message.contains("connection failed") && e.message.contains("after 3 attempts"), "{}", e.message);
}
