//! Behaviour of `tosca::loader`: which files are loaded, in which order, and which diagnostics
//! (code, file, line) come out for broken imports, CSARs and URL imports.

use std::fs;
use std::io::Write;
#[cfg(feature = "fetch")]
use std::net::TcpListener;
use std::path::{Path, PathBuf};
#[cfg(feature = "fetch")]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tosca::loader::{self, Entry, Fetcher, LoadOptions, Loaded};
use tosca::{Diagnostic, Diagnostics};

const V13: &str = "tosca_definitions_version: tosca_simple_yaml_1_3\n";

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    p
}

/// Offline, with a private cache: tests never touch the network or the user's cache unless
/// they say so.
fn offline(cache: &Path) -> LoadOptions {
    LoadOptions { cache_dir: Some(cache.to_path_buf()), allow_fetch: false, ..LoadOptions::default() }
}

fn run(entry: Entry, options: &LoadOptions) -> (Loaded, Vec<Diagnostic>) {
    let mut diags = Diagnostics::new();
    let loaded = loader::load(&entry, options, &mut diags);
    (loaded, diags.into_sorted())
}

fn load_path(path: &Path, options: &LoadOptions) -> (Loaded, Vec<Diagnostic>) {
    run(Entry::Path(path.to_path_buf()), options)
}

/// Display names of the loaded documents, in order, with `base` stripped for readability.
fn doc_names(l: &Loaded, base: &Path) -> Vec<String> {
    let base = format!("{}/", base.display());
    l.docs.iter().map(|d| l.sources.name(d.file).replace(&base, "")).collect()
}

/// (code, file name relative to `base`, line) of each diagnostic.
fn diag_summary(l: &Loaded, diags: &[Diagnostic], base: &Path) -> Vec<(String, String, u32)> {
    let base = format!("{}/", base.display());
    diags
        .iter()
        .map(|d| {
            let file = if d.span.is_none() { String::new() } else { l.sources.name(d.span.file).replace(&base, "") };
            (d.code.to_string(), file, d.span.line)
        })
        .collect()
}

fn s(v: &[(&str, &str, u32)]) -> Vec<(String, String, u32)> {
    v.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), *c)).collect()
}

// ---------------------------------------------------------------- local files

#[test]
fn relative_imports_load_depth_first_each_once() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(d, "main.yaml", &format!("{V13}imports:\n  - types/a.yaml\n  - other.yaml\n"));
    write(d, "types/a.yaml", &format!("{V13}imports:\n  - ../common/b.yaml\n  - ./c.yaml\n"));
    write(d, "common/b.yaml", V13);
    write(d, "types/c.yaml", V13);
    write(d, "other.yaml", "tosca_definitions_version: tosca_simple_yaml_1_0\n");
    let (l, diags) = load_path(&main, &offline(d));
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(doc_names(&l, d), ["main.yaml", "types/a.yaml", "common/b.yaml", "types/c.yaml", "other.yaml"]);
    let canonical = d.join("common/b.yaml").canonicalize().unwrap();
    assert_eq!(l.docs[2].location, canonical.display().to_string());
    assert_eq!(l.docs[4].version.as_deref(), Some("tosca_simple_yaml_1_0"));
    let edges: Vec<(u32, u32, u32)> = l.edges.iter().map(|e| (e.from.0, e.to.0, e.span.line)).collect();
    let f = |i: usize| l.docs[i].file.0;
    assert_eq!(edges, [(f(0), f(1), 3), (f(1), f(2), 3), (f(1), f(3), 4), (f(0), f(4), 4)]);
    assert_eq!(l.sources.slice(l.edges[0].span), Some("types/a.yaml"));
}

#[test]
fn long_form_with_namespace_and_unknown_key() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(
        d,
        "main.yaml",
        &format!("{V13}imports:\n  - file: a.yaml\n    namespace_prefix: acme\n    namespace_uri: http://acme.org/ns\n    colour: red\n"),
    );
    write(d, "a.yaml", V13);
    let (l, diags) = load_path(&main, &offline(d));
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0102", "main.yaml", 6)]));
    assert_eq!(doc_names(&l, d), ["main.yaml", "a.yaml"]);
    let e = &l.edges[0];
    assert_eq!((e.namespace_prefix.as_deref(), e.namespace_uri.as_deref()), (Some("acme"), Some("http://acme.org/ns")));
    assert_eq!(e.import_name, None);
}

