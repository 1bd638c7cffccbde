//! End to end through the `rosca` binary against a real Slurm (22.05, slurmrestd with JWT, one
//! node of 16 CPUs on 127.0.0.1) started by scripts/services/slurm.sh; `scripts/test.sh`
//! exports ROSCA_TEST_SLURM_ENV, the env file it writes (SLURMRESTD_URL, SLURM_USER_NAME, the
//! token command and script). Each test has its own directory, rosca.toml (`[sites.hpc] kind =
//! "slurm"`, token from a command) and job directory. What the tests check on the cluster they
//! read with their own requests to slurmrestd ([`Slurm`]), not through the provider.

mod util;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use util::{fixtures, resources, show, stderr, stdout, Workdir};

/// The API version the tests' own requests use: the one the test bed's Slurm 22.05 serves.
const API: &str = "v0.0.38";

/// The test cluster, from the env file of scripts/services/slurm.sh.
struct Slurm {
    url: String,
    user: String,
    /// Prints `SLURM_JWT=<token>` valid for hours.
    token_command: String,
    /// `SCRIPT N` prints a token valid N seconds.
    token_script: String,
    /// A token for the tests' own requests.
    token: String,
    http: reqwest::blocking::Client,
}

/// The cluster, or None when the run chose to skip Slurm.
fn slurm() -> Option<Slurm> {
    let env_file = match std::env::var("ROSCA_TEST_SLURM_ENV") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ if std::env::var("ROSCA_SKIP_SLURM").as_deref() == Ok("1") => {
            eprintln!("ROSCA_SKIP_SLURM=1: Slurm tests skipped");
            return None;
        }
        _ => panic!("ROSCA_TEST_SLURM_ENV is not set: run the tests with scripts/test.sh (which starts Slurm) or set ROSCA_SKIP_SLURM=1"),
    };
    let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| panic!("cannot read {}: {e}", env_file.display()));
    let vars = parse_env(&text);
    let var = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("{} does not set {k}", env_file.display()));
    let token_command = var("ROSCA_TEST_SLURM_TOKEN_CMD");
    let token = token_from(&sh(&token_command));
    Some(Slurm {
        url: var("SLURMRESTD_URL").trim_end_matches('/').to_string(),
        user: var("SLURM_USER_NAME"),
        token_script: var("ROSCA_TEST_SLURM_TOKEN_SCRIPT"),
        token_command,
        token,
        http: reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
    })
}

/// `export K=V` / `K='V'` lines of a shell env file.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        for assignment in shell_words(line.strip_prefix("export ").unwrap_or(line)) {
            if let Some((k, v)) = assignment.split_once('=') {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// Words of one line, with single and double quotes removed (enough for the env file).
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}

/// `sh -c CMD` without SLURM_JWT (`scontrol token` fails with an expired one there); its stdout.
fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).env_remove("SLURM_JWT").output().expect("run sh");
    assert!(out.status.success(), "`{cmd}` failed: {}", stderr(&out));
    stdout(&out)
}

fn token_from(text: &str) -> String {
    let t = text.lines().find_map(|l| l.trim().strip_prefix("SLURM_JWT=")).unwrap_or_else(|| text.trim());
    assert!(!t.is_empty(), "the token command printed no token");
    t.to_string()
}

impl Slurm {
    fn get(&self, path: &str) -> (u16, Value) {
        let rsp = self
            .http
            .get(format!("{}/slurm/{API}/{path}", self.url))
            .header("X-SLURM-USER-NAME", &self.user)
            .header("X-SLURM-USER-TOKEN", &self.token)
            .send()
            .unwrap_or_else(|e| panic!("GET {path} of slurmrestd: {e}"));
        let status = rsp.status().as_u16();
        (status, rsp.json().unwrap_or(Value::Null))
    }

