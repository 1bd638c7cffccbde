//! What `rosca validate FILE` does, without the CLI (so the front-end can be profiled alone):
//! `cargo run --release -p tosca --example validate -- target/bench/topology-10000.yaml`
use tosca::loader::{Entry, LoadOptions};
use tosca::{Diagnostic, Diagnostics, Inputs, Sources};

fn line(d: &Diagnostic) -> String {
    format!("{} {:?} {}:{}:{} {} / {:?} / {:?}", d.code, d.severity, d.span.file.0, d.span.line, d.span.col, d.message, d.help, d.related.len())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let topology = args.iter().any(|a| a == "--topology");
    let path = args.iter().find(|a| !a.starts_with("--")).cloned().expect("usage: validate [--topology] FILE.yaml");
    let mut options = LoadOptions { allow_fetch: false, ..LoadOptions::default() };
    options.limits.max_file_size = 1 << 30;
    let entry = Entry::Path(path.into());
    if !topology {
        // Like `rosca validate`: diagnostics only.
        let checked = tosca::check(&entry, &options, &Inputs::new(), Diagnostics::new(), Sources::new());
        println!("errors: {}, diagnostics: {}", checked.has_errors(), checked.diagnostics.len());
        // Like the CLI: the process ends here, freeing the trees would only cost time.
        std::mem::forget(checked);
        return;
    }
    let compiled = tosca::compile(&entry, &options, &Inputs::new(), Diagnostics::new(), Sources::new());
    println!("errors: {}, diagnostics: {}", compiled.has_errors(), compiled.diagnostics.len());
    // To compare the output of two builds (docs/benchmarks.md): diagnostics, then the topology.
    for d in &compiled.diagnostics {
        println!("{}", line(d));
    }
    // `rosca validate` prints the diagnostics of `tosca::check`: they must be `compile`'s.
    let checked = tosca::check(&entry, &options, &Inputs::new(), Diagnostics::new(), Sources::new());
    if checked.diagnostics.iter().map(line).ne(compiled.diagnostics.iter().map(line)) {
        println!("tosca::check gives other diagnostics than tosca::compile:");
        for d in &checked.diagnostics {
            println!("{}", line(d));
        }
    }
    println!("{}", serde_json::to_string_pretty(&compiled.topology.redacted()).expect("json"));
    std::mem::forget((compiled, checked));
}