#[test]
fn named_tosca_1_0_forms() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(
        d,
        "main.yaml",
        "tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - my_types: a.yaml\n  - more_types:\n      file: b.yaml\n      namespace_prefix: mt\n",
    );
    write(d, "a.yaml", V13);
    write(d, "b.yaml", V13);
    let (l, diags) = load_path(&main, &offline(d));
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(doc_names(&l, d), ["main.yaml", "a.yaml", "b.yaml"]);
    let names: Vec<_> = l.edges.iter().map(|e| (e.import_name.as_deref(), e.namespace_prefix.as_deref())).collect();
    assert_eq!(names, [(Some("my_types"), None), (Some("more_types"), Some("mt"))]);
}

#[test]
fn repository_imports_and_unknown_repository() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(
        d,
        "main.yaml",
        &format!(
            "{V13}repositories:\n  acme:\n    url: https://types.example.org/acme\n    description: ACME types\n  local_libs: libs\nimports:\n  - file: compute.yaml\n    repository: acme\n  - file: db.yaml\n    repository: local_libs\n  - file: x.yaml\n    repository: nowhere\n"
        ),
    );
    write(d, "mirror/acme/compute.yaml", V13);
    write(d, "libs/db.yaml", V13);
    let mut o = offline(d);
    o.import_map = vec![("https://types.example.org/acme/".into(), d.join("mirror/acme"))];
    let (l, diags) = load_path(&main, &o);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0015", "main.yaml", 13)]));
    assert!(
        diags[0].message.contains("nowhere") && diags[0].message.contains("acme, local_libs"),
        "{}",
        diags[0].message
    );
    assert_eq!(doc_names(&l, d), ["main.yaml", "https://types.example.org/acme/compute.yaml", "libs/db.yaml"]);
    assert_eq!(l.docs[1].location, "https://types.example.org/acme/compute.yaml");
    assert_eq!(l.edges[0].repository.as_deref(), Some("acme"));
}

#[test]
fn diamond_imports_load_the_shared_file_once() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(d, "main.yaml", &format!("{V13}imports: [a.yaml, b.yaml]\n"));
    write(d, "a.yaml", &format!("{V13}imports: [c.yaml]\n"));
    write(d, "b.yaml", &format!("{V13}imports: [./sub/../c.yaml]\n"));
    write(d, "c.yaml", V13);
    fs::create_dir(d.join("sub")).unwrap();
    let (l, diags) = load_path(&main, &offline(d));
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(doc_names(&l, d), ["main.yaml", "a.yaml", "c.yaml", "b.yaml"]);
    assert_eq!(l.sources.iter().count(), 4);
    let c = l.docs[2].file;
    assert_eq!(l.edges.iter().filter(|e| e.to == c).count(), 2);
}

#[test]
fn import_cycle_is_reported_with_its_path() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let a = write(d, "a.yaml", &format!("{V13}imports:\n  - b.yaml\n"));
    write(d, "b.yaml", &format!("{V13}description: b\nimports:\n  - a.yaml\n  - self.yaml\n"));
    write(d, "self.yaml", &format!("{V13}imports: [self.yaml]\n"));
    let (l, diags) = load_path(&a, &offline(d));
    assert_eq!(doc_names(&l, d), ["a.yaml", "b.yaml", "self.yaml"]);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0009", "b.yaml", 4), ("E0009", "self.yaml", 2)]));
    let base = format!("{}/", d.display());
    assert_eq!(diags[0].message.replace(&base, ""), "import cycle: a.yaml -> b.yaml -> a.yaml");
    assert_eq!(diags[0].related.len(), 1);
    assert_eq!(diags[0].related[0].span.line, 3);
    assert_eq!(diags[1].message.replace(&base, ""), "import cycle: self.yaml -> self.yaml");
    // The cycle-closing import is not an edge, so later passes can walk edges without looping.
    assert_eq!(l.edges.len(), 2);
}

#[test]
fn a_long_import_chain_does_not_exhaust_the_stack() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let n = 3000;
    for i in 0..n {
        let imports = if i + 1 < n { format!("imports: [f{}.yaml]\n", i + 1) } else { "imports: [f0.yaml]\n".into() };
        write(d, &format!("f{i}.yaml"), &format!("{V13}{imports}"));
    }
    let (l, diags) = load_path(&d.join("f0.yaml"), &offline(d));
    assert_eq!(l.docs.len(), n);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0009", &format!("f{}.yaml", n - 1), 2)]));
    let base = format!("{}/", d.display());
    assert_eq!(
        diags[0].message.replace(&base, ""),
        "import cycle: f0.yaml -> f1.yaml -> f2.yaml -> f3.yaml -> f4.yaml -> ... (2991 more) ... -> f2996.yaml -> f2997.yaml -> f2998.yaml -> f2999.yaml -> f0.yaml"
    );
}