    /// The job as slurmrestd shows it.
    fn job(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("job/{id}"));
        let job = body["jobs"].as_array().and_then(|j| j.iter().find(|j| j["job_id"].as_u64().is_some_and(|n| n.to_string() == id))).cloned();
        job.unwrap_or_else(|| panic!("slurmrestd does not show job {id} (HTTP {status}): {body}"))
    }

    /// Every job the controller knows.
    fn jobs(&self) -> Vec<Value> {
        let (status, body) = self.get("jobs");
        assert_eq!(status, 200, "GET jobs: {body}");
        body["jobs"].as_array().cloned().unwrap_or_default()
    }

    fn cancel(&self, id: &str) {
        let _ = self
            .http
            .delete(format!("{}/slurm/{API}/job/{id}", self.url))
            .header("X-SLURM-USER-NAME", &self.user)
            .header("X-SLURM-USER-TOKEN", &self.token)
            .send();
    }

    /// A token valid `secs` seconds, from the test bed's script.
    fn short_token(&self, secs: u32) -> String {
        token_from(&sh(&format!("{} {secs}", self.token_script)))
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// One test: its directory (state, rosca.toml, templates), a job directory under it that the
/// jobs write to, and the cluster. Dropping it cancels every job its state still names, so a
/// failing test leaves nothing running.
struct Case<'a> {
    w: Workdir,
    jobs: PathBuf,
    slurm: &'a Slurm,
}

impl<'a> Case<'a> {
    /// A case whose site gets its token from `token` (`token_command = ...` or `token_env = ...`).
    fn with_token(name: &str, slurm: &'a Slurm, token: &str) -> Case<'a> {
        let toml = format!(
            "[sites.hpc]\nkind = \"slurm\"\nurl = {}\nuser = {}\n{token}\npoll_interval = \"300ms\"\npoll_max = \"1s\"\n\n[providers.types]\n\"rosca.nodes.hpc.BatchJob\" = \"hpc\"\n",
            toml_str(&slurm.url),
            toml_str(&slurm.user)
        );
        Case::with_toml(name, slurm, &toml)
    }

    fn with_toml(name: &str, slurm: &'a Slurm, toml: &str) -> Case<'a> {
        let w = Workdir::new(&format!("hpc-{name}"));
        let jobs = w.path().join("jobs");
        std::fs::create_dir_all(&jobs).unwrap();
        w.write("rosca.toml", toml);
        Case { w, jobs, slurm }
    }

    fn new(name: &str, slurm: &'a Slurm) -> Case<'a> {
        Case::with_token(name, slurm, &format!("token_command = {}", toml_str(&slurm.token_command)))
    }

    /// `rosca ARGS` without Slurm's variables from the test's environment: the site is the
    /// rosca.toml table alone.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.w.command(args);
        for v in ["SLURMRESTD_URL", "SLURM_USER_NAME", "SLURM_JWT"] {
            c.env_remove(v);
        }
        c
    }

    fn expect(&self, code: i32, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run rosca");
        assert_eq!(out.status.code(), Some(code), "rosca {}\n{}", args.join(" "), show(&out));
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout(&self.expect(0, args))
    }

    fn workdir_input(&self) -> String {
        format!("workdir={}", self.jobs.display())
    }

    fn resource(&self, address: &str) -> Value {
        self.w.resource(address).unwrap_or_else(|| panic!("{address} is not in the state: {:#}", self.w.state()))
    }

    fn outputs(&self) -> Value {
        serde_json::from_str(&self.ok(&["output", "-json"])).expect("rosca output -json is JSON")
    }
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        let Ok(out) = self.command(&["state", "pull"]).output() else { return };
        let Ok(state) = serde_json::from_slice::<Value>(&out.stdout) else { return };
        for r in resources(&state) {
            if let Some(id) = r["attributes"]["job_id"].as_str() {
                self.slurm.cancel(id);
            }
        }
    }
}

fn fixture(name: &str) -> String {
    fixtures().join("cli/hpc").join(name).display().to_string()
}

fn attr<'v>(r: &'v Value, name: &str) -> &'v Value {
    &r["attributes"][name]
}

