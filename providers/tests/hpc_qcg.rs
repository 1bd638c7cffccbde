//! The QCG-Computing client against the in-process fake (tests/support/qcg_fake.rs), which
//! enforces the request shapes of docs/providers/hpc.md.

#![cfg(feature = "hpc")]

#[path = "support/qcg_fake.rs"]
mod qcg_fake;

use providers::hpc::qcg::{QcgAuth, QcgScheduler};
use providers::hpc::{JobSpec, JobStatus, Phase, Scheduler, SchedulerErrorKind};
use providers::retry::RetryPolicy;
use qcg_fake::QcgFake;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "tok-good-0001";

fn retry() -> RetryPolicy {
    RetryPolicy { attempts: 4, base: Duration::from_millis(5), max: Duration::from_millis(20) }
}

fn token_file(dir: &Path, token: &str) -> std::path::PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, format!("{token}\n")).unwrap();
    p
}

fn scheduler(fake: &QcgFake, auth: QcgAuth) -> QcgScheduler {
    QcgScheduler::new(&fake.url(), auth, retry(), Duration::from_secs(10)).unwrap()
}

fn job(executable: &str, args: &[&str]) -> JobSpec {
    JobSpec {
        name: "jobs.first".into(),
        executable: Some(executable.into()),
        arguments: args.iter().map(|s| s.to_string()).collect(),
        stdout: Some("out.txt".into()),
        stderr: Some("err.txt".into()),
        partition: Some("standard".into()),
        nodes: Some(1),
        tasks: Some(2),
        time_limit_minutes: Some(5),
        ..JobSpec::default()
    }
}

/// Polls until the job ends; returns every state seen.
async fn run_to_end(s: &QcgScheduler, id: &str) -> (Vec<String>, JobStatus) {
    let mut states = Vec::new();
    for _ in 0..20 {
        let st = s.status(id).await.unwrap().expect("the job exists");
        states.push(st.state.clone());
        if st.phase.is_terminal() {
            return (states, st);
        }
    }
    panic!("job {id} never ended: {states:?}");
}

#[tokio::test]
async fn submit_poll_success_with_exit_code_times_and_output_locations() {
    let fake = QcgFake::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(&fake, QcgAuth::from_file(token_file(dir.path(), TOKEN)));
    s.check().await.unwrap();
    let id = s.submit(&job("/bin/echo", &["hello"])).await.unwrap();

    // What reached QCG is the documented description.
    let sent = fake.job(&id).unwrap().description;
    assert_eq!(
        sent,
        json!({
            "note": "jobs.first",
            "execution": {
                "executable": "/bin/echo", "args": ["hello"], "stdout": "out.txt", "stderr": "err.txt",
                "directory_policy": {"create": "OVERWRITE", "remove": "NEVER"}
            },
            "resources": {"queue": "standard", "wall_clock": "00:05:00", "components": [{"total_nodes": 1, "total_cores": 2}]}
        })
    );
    let (states, end) = run_to_end(&s, &id).await;
    assert_eq!(states, ["PENDING", "EXECUTING", "FINISHED"]);
    assert_eq!((end.phase, end.exit_code), (Phase::Succeeded, Some(0)));
    assert_eq!(end.id, id);
    assert_eq!(end.start_time.as_deref(), Some("2019-06-07T12:55:25Z"));
    assert_eq!(end.end_time.as_deref(), Some("2019-06-07T12:56:25Z"));
    assert_eq!(end.stdout, Some(format!("/qcg/{id}/out.txt")));
    assert_eq!(end.stderr, Some(format!("/qcg/{id}/err.txt")));
    // Every request carried the bearer token.
    assert!(fake.seen().iter().all(|r| r.authorization.as_deref() == Some("Bearer tok-good-0001")));
    assert_eq!(s.kind(), "qcg");
}

#[tokio::test]
async fn a_failing_job_reports_its_exit_code_and_qcgs_reason() {
    let fake = QcgFake::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(&fake, QcgAuth::from_file(token_file(dir.path(), TOKEN)));
    let id = s.submit(&job("/bin/sh", &["-c", "exit 3"])).await.unwrap();
    let (_, end) = run_to_end(&s, &id).await;
    assert_eq!((end.phase, end.state.as_str(), end.exit_code), (Phase::Failed, "FAILED", Some(3)));
    assert_eq!(end.reason.as_deref(), Some("application exited with code 3"));

    let id = s.submit(&job("/bin/false", &[])).await.unwrap();
    let (_, end) = run_to_end(&s, &id).await;
    assert_eq!((end.phase, end.exit_code), (Phase::Failed, Some(1)));
}