#[test]
fn missing_import_is_reported_and_the_rest_loads() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(d, "main.yaml", &format!("{V13}imports:\n  - nope/missing.yaml\n  - ok.yaml\n"));
    write(d, "ok.yaml", V13);
    let (l, diags) = load_path(&main, &offline(d));
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0008", "main.yaml", 3)]));
    assert!(diags[0].message.contains(&format!("{}/nope/missing.yaml", d.display())), "{}", diags[0].message);
    assert_eq!(doc_names(&l, d), ["main.yaml", "ok.yaml"]);
}

#[test]
fn imports_of_a_broken_file_are_skipped() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(d, "main.yaml", &format!("{V13}imports: [bad.yaml, latin1.yaml, dir]\n"));
    write(d, "bad.yaml", &format!("{V13}imports: [c.yaml]\nx: [unclosed\n"));
    write(d, "c.yaml", V13);
    fs::write(d.join("latin1.yaml"), b"tosca_definitions_version: x\ndescription: caf\xe9\n").unwrap();
    fs::create_dir(d.join("dir")).unwrap();
    let (l, diags) = load_path(&main, &offline(d));
    assert_eq!(doc_names(&l, d), ["main.yaml"]);
    let summary = diag_summary(&l, &diags, d);
    assert_eq!(summary[0], ("E0001".to_string(), "main.yaml".to_string(), 2), "{summary:?}");
    assert_eq!(summary[1].0, "E0002");
    assert_eq!(summary[1].1, "bad.yaml");
    assert_eq!(summary[2], ("E0005".to_string(), "latin1.yaml".to_string(), 2));
    assert_eq!(summary.len(), 3);
}

#[test]
fn missing_root_is_an_io_error() {
    let t = tempfile::tempdir().unwrap();
    let (l, diags) = load_path(&t.path().join("absent.yaml"), &offline(t.path()));
    assert!(l.docs.is_empty());
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, "E0001");
    assert!(diags[0].message.contains("absent.yaml"));
}

#[test]
fn oversized_file_is_rejected_without_reading_it() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(d, "main.yaml", &format!("{V13}imports:\n  - huge.yaml\n"));
    // Sparse: 1 GiB on paper, nothing on disk. Reading it would take a GiB of memory.
    let huge = fs::File::create(d.join("huge.yaml")).unwrap();
    huge.set_len(1 << 30).unwrap();
    let started = Instant::now();
    let (l, diags) = load_path(&main, &offline(d));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0004", "main.yaml", 3)]));
    assert!(diags[0].message.contains("1073741824 bytes"), "{}", diags[0].message);
    assert_eq!(l.sources.iter().count(), 1);

    let (l, diags) = load_path(&d.join("huge.yaml"), &offline(d));
    assert!(l.docs.is_empty());
    assert_eq!(diags[0].code, "E0004");

    // Stdin is read through a cap, never buffered whole.
    let limits = tosca::yaml::Limits { max_file_size: 1000, ..Default::default() };
    let endless = std::io::repeat(b'a');
    let e = Entry::from_reader("<stdin>", endless, &limits).unwrap_err();
    assert_eq!(e.code, "E0004");
}

// ---------------------------------------------------------------- stdin

#[test]
fn stdin_text_imports_relative_to_the_working_directory() {
    // Cargo runs integration tests in the package directory; a temporary directory inside it
    // gives a path relative to the working directory without changing it.
    let cwd = std::env::current_dir().unwrap();
    let t = tempfile::Builder::new().prefix(".loader-test-").tempdir_in(&cwd).unwrap();
    let rel = t.path().file_name().unwrap().to_str().unwrap().to_string();
    write(t.path(), "types.yaml", V13);
    let text = format!("{V13}imports:\n  - {rel}/types.yaml\n  - {rel}/missing.yaml\n");
    let limits = tosca::yaml::Limits::default();
    let entry = Entry::from_reader("<stdin>", text.as_bytes(), &limits).unwrap();
    let (l, diags) = run(entry, &offline(t.path()));
    assert_eq!(l.sources.name(l.docs[0].file), "<stdin>");
    assert_eq!(l.docs[0].location, "<stdin>");
    assert_eq!(l.docs.len(), 2);
    assert_eq!(l.sources.name(l.docs[1].file), format!("{rel}/types.yaml"));
    assert_eq!(diags.len(), 1);
    assert_eq!((diags[0].code, l.sources.name(diags[0].span.file), diags[0].span.line), ("E0008", "<stdin>", 4));
}