fn job_id(r: &Value) -> String {
    let id = attr(r, "job_id").as_str().unwrap_or_else(|| panic!("no job_id: {r:#}")).to_string();
    assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_digit()), "a Slurm job id is a number: {id:?}");
    id
}

/// `2026-11-22T10:33:57Z` → Unix seconds (the provider writes whole seconds in UTC).
fn unix(rfc3339: &str) -> i64 {
    let b = rfc3339.as_bytes();
    assert!(b.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z', "not an RFC 3339 UTC time: {rfc3339}");
    let n = |r: std::ops::Range<usize>| rfc3339[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// Most intervals `[start, end)` open at one instant.
fn most_at_once(intervals: &[(i64, i64)]) -> usize {
    let mut events: Vec<(i64, i32)> = intervals.iter().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    // An end and a start in the same second: the end first (whole-second times).
    events.sort();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in events {
        open += d;
        most = most.max(open);
    }
    most as usize
}

#[test]
fn two_dependent_jobs_complete_and_replan_is_empty() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("dependent", &slurm);
    let t = fixture("dependent.yaml");
    let wd = c.workdir_input();
    let out = c.ok(&["apply", &t, "-i", &wd, "--auto-approve"]);
    assert!(out.contains("Apply complete! Resources: 2 added, 0 changed, 0 destroyed."), "{out}");

    let produce = c.resource("produce");
    let consume = c.resource("consume");
    for r in [&produce, &consume] {
        assert_eq!(r["status"], "created", "{r:#}");
        assert_eq!(attr(r, "job_state"), "COMPLETED", "{r:#}");
        assert_eq!(attr(r, "exit_code"), 0, "{r:#}");
    }
    let (pid, cid) = (job_id(&produce), job_id(&consume));
    assert_ne!(pid, cid);
    assert_eq!(slurm.job(&pid)["job_state"], "COMPLETED");
    assert_eq!(slurm.job(&cid)["job_state"], "COMPLETED");
    assert!(unix(attr(&consume, "start_time").as_str().unwrap()) >= unix(attr(&produce, "end_time").as_str().unwrap()), "consume started after produce ended");

    // The second job read the first one's file and got its id through get_attribute.
    assert_eq!(std::fs::read_to_string(c.jobs.join("data.txt")).unwrap(), format!("written by job {pid}\n"));
    assert_eq!(std::fs::read_to_string(c.jobs.join("consumed.txt")).unwrap(), format!("job {cid} read the file of job {pid}\n"));
    let consume_out = c.jobs.join(format!("consume-{cid}.out"));
    assert_eq!(std::fs::read_to_string(&consume_out).unwrap(), format!("written by job {pid}\n"), "grep's match in the job's stdout");
    assert_eq!(consume["config"]["properties"]["environment"]["PRODUCER"], pid.as_str(), "{consume:#}");

    let outputs = c.outputs();
    assert_eq!(outputs["producer_job"]["value"], pid.as_str(), "{outputs:#}");
    assert_eq!(outputs["consumer_note"]["value"], format!("consumed the output of job {pid}"), "{outputs:#}");
    assert_eq!(outputs["consumer_state"]["value"], "COMPLETED", "{outputs:#}");
    assert_eq!(outputs["consumer_stdout"]["value"], consume_out.display().to_string(), "%j expanded: {outputs:#}");
    assert_eq!(c.ok(&["output", "producer_job"]).trim(), pid);

    // Refresh reads both jobs back from Slurm; nothing changed.
    c.expect(0, &["plan", &t, "-i", &wd, "--detailed-exitcode"]);
    assert_eq!(job_id(&c.resource("produce")), pid, "nothing was re-submitted");
}

#[test]
fn a_failing_job_is_tainted_its_dependent_skipped_and_a_fix_resubmits_it() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("failing", &slurm);
    let tpl = c.w.path().join("failing.yaml");
    std::fs::copy(fixture("failing.yaml"), &tpl).unwrap();
    let t = tpl.display().to_string();
    let wd = c.workdir_input();

    let out = c.expect(1, &["apply", &t, "-i", &wd, "--auto-approve"]);
    let err = stderr(&out);
    let flaky = c.resource("flaky");
    let fid = job_id(&flaky);
    assert!(err.contains("Apply failed. Resources: 0 added, 0 changed, 0 destroyed."), "{err}");
    assert!(err.contains(&format!("Failed:    flaky: job {fid} ended FAILED with exit code 3 (reason: NonZeroExitCode)")), "{err}");
    assert!(err.contains(&format!("its output is in {}/flaky-{fid}.out", c.jobs.display())), "{err}");
    assert!(err.contains("Skipped:   after (a dependency failed)"), "{err}");
    assert_eq!(std::fs::read_to_string(c.jobs.join(format!("flaky-{fid}.out"))).unwrap(), format!("flaky ran as job {fid}\n"));

    assert_eq!(c.w.addresses(), vec!["flaky"], "the dependent was never submitted");
    assert!(!c.jobs.join("after.txt").exists());
    assert!(!slurm.jobs().iter().any(|j| j["name"] == "after" && j["current_working_directory"] == c.jobs.display().to_string()), "no job of the dependent in Slurm");
    assert_eq!(flaky["status"], "tainted", "{flaky:#}");
    assert_eq!(attr(&flaky, "job_state"), "FAILED");
    assert_eq!(attr(&flaky, "exit_code"), 3);
    assert_eq!(slurm.job(&fid)["exit_code"], 768, "Slurm's wait status of exit 3");

    // Fixed: the tainted job is replaced (re-submitted) and the skipped one created.
    std::fs::write(&tpl, std::fs::read_to_string(&tpl).unwrap().replace("exit 3", "exit 0")).unwrap();
    let plan = c.ok(&["plan", &t, "-i", &wd]);
    assert!(plan.contains("flaky") && plan.contains("must be replaced"), "{plan}");
    assert!(plan.contains("Plan: 2 to add, 0 to change, 1 to destroy."), "{plan}");
    let out = c.ok(&["apply", &t, "-i", &wd, "--auto-approve"]);
    assert!(out.contains("Apply complete! Resources: 2 added, 0 changed, 1 destroyed."), "{out}");
    let (flaky, after) = (c.resource("flaky"), c.resource("after"));
    let new_fid = job_id(&flaky);
    assert_ne!(new_fid, fid, "re-submitted");
    for r in [&flaky, &after] {
        assert_eq!(r["status"], "created", "{r:#}");
        assert_eq!(attr(r, "job_state"), "COMPLETED", "{r:#}");
        assert_eq!(attr(r, "exit_code"), 0, "{r:#}");
    }
    assert_eq!(std::fs::read_to_string(c.jobs.join("after.txt")).unwrap(), format!("after ran as job {}\n", job_id(&after)));
    c.expect(0, &["plan", &t, "-i", &wd, "--detailed-exitcode"]);
}

#[test]
fn a_job_script_artifact_gets_its_arguments_and_editing_it_resubmits() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("artifact", &slurm);
    let dir = c.w.path().join("tpl");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["artifact.yaml", "run.sh"] {
        std::fs::copy(fixtures().join("cli/hpc/artifact").join(f), dir.join(f)).unwrap();
    }
    let t = dir.join("artifact.yaml").display().to_string();
    let wd = c.workdir_input();
    c.ok(&["apply", &t, "-i", &wd, "--auto-approve"]);
    let r = c.resource("art");
    let id = job_id(&r);
    assert_eq!(attr(&r, "job_state"), "COMPLETED", "{r:#}");
    let out = std::fs::read_to_string(c.jobs.join(format!("art-{id}.out"))).unwrap();
    assert_eq!(out, "arg: two words\narg: it's\narg: $HOME\n", "arguments arrive as written, unexpanded");
    c.expect(0, &["plan", &t, "-i", &wd, "--detailed-exitcode"]);

    // The artifact's content is part of the job: editing it re-submits.
    let script = dir.join("run.sh");
    std::fs::write(&script, std::fs::read_to_string(&script).unwrap() + "echo edited\n").unwrap();
    let plan = c.expect(2, &["plan", &t, "-i", &wd, "--detailed-exitcode"]);
    assert!(stdout(&plan).contains("art must be replaced"), "{}", show(&plan));
    c.ok(&["apply", &t, "-i", &wd, "--auto-approve"]);
    let new_id = job_id(&c.resource("art"));
    assert_ne!(new_id, id);
    let out = std::fs::read_to_string(c.jobs.join(format!("art-{new_id}.out"))).unwrap();
    assert!(out.ends_with("arg: $HOME\nedited\n"), "{out}");
}

