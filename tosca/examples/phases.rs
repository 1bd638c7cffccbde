//! Where `rosca validate` spends its time on a big template (see docs/benchmarks.md):
//! `cargo run --release -p tosca --example phases -- target/bench/topology-10000.yaml`
use std::time::Instant;
use tosca::loader::{Entry, LoadOptions};
use tosca::{Diagnostics, Inputs, Sources};

fn main() {
    let path = std::env::args().nth(1).expect("usage: phases FILE.yaml");
    let options = LoadOptions { allow_fetch: false, ..LoadOptions::default() };

    let t = Instant::now();
    let text = std::fs::read_to_string(&path).expect("read");
    let read = t.elapsed();

    let t = Instant::now();
    let mut sources = Sources::new();
    let file = sources.add(path.clone(), text.clone());
    let doc = tosca::yaml::parse(file, &text, &options.limits).expect("yaml");
    let yaml = t.elapsed();
    let t = Instant::now();
    let mut scratch = Diagnostics::new();
    let syntax = tosca::syntax::parse::parse_file(file, &doc, &mut scratch);
    let syntax_time = t.elapsed();
    drop(syntax);
    let t = Instant::now();
    drop(doc);
    let yaml_drop = t.elapsed();

    let rss_yaml = rss_mb();
    let t = Instant::now();
    let mut diags = Diagnostics::new();
    let loaded = tosca::loader::load_into(&Entry::Path(path.clone().into()), &options, &mut diags, Sources::new());
    let load = t.elapsed();
    let rss_loaded = rss_mb();

    let t = Instant::now();
    let compiled = tosca::compile_loaded(loaded, &Inputs::new(), diags);
    let build = t.elapsed();
    let rss_built = rss_mb();
    let errors = compiled.has_errors();
    let nodes = compiled.diagnostics.len();

    let t = Instant::now();
    drop(compiled);
    let drop_all = t.elapsed();

    println!("read file           {read:>10.1?}");
    println!("yaml::parse alone   {yaml:>10.1?}  (drop of the Yaml tree {yaml_drop:.1?})");
    println!("syntax::parse_file  {syntax_time:>10.1?}  (of that tree, alone)");
    println!("loader::load_into   {load:>10.1?}  (read + yaml of the template and normative types)");
    println!("compile_loaded      {build:>10.1?}  (syntax, types, topology build, functions)");
    println!("drop Compiled       {drop_all:>10.1?}");
    println!("errors: {errors}, diagnostics: {nodes}");
    println!("resident memory: {rss_yaml} MB after the lone parse (tree dropped), {rss_loaded} MB loaded, {rss_built} MB compiled");
}

/// Current resident set size in MB (Linux), 0 elsewhere.
fn rss_mb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096 / (1 << 20)
}