// ---------------------------------------------------------------- CSAR

fn zip(path: &Path, files: &[(&str, &str)]) {
    let f = fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    for (name, text) in files {
        z.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        z.write_all(text.as_bytes()).unwrap();
    }
    z.finish().unwrap();
}

const META: &str =
    "TOSCA-Meta-File-Version: 1.1\nCSAR-Version: 1.1\nCreated-By: tests\nEntry-Definitions: Definitions/main.yaml\n";

#[test]
fn csar_zip_with_meta_resolves_imports_inside_the_archive() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let csar = d.join("app.csar");
    zip(
        &csar,
        &[
            ("TOSCA-Metadata/TOSCA.meta", META),
            (
                "Definitions/main.yaml",
                &format!(
                    "{V13}imports:\n  - ../types/t.yaml\n  - helpers.yaml\n  - gone.yaml\n  - ../../escape.yaml\n"
                ),
            ),
            ("Definitions/helpers.yaml", V13),
            ("types/t.yaml", V13),
            ("scripts/install.sh", "#!/bin/sh\n"),
        ],
    );
    let (l, diags) = load_path(&csar, &offline(d));
    assert_eq!(
        doc_names(&l, d),
        ["app.csar!/Definitions/main.yaml", "app.csar!/types/t.yaml", "app.csar!/Definitions/helpers.yaml"]
    );
    let canonical = csar.canonicalize().unwrap();
    assert_eq!(l.docs[1].location, format!("{}!/types/t.yaml", canonical.display()));
    assert_eq!(
        diag_summary(&l, &diags, d),
        s(&[("E0008", "app.csar!/Definitions/main.yaml", 5), ("E0008", "app.csar!/Definitions/main.yaml", 6)])
    );
    assert!(diags[1].message.contains("outside the CSAR"), "{}", diags[1].message);
    let info = l.csar.as_ref().unwrap();
    assert_eq!(info.entry_definitions, "Definitions/main.yaml");
    assert_eq!(
        info.meta.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        ["TOSCA-Meta-File-Version", "CSAR-Version", "Created-By", "Entry-Definitions"]
    );
    // TOSCA.meta is a source too, so CSAR errors can point into it.
    assert!(l.sources.iter().any(|(_, f)| f.name.ends_with("app.csar!/TOSCA-Metadata/TOSCA.meta")));
}

#[test]
fn csar_meta_errors_point_into_tosca_meta() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let cases: &[(&str, &str, u32, &str)] = &[
        ("TOSCA-Meta-File-Version: 1.1\nCSAR-Version: 1.1\n", "TOSCA.meta", 1, "no Entry-Definitions"),
        (
            "TOSCA-Meta-File-Version: 1.1\nEntry-Definitions: missing.yaml\n",
            "TOSCA.meta",
            2,
            "`missing.yaml`, which is not in",
        ),
        ("TOSCA-Meta-File-Version: 1.1\nthis is not a key value line\n", "TOSCA.meta", 2, "not a `Key: Value` line"),
        ("Entry-Definitions: ../up.yaml\n", "TOSCA.meta", 1, "outside the archive"),
        ("entry-definitions: nope.yaml\n", "TOSCA.meta", 1, "`nope.yaml`, which is not in"),
    ];
    for (i, (meta, file, line, needle)) in cases.iter().enumerate() {
        let csar = d.join(format!("c{i}.zip"));
        zip(&csar, &[("TOSCA-Metadata/TOSCA.meta", meta), ("main.yaml", V13)]);
        let (l, diags) = load_path(&csar, &offline(d));
        assert!(l.docs.is_empty(), "case {i}");
        assert_eq!(diags.len(), 1, "case {i}: {diags:?}");
        assert_eq!(diags[0].code, "E0007", "case {i}");
        assert!(l.sources.name(diags[0].span.file).ends_with(file), "case {i}");
        assert_eq!(diags[0].span.line, *line, "case {i}");
        assert!(diags[0].message.contains(needle), "case {i}: {}", diags[0].message);
    }
}