#[test]
fn a_running_job_is_cancelled_by_destroy() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("destroy", &slurm);
    let t = fixture("long.yaml");
    let wd = c.workdir_input();
    let start = Instant::now();
    c.ok(&["apply", &t, "-i", &wd, "--auto-approve"]);
    assert!(start.elapsed() < Duration::from_secs(60), "wait: false returns while the job runs");
    let long = c.resource("long");
    let id = job_id(&long);
    assert!(matches!(attr(&long, "job_state").as_str(), Some("RUNNING" | "PENDING")), "{long:#}");
    assert_eq!(long["status"], "created");
    assert!(matches!(slurm.job(&id)["job_state"].as_str(), Some("RUNNING" | "PENDING")));

    let out = c.ok(&["destroy", "--auto-approve"]);
    assert!(out.contains("Destroy complete! Resources: 0 added, 0 changed, 1 destroyed."), "{out}");
    let job = slurm.job(&id);
    assert_eq!(job["job_state"], "CANCELLED", "{job:#}");
    assert!(!slurm.jobs().iter().any(|j| j["job_id"].as_u64().is_some_and(|n| n.to_string() == id) && matches!(j["job_state"].as_str(), Some("PENDING" | "RUNNING" | "COMPLETING" | "CONFIGURING"))), "job {id} left the queue");
    assert!(c.w.addresses().is_empty(), "{:#}", c.w.state());
}

