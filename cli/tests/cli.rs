//! End-to-end tests: the real `rosca` binary on fixture templates.

use assert_cmd::Command;
use std::path::PathBuf;

const INDIGO_URL: &str = "https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn rosca() -> Command {
    let mut c = Command::cargo_bin("rosca").expect("rosca binary");
    c.current_dir(fixtures()).env("NO_COLOR", "1").env("ROSCA_CACHE_DIR", std::env::temp_dir().join("rosca-cli-test-cache"));
    c
}

fn indigo_map() -> String {
    format!("{INDIGO_URL}={}", fixtures().join("tosca/indigo/custom_types.yaml").display())
}

#[test]
fn validate_example_is_valid() {
    let out = rosca().args(["validate", "examples/web_app.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn validate_broken_template_renders_located_diagnostics() {
    let out = rosca().args(["validate", "cli/broken.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("broken_human", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn validate_json_lists_codes_and_positions() {
    let out = rosca().args(["validate", "cli/broken.yaml", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    insta::assert_json_snapshot!("broken_json", v);
}

#[test]
fn topology_of_example() {
    let out = rosca().args(["topology", "examples/web_app.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("web_app_topology", v);
}

#[test]
fn topology_yaml_output() {
    let out = rosca().args(["topology", "examples/web_app.yaml", "--format", "yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("format_version"), "{text}");
}

#[test]
fn indigo_template_through_import_map_offline() {
    let out = rosca().args(["validate", "cli/indigo_node.yaml", "--offline", "--import-map", &indigo_map()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = rosca().args(["topology", "cli/indigo_node.yaml", "--offline", "--import-map", &indigo_map()]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"]["node"]["scaling"]["default_instances"], 1);
    assert_eq!(v["outputs"]["node_ip"]["value"]["$expr"]["get_attribute"][1], "public_address");
}

#[test]
fn indigo_template_offline_without_map_says_how_to_fix() {
    let out = rosca().args(["validate", "cli/indigo_node.yaml", "--offline", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "E0010");
    assert_eq!(d["line"], 4);
    assert!(d["help"].as_str().unwrap().contains("--import-map"));
}

#[test]
fn inputs_from_flags_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.yaml");
    std::fs::write(&f, "port: 9090\n").unwrap();
    let out = rosca().args(["topology", "examples/web_app.yaml", "--inputs"]).arg(&f).args(["-i", "db_password=s3cret"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inputs"]["port"]["value"], 9090);
    // Sensitive inputs never appear in the output, neither as inputs nor copied into properties.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("s3cret") && !text.contains("change-me"), "{text}");
    assert_eq!(v["nodes"]["database"]["properties"]["password"]["$expr"]["get_input"], "db_password");
    // Out of the input's in_range constraint:
    let out = rosca().args(["validate", "examples/web_app.yaml", "-i", "port=80", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "E0302");
    // Undeclared input:
    let out = rosca().args(["validate", "examples/web_app.yaml", "-i", "prot=80", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "E0502");
    assert!(v["diagnostics"][0]["help"].as_str().unwrap().contains("port"));
}

#[test]
fn stdin_template() {
    let text = std::fs::read_to_string(fixtures().join("examples/web_app.yaml")).unwrap();
    let out = rosca().args(["validate", "-"]).write_stdin(text).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let out = rosca().args(["validate", "no/such/file.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
    let out = rosca().args(["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn topology_of_indigo_elastic_cluster() {
    let out = rosca()
        .args(["topology", "tosca/valid/indigo/elastic_cluster_removal_list.yaml", "--offline", "--import-map", &indigo_map()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("indigo_elastic_cluster_topology", v);
}

#[test]
fn import_map_from_rosca_toml() {
    let dir = tempfile::tempdir().unwrap();
    let types = fixtures().join("tosca/indigo/custom_types.yaml");
    std::fs::write(dir.path().join("rosca.toml"), format!("[tosca]\noffline = true\nimport_map = {{ \"{INDIGO_URL}\" = {:?} }}\n", types.display().to_string())).unwrap();
    std::fs::copy(fixtures().join("cli/indigo_node.yaml"), dir.path().join("t.yaml")).unwrap();
    let out = Command::cargo_bin("rosca").unwrap().current_dir(dir.path()).args(["validate", "t.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // A config that is not valid TOML is a usage error naming the file.
    std::fs::write(dir.path().join("rosca.toml"), "[tosca\n").unwrap();
    let out = Command::cargo_bin("rosca").unwrap().current_dir(dir.path()).args(["validate", "t.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rosca.toml"));
}

#[test]
fn csar_directory_entry_point() {
    let dir = tempfile::tempdir().unwrap();
    let csar = dir.path().join("app");
    std::fs::create_dir_all(csar.join("TOSCA-Metadata")).unwrap();
    std::fs::create_dir_all(csar.join("Definitions")).unwrap();
    std::fs::write(csar.join("TOSCA-Metadata/TOSCA.meta"), "TOSCA-Meta-File-Version: 1.0\nCSAR-Version: 1.1\nCreated-By: test\nEntry-Definitions: Definitions/main.yaml\n").unwrap();
    std::fs::copy(fixtures().join("examples/web_app.yaml"), csar.join("Definitions/main.yaml")).unwrap();
    let out = Command::cargo_bin("rosca").unwrap().arg("validate").arg(&csar).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn diagnostics_in_imported_files_name_that_file() {
    let out = rosca().args(["validate", "tosca/invalid/imports/import_cycle.yaml", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "E0009");
    assert!(d["file"].as_str().unwrap().ends_with("cycle_b.yaml"), "{d}");
    assert!(d["message"].as_str().unwrap().contains("->"));
}