#[test]
fn csar_zip_without_meta_uses_the_single_root_yaml() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let csar = d.join("app.zip");
    zip(
        &csar,
        &[("service.yml", &format!("{V13}imports: [types/t.yaml]\n")), ("types/t.yaml", V13), ("README.md", "hi")],
    );
    let (l, diags) = load_path(&csar, &offline(d));
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(doc_names(&l, d), ["app.zip!/service.yml", "app.zip!/types/t.yaml"]);
    assert_eq!(l.csar.as_ref().unwrap().entry_definitions, "service.yml");
}

#[test]
fn csar_with_two_root_yaml_files_is_an_error_listing_them() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let csar = d.join("two.csar");
    zip(&csar, &[("a.yaml", V13), ("b.yaml", V13), ("sub/c.yaml", V13)]);
    let (l, diags) = load_path(&csar, &offline(d));
    assert!(l.docs.is_empty());
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, "E0007");
    assert!(diags[0].message.contains("2 YAML files at its root (a.yaml, b.yaml)"), "{}", diags[0].message);

    let empty = d.join("empty.csar");
    zip(&empty, &[("sub/c.yaml", V13)]);
    let (_, diags) = load_path(&empty, &offline(d));
    assert_eq!(diags[0].code, "E0007");
    assert!(diags[0].message.contains("no YAML file at its root"), "{}", diags[0].message);
}

#[test]
fn zip_path_traversal_is_rejected() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let csar = d.join("evil.csar");
    zip(&csar, &[("main.yaml", V13), ("../evil.yaml", "x: 1\n"), ("/etc/cron.d/x", "x")]);
    let (l, diags) = load_path(&csar, &offline(d));
    assert!(l.docs.is_empty());
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, "E0007");
    assert!(
        diags[0].message.contains("`../evil.yaml`") && diags[0].message.contains("`/etc/cron.d/x`"),
        "{}",
        diags[0].message
    );
    assert!(!d.parent().unwrap().join("evil.yaml").exists());
}

#[test]
fn zip_entries_are_capped_at_the_file_size_limit() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let csar = d.join("big.csar");
    let big = format!("{V13}description: {}\n", "x".repeat(5000));
    zip(&csar, &[("main.yaml", &format!("{V13}imports: [types/big.yaml]\n")), ("types/big.yaml", &big)]);
    let mut o = offline(d);
    o.limits.max_file_size = 1000;
    let (l, diags) = load_path(&csar, &o);
    assert_eq!(doc_names(&l, d), ["big.csar!/main.yaml"], "{diags:?}");
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0004", "big.csar!/main.yaml", 2)]));

    o.limits.max_file_size = 1 << 20;
    o.max_archive_entries = 1;
    let (_, diags) = load_path(&csar, &o);
    assert_eq!(diags[0].code, "E0007");
    assert!(diags[0].message.contains("2 entries"), "{}", diags[0].message);

    fs::write(d.join("garbage.csar"), b"PK\x03\x04 not really a zip").unwrap();
    let (_, diags) = load_path(&d.join("garbage.csar"), &offline(d));
    assert_eq!(diags[0].code, "E0007");
}

#[test]
fn directory_csar_with_and_without_meta() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let with = d.join("with");
    write(&with, "TOSCA-Metadata/TOSCA.meta", META);
    write(&with, "Definitions/main.yaml", &format!("{V13}imports: [../types/t.yaml]\n"));
    write(&with, "types/t.yaml", V13);
    write(&with, "stray.yaml", V13);
    let (l, diags) = load_path(&with, &offline(d));
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(doc_names(&l, d), ["with/Definitions/main.yaml", "with/types/t.yaml"]);
    assert_eq!(l.csar.as_ref().unwrap().entry_definitions, "Definitions/main.yaml");

    let without = d.join("without");
    write(&without, "app.yaml", V13);
    write(&without, "types/t.yaml", V13);
    let (l, diags) = load_path(&without, &offline(d));
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(doc_names(&l, d), ["without/app.yaml"]);

    write(&without, "second.yml", V13);
    let (_, diags) = load_path(&without, &offline(d));
    assert_eq!(diags[0].code, "E0007");
    assert!(diags[0].message.contains("(app.yaml, second.yml)"), "{}", diags[0].message);
}

// ---------------------------------------------------------------- URL imports

const INDIGO: &str = "https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml";