#[test]
fn slurms_own_environment_is_a_site_named_slurm() {
    let Some(slurm) = slurm() else { return };
    // No [sites] table: SLURMRESTD_URL, SLURM_USER_NAME and SLURM_JWT make the site `slurm`.
    let c = Case::with_toml("env", &slurm, "[providers.types]\n\"rosca.nodes.hpc.BatchJob\" = \"slurm\"\n");
    let t = fixture("long.yaml");
    let wd = c.workdir_input();
    let env = |args: &[&str]| {
        let out = c.command(args).env("SLURMRESTD_URL", &slurm.url).env("SLURM_USER_NAME", &slurm.user).env("SLURM_JWT", &slurm.token).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "rosca {}\n{}", args.join(" "), show(&out));
        stdout(&out)
    };
    let plan = env(&["plan", &t, "-i", &wd]);
    assert!(plan.contains("node \"long\" (rosca.nodes.hpc.BatchJob, provider slurm)"), "{plan}");
    env(&["apply", &t, "-i", &wd, "--auto-approve"]);
    let r = c.resource("long");
    assert_eq!(r["provider"], "slurm", "{r:#}");
    let id = job_id(&r);
    assert!(matches!(slurm.job(&id)["job_state"].as_str(), Some("RUNNING" | "PENDING")));
    assert_eq!(slurm.job(&id)["user_name"], slurm.user.as_str());
    env(&["destroy", "--auto-approve"]);
    assert_eq!(slurm.job(&id)["job_state"], "CANCELLED");
    // Without the variables the site does not exist: planning says so, nothing is submitted.
    let out = c.command(&["plan", &t, "-i", &wd]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stderr(&out).contains("`rosca.nodes.hpc.BatchJob` maps to provider `slurm`, which is not available"), "{}", show(&out));
}

