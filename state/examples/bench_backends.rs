//! Lock + read + write + unlock latency per state backend, side by side (issue 6's benchmark).
//! Run through `scripts/bench-backends.sh`, which starts the services and sets
//! ROSCA_TEST_PG_URL, ROSCA_TEST_ETCD_ENDPOINTS, ROSCA_TEST_S3_ENDPOINT and ROSCA_BENCH_HTTP
//! (the base URL of a `rosca serve --no-auth`); a backend whose variable is unset is left out.
//! A second table: `append` of one resource at a time, as an apply records its changes.
//!
//! `cargo run --release -p state --example bench_backends -- [ITERATIONS] [RESOURCES]`

use state::{JournalEntry, LockInfo, ResourceState, StateBackend, StateDoc};
use std::time::{Duration, Instant};

fn resource(i: usize) -> ResourceState {
    ResourceState {
        address: format!("app[{i}]"),
        node: "app".into(),
        index: Some(i as u32),
        type_name: "tosca.nodes.Compute".into(),
        provider: "local".into(),
        site: None,
        id: Some(format!("id-{i}")),
        status: state::ResourceStatus::Created,
        pending: None,
        config: serde_json::json!({"properties": {"name": format!("app-{i}")}}),
        attributes: serde_json::json!({"private_address": "10.0.0.1"}).as_object().cloned().unwrap_or_default(),
        outputs: Default::default(),
        sensitive: vec![],
        dependencies: vec![],
        private: serde_json::Value::Null,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn bench(name: &str, b: &dyn StateBackend, iterations: usize, resources: usize) {
    let mut doc = b.read().expect("read").unwrap_or_else(|| StateDoc::new("bench".into()));
    for i in 0..resources {
        doc.put(resource(i));
    }
    b.write(&doc).expect("first write");
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let info = LockInfo::new("bench", b.location());
        b.lock(&info).expect("lock");
        let mut d = b.read().expect("read").expect("a state");
        d.serial += 1;
        b.write(&d).expect("write");
        b.unlock(&info.id).expect("unlock");
        times.push(start.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| {name} | {resources} | {iterations} | {:.2} | {:.2} | {:.2} |", ms(percentile(&times, 0.5)), ms(percentile(&times, 0.99)), ms(times[times.len() - 1]));
}

/// `appends` changes appended one by one after a run's first change, as `StateWriter` does;
/// returns (p50, p99, total) and checks a fresh read sees them all.
fn bench_append(b: &dyn StateBackend, fresh: &dyn StateBackend, appends: usize) -> (Duration, Duration, Duration) {
    let mut doc = b.read().expect("read").expect("a state");
    doc.serial += 1;
    let mut times = Vec::with_capacity(appends);
    let all = Instant::now();
    for i in 0..appends {
        let e = JournalEntry::Put(Box::new(resource(100_000 + i)));
        doc.apply(&e);
        let start = Instant::now();
        b.append(&doc, &e).expect("append");
        times.push(start.elapsed());
    }
    let total = all.elapsed();
    assert_eq!(fresh.read().expect("read").expect("a state"), doc, "a fresh handle reads every append");
    b.write(&doc).expect("final write");
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), total)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iterations: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let resources: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let name = format!("bench-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    let dir = tempfile::tempdir().expect("temp dir");
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    type Make = Box<dyn Fn() -> Box<dyn StateBackend>>;
    let mut backends: Vec<(&str, Make)> = Vec::new();
    let path = dir.path().join("bench.state.json");
    backends.push(("local", Box::new(move || Box::new(state::LocalBackend::new(path.clone())))));
    if let Some(url) = var("ROSCA_TEST_PG_URL") {
        let name = name.clone();
        backends.push(("postgres", Box::new(move || Box::new(state::PostgresBackend::new(&url, &name).expect("postgres")))));
    }
    if let Some(e) = var("ROSCA_TEST_ETCD_ENDPOINTS") {
        let name = name.clone();
        backends.push(("etcd", Box::new(move || Box::new(state::EtcdBackend::new(e.split(',').map(str::to_string).collect(), &name).expect("etcd")))));
    }
    if let Some(endpoint) = var("ROSCA_TEST_S3_ENDPOINT") {
        let bucket = "rosca-bench".to_string();
        let _ = std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-X", "PUT", &format!("{endpoint}/{bucket}")]).status();
        let cfg = state::S3Config { bucket, endpoint: Some(endpoint), region: Some("us-east-1".into()), prefix: None };
        let name = name.clone();
        backends.push(("s3 (moto)", Box::new(move || Box::new(state::S3Backend::new(cfg.clone(), &name).expect("s3")))));
    }
    if let Some(base) = var("ROSCA_BENCH_HTTP") {
        let url = format!("{}/state/{name}", base.trim_end_matches('/'));
        backends.push(("http (rosca serve)", Box::new(move || Box::new(state::HttpBackend::new(&url, state::HttpAuth::None).expect("http")))));
    }
    println!("| backend | resources in the state | iterations | lock+read+write+unlock p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, make) in &backends {
        bench(label, make().as_ref(), iterations, resources);
    }
    let appends = iterations * 5;
    println!();
    println!("| backend | appends (one resource each, onto {resources}) | append p50 ms | p99 ms | all appends s |");
    println!("|---|---:|---:|---:|---:|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (label, make) in &backends {
        let (p50, p99, total) = bench_append(make().as_ref(), make().as_ref(), appends);
        println!("| {label} | {appends} | {:.2} | {:.2} | {:.2} |", ms(p50), ms(p99), total.as_secs_f64());
    }
}