#[test]
fn import_map_exact_and_prefix() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(
        d,
        "main.yaml",
        &format!("tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - indigo_custom_types: {INDIGO}\n  - https://lib.example.org/v1/net/net.yaml\n"),
    );
    write(d, "indigo.yaml", "tosca_definitions_version: tosca_simple_yaml_1_0\n");
    // The mapped copy imports a sibling by a relative path: it resolves as a URL, through the map.
    write(d, "libmirror/net/net.yaml", &format!("{V13}imports: [../common.yaml]\n"));
    write(d, "libmirror/common.yaml", V13);
    let mut o = offline(d);
    o.import_map = vec![
        (INDIGO.into(), d.join("indigo.yaml")),
        ("https://lib.example.org/".into(), d.join("wrong")),
        ("https://lib.example.org/v1/".into(), d.join("libmirror")),
    ];
    let (l, diags) = load_path(&main, &o);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        doc_names(&l, d),
        ["main.yaml", INDIGO, "https://lib.example.org/v1/net/net.yaml", "https://lib.example.org/v1/common.yaml"]
    );
    assert_eq!(l.docs[1].location, INDIGO);
    assert_eq!(l.edges[0].import_name.as_deref(), Some("indigo_custom_types"));
}

#[test]
fn offline_miss_names_the_url_and_the_import_map() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(d, "main.yaml", &format!("{V13}imports:\n  - {INDIGO}\n"));
    let (l, diags) = load_path(&main, &offline(d));
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0010", "main.yaml", 3)]));
    assert!(diags[0].message.contains(INDIGO), "{}", diags[0].message);
    let help = diags[0].help.as_deref().unwrap_or_default();
    assert!(help.contains(&format!("--import-map {INDIGO}=PATH")), "{help}");
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main =
        write(d, "main.yaml", &format!("{V13}imports:\n  - http://types.example.org/t.yaml\n  - ftp://x.org/t.yaml\n"));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut o = offline(d);
    o.allow_fetch = true;
    o.fetcher = Some(Box::new(FakeFetcher { calls: calls.clone(), reply: |_| Ok(V13.into()) }));
    let (l, diags) = load_path(&main, &o);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0011", "main.yaml", 3), ("E0014", "main.yaml", 4)]));
    assert!(diags[0].message.contains("https://"), "{}", diags[0].message);
    assert!(calls.lock().unwrap().is_empty());
}

/// A fetcher that records the URLs asked for and answers from a function.
struct FakeFetcher {
    calls: Arc<Mutex<Vec<String>>>,
    reply: fn(&str) -> Result<Vec<u8>, String>,
}

impl Fetcher for FakeFetcher {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        self.calls.lock().unwrap().push(url.to_string());
        (self.reply)(url)
    }
}

fn fake(calls: &Arc<Mutex<Vec<String>>>, reply: fn(&str) -> Result<Vec<u8>, String>) -> Option<Box<dyn Fetcher>> {
    Some(Box::new(FakeFetcher { calls: calls.clone(), reply }))
}

#[test]
fn fetched_imports_are_cached_and_served_offline() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let cache = d.join("cache");
    let main = write(
        d,
        "main.yaml",
        &format!("{V13}imports:\n  - https://h.example.org/x/a.yaml\n  - https://h.example.org/x/a.yaml#again\n"),
    );
    let calls = Arc::new(Mutex::new(Vec::new()));
    let reply = |url: &str| match url {
        "https://h.example.org/x/a.yaml" => Ok(format!("{V13}imports: [b.yaml]\n").into_bytes()),
        "https://h.example.org/x/b.yaml" => Ok(V13.as_bytes().to_vec()),
        other => Err(format!("unexpected {other}")),
    };
    let online = LoadOptions {
        cache_dir: Some(cache.clone()),
        allow_fetch: true,
        fetcher: fake(&calls, reply),
        ..LoadOptions::default()
    };
    let (l, diags) = load_path(&main, &online);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(doc_names(&l, d), ["main.yaml", "https://h.example.org/x/a.yaml", "https://h.example.org/x/b.yaml"]);
    assert_eq!(*calls.lock().unwrap(), ["https://h.example.org/x/a.yaml", "https://h.example.org/x/b.yaml"]);
    let entry = loader::cache_entry_dir(&cache, "https://h.example.org/x/a.yaml");
    assert!(entry.join("content").is_file() && entry.join("meta.json").is_file());

    // Offline, and online too: the cache answers, the fetcher is not asked again.
    for allow_fetch in [false, true] {
        let o = LoadOptions {
            cache_dir: Some(cache.clone()),
            allow_fetch,
            fetcher: fake(&calls, reply),
            ..LoadOptions::default()
        };
        let (l2, diags) = load_path(&main, &o);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(doc_names(&l2, d), doc_names(&l, d));
        assert_eq!(calls.lock().unwrap().len(), 2);
    }
}

