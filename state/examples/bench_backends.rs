//! Lock + read + write + unlock latency per state backend, side by side (issue 6's benchmark).
//! Run through `scripts/bench-backends.sh`, which starts the services and sets
//! ROSCA_TEST_PG_URL, ROSCA_TEST_ETCD_ENDPOINTS, ROSCA_TEST_S3_ENDPOINT (a backend whose
//! variable is unset is left out).
//!
//! `cargo run --release -p state --example bench_backends -- [ITERATIONS] [RESOURCES]`

use state::{LockInfo, ResourceState, StateBackend, StateDoc};
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iterations: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let resources: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let name = format!("bench-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
    println!("| backend | resources in the state | iterations | lock+read+write+unlock p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let dir = tempfile::tempdir().expect("temp dir");
    bench("local", &state::LocalBackend::new(dir.path().join("bench.state.json")), iterations, resources);
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(url) = var("ROSCA_TEST_PG_URL") {
        bench("postgres", &state::PostgresBackend::new(&url, &name).expect("postgres"), iterations, resources);
    }
    if let Some(e) = var("ROSCA_TEST_ETCD_ENDPOINTS") {
        bench("etcd", &state::EtcdBackend::new(e.split(',').map(str::to_string).collect(), &name).expect("etcd"), iterations, resources);
    }
    if let Some(endpoint) = var("ROSCA_TEST_S3_ENDPOINT") {
        let bucket = "rosca-bench".to_string();
        let _ = std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-X", "PUT", &format!("{endpoint}/{bucket}")]).status();
        let cfg = state::S3Config { bucket, endpoint: Some(endpoint), region: Some("us-east-1".into()), prefix: None };
        bench("s3 (moto)", &state::S3Backend::new(cfg, &name).expect("s3"), iterations, resources);
    }
}
