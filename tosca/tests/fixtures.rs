//! Data-driven cases: every file under fixtures/tosca/{valid,invalid} (except `_lib` folders) is
//! compiled; its header says what must come out:
//!
//! ```text
//! # case: what this checks
//! # expect: E0302 @ 14:18     (code at line:col; `@ 14` for line only)
//! # expect: E0009 @ _lib/b.yaml:6:5   (in another file, relative to the case)
//! # inputs: name=value
//! # case: ... [require-inputs] (required inputs without a value are errors, as for a deployment)
//! ```
//! Valid cases must have no errors; invalid ones must produce every expected diagnostic, and no
//! error whose code is not expected.

use std::path::{Path, PathBuf};
use tosca::loader::{Entry, LoadOptions};

/// `[require-inputs]` on the case line: required inputs without values are errors (as for a deployment).
const REQUIRE_INPUTS: &str = "<require-inputs>";
const INDIGO_URL: &str = "https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tosca")
}

fn cases(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "_lib") {
                cases(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

#[derive(Debug, PartialEq)]
struct Expect {
    code: String,
    /// `None`: the case file itself.
    file: Option<String>,
    line: u32,
    col: Option<u32>,
}

fn header(text: &str) -> (Vec<Expect>, Vec<String>) {
    let mut expects = Vec::new();
    let mut inputs = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#') || l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# expect:") {
            let (code, at) = rest.split_once('@').unwrap_or((rest, ""));
            let at = at.trim();
            let (file, at) = match at.split_once(".yaml:") {
                Some((f, rest)) => (Some(format!("{f}.yaml")), rest),
                None => (None, at),
            };
            let mut pos = at.split(':');
            let line = pos.next().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
            let col = pos.next().and_then(|c| c.trim().parse().ok());
            expects.push(Expect { code: code.trim().to_string(), file, line, col });
        } else if line.starts_with("# case:") && line.contains("[require-inputs]") {
            inputs.push(REQUIRE_INPUTS.to_string());
        } else if let Some(rest) = line.strip_prefix("# inputs:") {
            inputs.push(rest.trim().to_string());
        }
    }
    (expects, inputs)
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (expects, input_args) = header(&text);
    let options = LoadOptions {
        allow_fetch: false,
        import_map: vec![(INDIGO_URL.to_string(), root().join("indigo/custom_types.yaml"))],
        cache_dir: Some(std::env::temp_dir().join("rosca-fixture-cache-unused")),
        ..LoadOptions::default()
    };
    let mut sources = tosca::Sources::new();
    let mut inputs = tosca::Inputs::new();
    for arg in &input_args {
        if arg == REQUIRE_INPUTS {
            inputs.required = true;
            continue;
        }
        let (k, v) = arg.split_once('=').ok_or(format!("bad inputs header {arg}"))?;
        let f = sources.add("<input>", v.to_string());
        let y = tosca::yaml::parse(f, v, &Default::default()).map_err(|d| d.message)?;
        inputs.push(tosca::syntax::Sp::new(k.to_string(), tosca::Span::NONE), y);
    }
    let checked = tosca::check(&Entry::Path(path.to_path_buf()), &options, &inputs, tosca::Diagnostics::new(), sources.clone());
    let c = tosca::compile(&Entry::Path(path.to_path_buf()), &options, &inputs, tosca::Diagnostics::new(), sources);
    // `rosca validate` prints what `tosca::check` finds: it must be all that `compile` finds.
    let line = |d: &tosca::Diagnostic| format!("{} {:?} {:?} {} {:?} {}", d.code, d.severity, d.span, d.message, d.help, d.related.len());
    if checked.diagnostics.iter().map(line).ne(c.diagnostics.iter().map(line)) {
        return Err("tosca::check and tosca::compile give different diagnostics".into());
    }
    let file_id = |p: &Path| {
        let canonical = std::fs::canonicalize(p).ok();
        c.sources.iter().find(|(_, f)| std::fs::canonicalize(&f.name).ok() == canonical).map(|(id, _)| id)
    };
    let root_file = file_id(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let got: Vec<(String, u32, u32, String, bool, Option<tosca::FileId>)> = c
        .diagnostics
        .iter()
        .map(|d| (d.code.to_string(), if Some(d.span.file) == root_file { d.span.line } else { 0 }, d.span.col, d.message.clone(), d.is_error(), Some(d.span.file)))
        .collect();
    let show = || {
        c.diagnostics
            .iter()
            .map(|d| format!("    {} @ {}:{}:{} {}", d.code, c.sources.name(d.span.file).rsplit('/').next().unwrap_or(""), d.span.line, d.span.col, d.message))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let invalid = path.components().any(|c| c.as_os_str() == "invalid");
    for e in &expects {
        let found = match &e.file {
            None => got.iter().any(|(c, l, col, _, _, _)| *c == e.code && *l == e.line && e.col.is_none_or(|x| x == *col)),
            Some(f) => {
                let want = file_id(&dir.join(f));
                c.diagnostics.iter().any(|d| d.code == e.code && Some(d.span.file) == want && d.span.line == e.line && e.col.is_none_or(|x| x == d.span.col))
            }
        };
        if !found {
            return Err(format!("expected {} @ {}:{} not produced; got:\n{}", e.code, e.line, e.col.map(|c| c.to_string()).unwrap_or("*".into()), show()));
        }
    }
    let unexpected: Vec<_> = got.iter().filter(|(c, _, _, _, err, _)| *err && !expects.iter().any(|e| e.code == *c)).collect();
    if !unexpected.is_empty() {
        return Err(format!("unexpected errors:\n{}", show()));
    }
    if invalid && !got.iter().any(|g| g.4) {
        return Err(format!("invalid case produced no error; got:\n{}", show()));
    }
    Ok(())
}

#[test]
fn fixture_cases() {
    let mut all = Vec::new();
    cases(&root().join("valid"), &mut all);
    cases(&root().join("invalid"), &mut all);
    let mut failures = Vec::new();
    for p in &all {
        if let Err(e) = run_case(p) {
            failures.push(format!("{}: {e}", p.strip_prefix(root()).unwrap_or(p).display()));
        }
    }
    let total = all.len();
    assert!(failures.is_empty(), "{} of {total} fixture cases failed:\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(total >= 200, "only {total} fixture cases; the suite promises at least 200");
}