#[test]
fn corrupted_cache_entry_is_ignored_and_refetched() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let cache = d.join("cache");
    let url = "https://h.example.org/t.yaml";
    let main = write(d, "main.yaml", &format!("{V13}imports:\n  - {url}\n"));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let reply = |_: &str| Ok(V13.as_bytes().to_vec());
    let online = || LoadOptions {
        cache_dir: Some(cache.clone()),
        allow_fetch: true,
        fetcher: fake(&calls, reply),
        ..LoadOptions::default()
    };
    let (_, diags) = load_path(&main, &online());
    assert!(diags.is_empty());
    let content = loader::cache_entry_dir(&cache, url).join("content");
    fs::write(&content, "tosca_definitions_version: tampered\n").unwrap();

    let (l, diags) = load_path(&main, &offline(&cache));
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0010", "main.yaml", 3)]));
    assert!(diags[0].message.contains("sha256"), "{}", diags[0].message);

    let (l, diags) = load_path(&main, &online());
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(l.docs[1].version.as_deref(), Some("tosca_simple_yaml_1_3"));
    assert_eq!(calls.lock().unwrap().len(), 2);
    assert_eq!(fs::read_to_string(&content).unwrap(), V13);
}

#[test]
fn fetch_failure_is_reported_once_per_import_and_fetched_once() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let url = "https://down.example.org/t.yaml";
    let main = write(d, "main.yaml", &format!("{V13}imports:\n  - {url}\n  - a.yaml\n"));
    write(d, "a.yaml", &format!("{V13}imports: ['{url}']\n"));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let o = LoadOptions {
        cache_dir: Some(d.join("cache")),
        allow_fetch: true,
        fetcher: fake(&calls, |_| Err("connection refused".into())),
        ..LoadOptions::default()
    };
    let (l, diags) = load_path(&main, &o);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0011", "main.yaml", 3), ("E0011", "a.yaml", 2)]));
    assert!(diags[0].message.contains("connection refused"), "{}", diags[0].message);
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[test]
fn an_endless_chain_of_url_imports_stops_at_max_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(d, "main.yaml", &format!("{V13}imports: ['https://gen.example.org/0.yaml']\n"));
    let calls = Arc::new(Mutex::new(Vec::new()));
    // Every generated file imports the next one: a server that never runs out of templates.
    let reply = |url: &str| {
        let n: u64 = url.trim_start_matches("https://gen.example.org/").trim_end_matches(".yaml").parse().unwrap();
        Ok(format!("{V13}imports: ['{}.yaml']\n", n + 1).into_bytes())
    };
    let o = LoadOptions {
        cache_dir: Some(d.join("cache")),
        allow_fetch: true,
        fetcher: fake(&calls, reply),
        max_files: 5,
        ..LoadOptions::default()
    };
    let (l, diags) = load_path(&main, &o);
    assert_eq!(l.docs.len(), 5);
    assert_eq!(calls.lock().unwrap().len(), 4);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0003", "https://gen.example.org/3.yaml", 2)]));
}

/// Serves up to `max_requests` HTTP/1.1 requests on 127.0.0.1, answering `/types.yaml` with
/// `body` and anything else with 404. Stops by itself after the requests or 20 seconds.
#[cfg(feature = "fetch")]
fn serve(max_requests: usize, body: &'static str) -> (u16, Arc<AtomicUsize>, std::thread::JoinHandle<()>) {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.load(Ordering::SeqCst) < max_requests && Instant::now() < deadline {
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let head = String::from_utf8_lossy(&request);
            let (status, body) =
                if head.starts_with("GET /types.yaml ") { ("200 OK", body) } else { ("404 Not Found", "no\n") };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, count, handle)
}