#[test]
fn a_job_outliving_the_timeout_is_tainted_keeps_running_and_is_cancelled_by_destroy() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("timeout", &slurm);
    let t = fixture("sleep.yaml");
    let wd = c.workdir_input();
    let out = c.expect(1, &["apply", &t, "-i", &wd, "-i", "name=timeout", "--timeout", "2s", "--auto-approve"]);
    let err = stderr(&out);
    let r = c.resource("sleeper");
    let id = job_id(&r);
    let state = attr(&r, "job_state").as_str().unwrap().to_string();
    assert!(state == "RUNNING" || state == "PENDING", "{r:#}");
    assert!(
        err.contains(&format!("Failed:    sleeper: job {id} is still {state} after 2s (the timeout: --timeout, or [apply] timeout of rosca.toml); it keeps running on hpc, and the node is tainted")),
        "{err}"
    );
    assert_eq!(r["status"], "tainted", "{r:#}");
    assert!(matches!(slurm.job(&id)["job_state"].as_str(), Some("RUNNING" | "PENDING")), "the job was left running");
    let plan = c.ok(&["plan", &t, "-i", &wd, "-i", "name=timeout"]);
    assert!(plan.contains("sleeper must be replaced"), "{plan}");
    c.ok(&["destroy", "--auto-approve"]);
    assert_eq!(slurm.job(&id)["job_state"], "CANCELLED");
    assert!(c.w.addresses().is_empty());
}

#[test]
fn a_job_left_to_the_scheduler_orders_its_dependent_with_afterok() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("afterok", &slurm);
    let t = fixture("afterok.yaml");
    let wd = c.workdir_input();
    c.ok(&["apply", &t, "-i", &wd, "--auto-approve"]);
    let (first, second) = (c.resource("first"), c.resource("second"));
    let (a, b) = (job_id(&first), job_id(&second));
    // `first` sleeps 8 s: both were submitted while it ran, `second` held by Slurm.
    let job_b = slurm.job(&b);
    assert_eq!(job_b["dependency"], format!("afterok:{a}(unfulfilled)"), "{job_b:#}");
    assert_eq!(job_b["job_state"], "PENDING", "{job_b:#}");
    assert_eq!(attr(&second, "job_state"), "PENDING", "{second:#}");

    // Refresh until both ended (the provider's read), then both are COMPLETED in state.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        c.ok(&["refresh"]);
        let done = ["first", "second"].iter().all(|n| attr(&c.resource(n), "end_time").is_string());
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the jobs did not end within 90 s: {:#}", c.w.state());
        std::thread::sleep(Duration::from_secs(1));
    }
    let (first, second) = (c.resource("first"), c.resource("second"));
    assert_eq!(attr(&first, "job_state"), "COMPLETED", "{first:#}");
    assert_eq!(attr(&second, "job_state"), "COMPLETED", "{second:#}");
    assert!(unix(attr(&second, "start_time").as_str().unwrap()) >= unix(attr(&first, "end_time").as_str().unwrap()));
    assert!(slurm.job(&b)["submit_time"].as_i64().unwrap() < unix(attr(&first, "end_time").as_str().unwrap()), "second was queued before first ended");
    assert_eq!(std::fs::read_to_string(c.jobs.join("second.txt")).unwrap(), "first\n");
    c.expect(0, &["plan", &t, "-i", &wd, "--detailed-exitcode"]);
}