#[tokio::test]
async fn cancel_a_queued_job_then_again_and_an_unknown_one() {
    let fake = QcgFake::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(&fake, QcgAuth::from_file(token_file(dir.path(), TOKEN)));
    let id = s.submit(&job("/bin/sleep", &["600"])).await.unwrap();
    s.cancel(&id).await.unwrap();
    let st = s.status(&id).await.unwrap().unwrap();
    assert_eq!((st.phase, st.state.as_str()), (Phase::Cancelled, "CANCELED"));
    // QCG answers 400 for a job that already ended; that is a success.
    s.cancel(&id).await.unwrap();
    let done = s.submit(&job("/bin/true", &[])).await.unwrap();
    run_to_end(&s, &done).await;
    s.cancel(&done).await.unwrap();
    s.cancel("no-such-job").await.unwrap();
    let deletes: Vec<u16> = fake.seen().iter().filter(|r| r.method == "DELETE").map(|r| r.status).collect();
    assert_eq!(deletes, [204, 400, 400, 404]);
}

#[tokio::test]
async fn an_unknown_id_is_none() {
    let fake = QcgFake::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(&fake, QcgAuth::from_file(token_file(dir.path(), TOKEN)));
    assert_eq!(s.status("4242").await.unwrap(), None);
    // An id that would leave /jobs/ is encoded, so it is just unknown.
    assert_eq!(s.status("../resources").await.unwrap(), None);
    assert!(fake.seen().iter().any(|r| r.path == "/jobs/..%2Fresources"));
}

#[tokio::test]
async fn busy_answers_are_retried_and_then_reported_as_transient() {
    let fake = QcgFake::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(&fake, QcgAuth::from_file(token_file(dir.path(), TOKEN)));
    fake.fail_next(1, 503);
    fake.fail_next(1, 429);
    let id = s.submit(&job("/bin/true", &[])).await.unwrap();
    let posts: Vec<u16> = fake.seen().iter().filter(|r| r.method == "POST").map(|r| r.status).collect();
    assert_eq!(posts, [503, 429, 201]);
    assert!(fake.job(&id).is_some());

    fake.fail_next(10, 503);
    let e = s.status(&id).await.unwrap_err();
    assert_eq!(e.kind, SchedulerErrorKind::Transient);
    assert!(e.message.contains("HTTP 503") && e.message.contains("after 4 attempts"), "{}", e.message);
}

#[tokio::test]
async fn a_refused_description_is_reported_in_qcgs_words() {
    let fake = QcgFake::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(&fake, QcgAuth::from_file(token_file(dir.path(), TOKEN)));
    let mut j = job("/bin/true", &[]);
    j.partition = Some("gpu-huge".into());
    let e = s.submit(&j).await.unwrap_err();
    assert_eq!(e.kind, SchedulerErrorKind::Rejected);
    assert!(e.message.contains("HTTP 400") && e.message.contains("resources.queue: Unknown queue \"gpu-huge\"."), "{}", e.message);
    assert!(e.message.contains("jobs.first"), "names the job: {}", e.message);

    // What cannot be said in QCG never leaves Rosca.
    let mut j = job("/bin/true", &[]);
    j.account = Some("proj1".into());
    let e = s.submit(&j).await.unwrap_err();
    assert!(e.message.contains("`account`"), "{}", e.message);
    assert!(fake.seen().iter().filter(|r| r.method == "POST").count() == 1);
}

#[tokio::test]
async fn an_expired_token_is_renewed_through_the_token_command_once() {
    let fake = QcgFake::start("tok-A-000001").await;
    let dir = tempfile::tempdir().unwrap();
    let tokfile = token_file(dir.path(), "tok-A-000001");
    let count = dir.path().join("count");
    let script = format!("echo run >> '{}'; cat '{}'", count.display(), tokfile.display());
    let s = scheduler(&fake, QcgAuth::from_command(vec!["sh".into(), "-c".into(), script]).unwrap());
    let id = s.submit(&job("/bin/true", &[])).await.unwrap();
    let runs = || std::fs::read_to_string(&count).unwrap_or_default().lines().count();
    assert_eq!(runs(), 1, "the token is fetched once and kept");
    s.status(&id).await.unwrap().unwrap();
    assert_eq!(runs(), 1);

    // The token expires; the command now prints a new one.
    fake.expire_token("tok-A-000001");
    fake.accept_token("tok-B-000002");
    std::fs::write(&tokfile, "tok-B-000002\n").unwrap();
    let st = s.status(&id).await.unwrap().unwrap();
    assert_eq!(st.state, "EXECUTING");
    assert_eq!(runs(), 2);
    let last: Vec<_> = fake.seen().iter().rev().take(2).map(|r| (r.status, r.authorization.clone().unwrap_or_default())).collect();
    assert_eq!(last, [(200, "Bearer tok-B-000002".to_string()), (401, "Bearer tok-A-000001".to_string())]);

    // Renewing does not help: one more run, then an Auth error naming the command.
    fake.expire_token("tok-B-000002");
    std::fs::write(&tokfile, "tok-C-000003\n").unwrap();
    let e = s.status(&id).await.unwrap_err();
    assert_eq!(e.kind, SchedulerErrorKind::Auth);
    assert!(e.message.contains("refused the token from command `sh -c") && e.message.contains("Invalid token."), "{}", e.message);
    assert_eq!(runs(), 3);
}