#[cfg(feature = "fetch")]
#[test]
fn real_http_fetch_then_offline_from_cache() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let cache = d.join("cache");
    let (port, count, server) = serve(1, "tosca_definitions_version: tosca_simple_yaml_1_3\ndescription: served\n");
    let url = format!("http://127.0.0.1:{port}/types.yaml");
    let main = write(d, "main.yaml", &format!("{V13}imports:\n  - {url}\n"));
    let online = LoadOptions { cache_dir: Some(cache.clone()), allow_fetch: true, ..LoadOptions::default() };
    let (l, diags) = load_path(&main, &online);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(doc_names(&l, d), ["main.yaml", url.as_str()]);
    assert_eq!(l.docs[1].doc.get("description").and_then(|v| v.as_str()), Some("served"));
    server.join().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(loader::cache_entry_dir(&cache, &url).join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["url"], url.as_str());

    // The server is gone: only the cache can answer, and no request is made.
    let (l, diags) = load_path(&main, &offline(&cache));
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(l.docs[1].doc.get("description").and_then(|v| v.as_str()), Some("served"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[cfg(feature = "fetch")]
#[test]
fn real_http_errors_and_size_cap() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let body: &'static str = Box::leak(format!("{V13}description: {}\n", "x".repeat(300)).into_boxed_str());
    let (port, count, server) = serve(2, body);
    let main = write(
        d,
        "main.yaml",
        &format!("{V13}imports:\n  - http://127.0.0.1:{port}/missing.yaml\n  - http://localhost:{port}/types.yaml\n"),
    );
    let mut o = LoadOptions { cache_dir: Some(d.join("cache")), allow_fetch: true, ..LoadOptions::default() };
    let (l, diags) = load_path(&main, &o);
    server.join().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2, "{diags:?}");
    assert_eq!(doc_names(&l, d), ["main.yaml", &format!("http://localhost:{port}/types.yaml")]);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0011", "main.yaml", 3)]));
    assert!(diags[0].message.contains("404"), "{}", diags[0].message);

    // A response above the file size limit is refused, not buffered.
    let (port, count, server) = serve(1, body);
    let main = write(d, "small.yaml", &format!("{V13}imports:\n  - http://127.0.0.1:{port}/types.yaml\n"));
    o.limits.max_file_size = 200;
    o.cache_dir = Some(d.join("cache2"));
    let (l, diags) = load_path(&main, &o);
    server.join().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0011", "small.yaml", 3)]));
    assert!(diags[0].message.contains("limit of 200 bytes"), "{}", diags[0].message);
}

#[cfg(not(feature = "fetch"))]
#[test]
fn without_the_fetch_feature_url_imports_say_so() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let main = write(d, "main.yaml", &format!("{V13}imports:\n  - {INDIGO}\n"));
    let o = LoadOptions { cache_dir: Some(d.join("cache")), allow_fetch: true, ..LoadOptions::default() };
    let (l, diags) = load_path(&main, &o);
    assert_eq!(diag_summary(&l, &diags, d), s(&[("E0011", "main.yaml", 3)]));
    assert!(diags[0].message.contains("`fetch` feature"), "{}", diags[0].message);
}

/// Needs the internet; run by hand with `cargo test -p tosca -- --ignored indigo`.
#[cfg(feature = "fetch")]
#[test]
#[ignore = "fetches from the internet"]
fn indigo_custom_types_over_https() {
    let t = tempfile::tempdir().unwrap();
    let main = write(
        t.path(),
        "main.yaml",
        &format!("tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - indigo_custom_types: {INDIGO}\n"),
    );
    let o = LoadOptions { cache_dir: Some(t.path().join("cache")), allow_fetch: true, ..LoadOptions::default() };
    let (l, diags) = load_path(&main, &o);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(l.docs[1].location, INDIGO);
    assert!(l.docs[1].doc.get("node_types").is_some());
}

/// A server compiles templates it receives with `allow_local_imports: false`: neither a path
/// nor a `file://` URL may read its files.
#[test]
fn local_imports_can_be_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "secret.yaml", "tosca_definitions_version: tosca_simple_yaml_1_3\ndescription: do-not-read\n");
    for reference in [secret.display().to_string(), format!("file://{}", secret.display())] {
        let text = format!("tosca_definitions_version: tosca_simple_yaml_1_3\nimports:\n  - {reference}\n");
        let options = LoadOptions { allow_local_imports: false, allow_fetch: false, ..LoadOptions::default() };
        let (loaded, diags) = run(Entry::Text { name: "posted".into(), text }, &options);
        assert_eq!(loaded.docs.len(), 1, "{reference}: the import was read");
        assert!(diags.iter().any(|d| d.code == "E0008" && d.message.contains("local files cannot be imported")), "{reference}: {diags:?}");
    }
}