#[test]
fn a_job_left_to_the_scheduler_that_fails_later_is_tainted_by_refresh_and_resubmitted() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("fails-later", &slurm);
    let t = fixture("fails-later.yaml");
    let wd = c.workdir_input();
    c.ok(&["apply", &t, "-i", &wd, "-i", "code=3", "--auto-approve"]);
    let first = job_id(&c.resource("later"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while slurm.job(&first)["job_state"] != "FAILED" {
        assert!(Instant::now() < deadline, "job {first} never failed: {:#}", slurm.job(&first));
        std::thread::sleep(Duration::from_millis(500));
    }
    // The same template: nothing changed in it, but the job failed, so it is planned again.
    let out = c.expect(2, &["plan", &t, "-i", &wd, "-i", "code=3", "--detailed-exitcode"]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(err.contains(&format!("job {first} ended FAILED with exit code 3")) && err.contains("tainted"), "{err}");
    assert!(text.contains("tainted") && text.contains("1 to add, 0 to change, 1 to destroy"), "{text}");
    assert_eq!(c.w.resource("later").map(|r| r["status"].clone()), Some(Value::String("created".into())), "plan does not write the state");

    // The fixed job replaces it and completes; then nothing is left to do.
    c.ok(&["apply", &t, "-i", &wd, "-i", "code=0", "--auto-approve"]);
    let second = job_id(&c.resource("later"));
    assert_ne!(second, first);
    let deadline = Instant::now() + Duration::from_secs(60);
    while slurm.job(&second)["job_state"] != "COMPLETED" {
        assert!(Instant::now() < deadline, "job {second} never completed: {:#}", slurm.job(&second));
        std::thread::sleep(Duration::from_millis(500));
    }
    c.expect(0, &["plan", &t, "-i", &wd, "-i", "code=0", "--detailed-exitcode"]);
    c.ok(&["refresh"]);
    assert_eq!(attr(&c.resource("later"), "job_state"), "COMPLETED");
}

#[test]
fn destroy_cancels_a_dependent_whose_afterok_can_never_be_satisfied() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("afterok-failing", &slurm);
    let t = fixture("afterok-failing.yaml");
    let wd = c.workdir_input();
    c.ok(&["apply", &t, "-i", &wd, "--auto-approve"]);
    let (a, b) = (job_id(&c.resource("first")), job_id(&c.resource("second")));
    let deadline = Instant::now() + Duration::from_secs(60);
    while slurm.job(&b)["state_reason"] != "DependencyNeverSatisfied" {
        assert!(Instant::now() < deadline, "job {b} never showed DependencyNeverSatisfied: {:#}", slurm.job(&b));
        std::thread::sleep(Duration::from_millis(500));
    }
    c.ok(&["refresh"]);
    assert_eq!(attr(&c.resource("first"), "job_state"), "FAILED");
    assert_eq!(attr(&c.resource("first"), "exit_code"), 3);
    assert_eq!(attr(&c.resource("second"), "job_state"), "PENDING", "Slurm keeps it queued for ever");

    let out = c.ok(&["destroy", "--auto-approve"]);
    assert!(out.contains("2 destroyed."), "{out}");
    assert_eq!(slurm.job(&b)["job_state"], "CANCELLED", "the never-runnable job left the queue");
    assert_eq!(slurm.job(&a)["job_state"], "FAILED");
    assert!(c.w.addresses().is_empty());
}

#[test]
fn an_expiring_token_is_renewed_by_the_token_command() {
    let Some(slurm) = slurm() else { return };
    // Written before the case exists: the site names this script.
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("token-runs");
    let script = dir.path().join("token.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho run >> '{}'\nexec '{}' 4\n", counter.display(), slurm.token_script)).unwrap();
    let c = Case::with_token("token", &slurm, &format!("token_command = {}", toml_str(&format!("sh '{}'", script.display()))));
    let t = fixture("sleep.yaml");
    let wd = c.workdir_input();
    c.ok(&["apply", &t, "-i", &wd, "-i", "name=token-renewal", "--auto-approve"]);
    let r = c.resource("sleeper");
    assert_eq!(attr(&r, "job_state"), "COMPLETED", "{r:#}");
    let ran = unix(attr(&r, "end_time").as_str().unwrap()) - unix(attr(&r, "start_time").as_str().unwrap());
    assert!(ran >= 12, "the job outlived three 4 s tokens: {ran} s");
    let runs = std::fs::read_to_string(&counter).unwrap().lines().count();
    // 12 s with tokens renewed a quarter of their 4 s life early: about 5 tokens. Polling asks
    // Slurm at least every second, so running the command for every request would be 15 or more.
    assert!((3..=10).contains(&runs), "the token command ran {runs} time(s)");
    eprintln!("token command ran {runs} times for a 12 s job with 4 s tokens");
}