#[tokio::test]
async fn a_bad_bearer_is_never_printed() {
    let secret = "very-secret-bearer-XYZ-123";
    let fake = QcgFake::start(TOKEN).await;
    fake.echo_authorization_in_errors();
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(&fake, QcgAuth::from_file(token_file(dir.path(), secret)));
    let mut messages = Vec::new();
    messages.push(s.check().await.unwrap_err());
    messages.push(s.submit(&job("/bin/true", &[])).await.unwrap_err());
    messages.push(s.status("1").await.unwrap_err());
    messages.push(s.cancel("1").await.unwrap_err());
    for e in &messages {
        assert_eq!(e.kind, SchedulerErrorKind::Auth, "{}", e.message);
        assert!(!e.message.contains(secret), "token in: {}", e.message);
        assert!(!format!("{e:?}").contains(secret));
        assert!(e.message.contains("file ") && e.message.contains("renew the OIDC access token"), "{}", e.message);
    }
    // The server echoed the header in its body, and the client scrubbed it.
    assert!(fake.seen().iter().all(|r| r.status == 401));

    // A good token, and a 400 whose body echoes it: scrubbed too.
    let good = QcgFake::start(secret).await;
    good.echo_authorization_in_errors();
    let s = scheduler(&good, QcgAuth::from_file(token_file(dir.path(), secret)));
    let mut j = job("/bin/true", &[]);
    j.partition = Some("nope".into());
    let e = s.submit(&j).await.unwrap_err();
    assert!(e.message.contains("Unknown queue") && !e.message.contains(secret), "{}", e.message);
    assert!(e.message.contains("Bearer ***"), "{}", e.message);
}

#[tokio::test]
async fn a_missing_token_variable_is_reported_without_a_request() {
    let fake = QcgFake::start(TOKEN).await;
    let s = scheduler(&fake, QcgAuth::from_env("ROSCA_TEST_QCG_TOKEN_THAT_IS_NOT_SET"));
    let e = s.check().await.unwrap_err();
    assert_eq!(e.kind, SchedulerErrorKind::Auth);
    assert!(e.message.contains("ROSCA_TEST_QCG_TOKEN_THAT_IS_NOT_SET is not set"), "{}", e.message);
    assert!(fake.seen().is_empty());
}

/// The fake itself: it refuses what the documented shapes do not allow, so passing against it
/// means something.
#[tokio::test]
async fn the_fake_enforces_the_documented_shapes() {
    let fake = QcgFake::start(TOKEN).await;
    let http = reqwest::Client::new();
    let post = |body: Value, auth: Option<&str>| {
        let mut r = http.post(format!("{}/jobs/", fake.url())).json(&body);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let ok = json!({"execution": {"executable": "/bin/true"}});
    assert_eq!(post(ok.clone(), None).await, (401, json!({"detail": "Authentication credentials were not provided."})));
    assert_eq!(post(ok.clone(), Some("Bearer wrong")).await.0, 401);
    assert_eq!(post(ok.clone(), Some("Basic dXNlcjpwdw==")).await.0, 401);
    assert_eq!(post(ok.clone(), Some("bearer tok-good-0001")).await.0, 201, "the scheme is case-insensitive");
    let bad = [
        (json!({"execution": {"executable": "/bin/true", "argz": ["x"]}}), "execution.argz", "Unknown field."),
        (json!({"note": "x"}), "execution.executable", "This field is required."),
        (json!({"execution": {"executable": "/bin/true", "args": "-l"}}), "execution.args", "Expected a list of strings."),
        (json!({"execution": {"executable": "a", "environment": {"N": 1}}}), "execution.environment", "Expected a dictionary of strings."),
        (json!({"execution": {"executable": "a", "directory_policy": {"remove": "LATER"}}}), "execution.directory_policy.remove", "\"LATER\" is not a valid choice."),
        (json!({"execution": {"executable": "a"}, "resources": {"components": [{"total_cores": "2"}]}}), "resources.components[0].total_cores", "A valid integer is required."),
        (json!({"execution": {"executable": "a"}, "resources": {"components": [{"_native": ["x"]}]}}), "resources.components[0]._native", "Unknown field."),
        (json!({"execution": {"executable": "a"}, "name": "j"}), "name", "Unknown field."),
    ];
    for (body, field, message) in bad {
        let (status, answer) = post(body.clone(), Some("Bearer tok-good-0001")).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer[field], json!([message]), "{body}: {answer}");
    }
}