#[test]
fn an_expired_fixed_token_fails_before_anything_is_created_and_is_never_printed() {
    let Some(slurm) = slurm() else { return };
    let expired = slurm.short_token(1);
    std::thread::sleep(Duration::from_secs(2));
    let c = Case::with_token("expired", &slurm, "token_env = \"ROSCA_TEST_EXPIRED_JWT\"");
    let name = format!("rosca-e2e-expired-{}", std::process::id());
    let wd = c.workdir_input();
    let n = format!("name={name}");
    let out = c.command(&["apply", &fixture("sleep.yaml"), "-i", &wd, "-i", &n, "--auto-approve"]).env("ROSCA_TEST_EXPIRED_JWT", &expired).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(&expired), "the token was printed:\n{all}");
    let payload = expired.split('.').nth(1).unwrap();
    assert!(!all.contains(payload), "part of the token was printed:\n{all}");
    assert!(all.contains("the Slurm token (SLURM_JWT, or the site's token_env) expired at "), "the message says the token is the problem:\n{all}");
    assert!(all.contains("nothing was changed"), "{all}");
    assert!(c.w.addresses().is_empty(), "nothing in state: {:#}", c.w.state());
    assert!(!slurm.jobs().iter().any(|j| j["name"] == name.as_str()), "no job {name} reached Slurm");
}

#[test]
fn fifty_jobs_run_at_most_ten_at_once() {
    let Some(slurm) = slurm() else { return };
    let c = Case::new("fifty", &slurm);
    let t = fixture("many.yaml");
    let wd = c.workdir_input();
    let start = Instant::now();
    let out = c.ok(&["apply", &t, "-i", &wd, "--auto-approve", "--parallelism", "10"]);
    let wall = start.elapsed();
    eprintln!("50 jobs of 2 s with --parallelism 10: apply took {:.1} s", wall.as_secs_f64());
    assert!(out.contains("Apply complete! Resources: 50 added, 0 changed, 0 destroyed."), "{out}");
    let state = c.w.state();
    let jobs = resources(&state);
    assert_eq!(jobs.len(), 50);
    let mut ids = std::collections::BTreeSet::new();
    let mut intervals = Vec::new();
    for r in &jobs {
        assert_eq!(attr(r, "job_state"), "COMPLETED", "{r:#}");
        assert_eq!(attr(r, "exit_code"), 0, "{r:#}");
        ids.insert(job_id(r));
        let (s, e) = (unix(attr(r, "start_time").as_str().unwrap()), unix(attr(r, "end_time").as_str().unwrap()));
        assert!(e - s >= 2, "a job sleeps 2 s: {r:#}");
        intervals.push((s, e));
    }
    assert_eq!(ids.len(), 50, "50 distinct jobs");
    let most = most_at_once(&intervals);
    eprintln!("most jobs running at once (Slurm's start/end times): {most}");
    // The node has 16 CPUs: Slurm alone would run 16; the 10 is Rosca's limit.
    assert!(most <= 10, "{most} jobs ran at once with --parallelism 10");
    assert!(most >= 5, "the jobs ran in parallel, not one by one: at most {most} at once");
}

#[test]
fn helpers_read_the_env_file_and_times() {
    let vars = parse_env("# c\nexport A=1\nexport B='env -u X y z=1'\nexport C=d E=f\n");
    assert_eq!(vars["A"], "1");
    assert_eq!(vars["B"], "env -u X y z=1");
    assert_eq!((vars["C"].as_str(), vars["E"].as_str()), ("d", "f"));
    assert_eq!(unix("2023-11-14T22:13:20Z"), 1_700_000_000);
    assert_eq!(unix("2026-11-22T10:33:57Z"), 1_795_343_637);
    assert_eq!(most_at_once(&[(0, 2), (2, 4), (1, 3)]), 2);
}
