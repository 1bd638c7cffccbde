//! The local backend's files: snapshot, backup, journal replay, crash leftovers, errors.

mod common;

use common::{files, res};
use state::{JournalEntry, LocalBackend, StateBackend, StateDoc, StateError, StateWriter};
use std::fs;
use std::sync::Arc;

fn doc_with(serial: u64, addresses: &[&str]) -> StateDoc {
    let mut doc = StateDoc::new("lineage-1".into());
    doc.serial = serial;
    for a in addresses {
        doc.put(res(a, "id"));
    }
    doc
}

#[test]
fn missing_state_reads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(dir.path().join("rosca.state.json"));
    assert!(b.read().unwrap().is_none());
}

#[test]
fn write_then_read_round_trips_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rosca.state.json");
    let b = LocalBackend::new(path.clone());
    let doc = doc_with(1, &["a", "b[2]", "b[10]"]);
    b.write(&doc).unwrap();
    assert_eq!(b.read().unwrap(), Some(doc.clone()));
    assert_eq!(fs::read(&path).unwrap(), doc.to_bytes());
    assert_eq!(files(dir.path()), ["rosca.state.json"]);
    // No backup of a file this backend created itself (Terraform's rule: the backup is the
    // state before the run, and there was none).
    b.write(&doc_with(2, &["a"])).unwrap();
    assert_eq!(files(dir.path()), ["rosca.state.json"]);
    LocalBackend::new(path.clone()).write(&doc_with(3, &["a"])).unwrap();
    assert_eq!(files(dir.path()), ["rosca.state.json", "rosca.state.json.backup"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn backup_keeps_the_version_before_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let first = doc_with(1, &["a"]);
    LocalBackend::new(path.clone()).write(&first).unwrap();
    let b = LocalBackend::new(path.clone());
    b.write(&doc_with(2, &["a", "b"])).unwrap();
    b.write(&doc_with(3, &["a", "b", "c"])).unwrap();
    // The backup is the state before this backend's run, not the previous write of the run.
    let backup = fs::read(b.backup_path()).unwrap();
    assert_eq!(StateDoc::from_bytes(&backup).unwrap(), first);
}

#[test]
fn journal_replay_and_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let b = Arc::new(LocalBackend::new(path.clone()));
    b.write(&doc_with(4, &["a"])).unwrap();
    let w = StateWriter::new(b.clone(), b.read().unwrap().unwrap());
    w.put(res("b", "1")).unwrap();
    w.put(res("c", "2")).unwrap();
    w.remove("a").unwrap();
    let expected = w.snapshot();
    drop(w);
    drop(b);
    // A fresh backend (another process) sees snapshot + journal.
    let fresh = LocalBackend::new(path.clone());
    assert_eq!(fresh.read().unwrap(), Some(expected.clone()));
    assert_eq!(expected.serial, 5);
    let journal = fresh.journal_path();
    let text = fs::read_to_string(&journal).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with(r#"{"base_serial":4,"lineage":"lineage-1""#), "{header}");
    // Tear the last line (remove "a"), as a crash in the middle of write(2) would.
    fs::write(&journal, &text[..text.len() - 4]).unwrap();
    let torn = fresh.read().unwrap().unwrap();
    assert!(torn.resource("a").is_some() && torn.resource("c").is_some());
    assert_eq!(torn.serial, 5);
}

#[test]
fn garbled_journal_line_is_corrupt_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let b = Arc::new(LocalBackend::new(path.clone()));
    b.write(&doc_with(1, &[])).unwrap();
    let w = StateWriter::new(b.clone(), b.read().unwrap().unwrap());
    for a in ["a", "b", "c"] {
        w.put(res(a, "1")).unwrap();
    }
    let journal = b.journal_path();
    let mut lines: Vec<String> = fs::read_to_string(&journal).unwrap().lines().map(String::from).collect();
    lines[2] = lines[2].replace('{', "<");
    fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let err = LocalBackend::new(path).read().unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }));
    let msg = err.to_string();
    assert!(msg.contains("s.json.journal") && msg.contains("line 3"), "{msg}");
}

#[test]
fn stale_journal_after_crash_between_snapshot_and_journal_removal_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let b = Arc::new(LocalBackend::new(path.clone()));
    b.write(&doc_with(1, &["a"])).unwrap();
    let w = StateWriter::new(b.clone(), b.read().unwrap().unwrap());
    w.put(res("b", "1")).unwrap();
    w.remove("a").unwrap();
    let journal = fs::read(b.journal_path()).unwrap();
    let done = w.finish().unwrap();
    // Simulate the crash: the new snapshot is in place but the journal was not removed.
    fs::write(b.journal_path(), &journal).unwrap();
    assert_eq!(LocalBackend::new(path.clone()).read().unwrap(), Some(done.clone()));
    // Even a later snapshot with the serial of the journal's base is not replayed onto.
    let mut same_serial = done.clone();
    same_serial.serial = 1;
    same_serial.put(res("z", "9"));
    fs::write(&path, same_serial.to_bytes()).unwrap();
    assert_eq!(LocalBackend::new(path).read().unwrap(), Some(same_serial));
}

#[test]
fn interrupted_run_is_folded_in_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    {
        let b = Arc::new(LocalBackend::new(path.clone()));
        b.write(&doc_with(1, &[])).unwrap();
        let w = StateWriter::new(b.clone(), b.read().unwrap().unwrap());
        w.put(res("a", "1")).unwrap(); // the run "crashes" here: no finish
    }
    let b = Arc::new(LocalBackend::new(path.clone()));
    let recovered = b.read().unwrap().unwrap();
    assert_eq!(recovered.serial, 2);
    let w = StateWriter::new(b.clone(), recovered);
    w.put(res("b", "2")).unwrap();
    w.put(res("c", "3")).unwrap();
    drop(w); // crash again
    let again = LocalBackend::new(path).read().unwrap().unwrap();
    assert_eq!(again.serial, 3);
    let addrs: Vec<&str> = again.resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addrs, ["a", "b", "c"]);
}

#[test]
fn append_without_a_snapshot_writes_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let b = Arc::new(LocalBackend::new(path.clone()));
    let w = StateWriter::new(b.clone(), StateDoc::new(String::new()));
    w.put(res("a", "1")).unwrap();
    assert!(path.exists());
    w.put(res("b", "1")).unwrap();
    assert!(b.journal_path().exists());
    assert_eq!(LocalBackend::new(path).read().unwrap(), Some(w.snapshot()));
}

#[test]
fn append_of_a_doc_that_is_not_snapshot_plus_entry_writes_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let b = LocalBackend::new(path.clone());
    b.write(&doc_with(1, &["a"])).unwrap();
    // The caller changed "x" in memory without telling the backend.
    let mut doc = doc_with(2, &["a", "x", "b"]);
    doc.lineage = "lineage-1".into();
    b.append(&doc, &JournalEntry::Put(Box::new(res("b", "id")))).unwrap();
    assert_eq!(b.read().unwrap(), Some(doc));
}

#[test]
fn corrupt_snapshot_names_file_and_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    fs::write(&path, b"{\"version\": 1, ").unwrap();
    let err = LocalBackend::new(path).read().unwrap_err().to_string();
    assert!(err.contains("s.json") && err.contains("s.json.backup"), "{err}");
    let dir2 = tempfile::tempdir().unwrap();
    let path2 = dir2.path().join("s.json");
    let mut future = doc_with(1, &[]);
    future.version = 99;
    fs::write(&path2, future.to_bytes()).unwrap();
    let err = LocalBackend::new(path2).read().unwrap_err().to_string();
    assert!(err.contains("upgrade rosca"), "{err}");
}

#[test]
fn missing_directory_is_an_error_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/s.json");
    let b = LocalBackend::new(path);
    let err = b.write(&doc_with(1, &[])).unwrap_err().to_string();
    assert!(err.contains("no/such/dir") && err.contains("does not exist") && err.contains("create it"), "{err}");
    let err = b.lock(&state::LockInfo::new("apply", "x")).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(b.read().unwrap().is_none());
}

#[test]
fn a_path_that_is_a_directory_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(dir.path().to_path_buf());
    assert!(b.read().is_err());
    assert!(b.write(&doc_with(1, &[])).is_err());
}

#[test]
fn journal_header_then_entries_are_single_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let b = Arc::new(LocalBackend::new(path.clone()));
    b.write(&doc_with(1, &[])).unwrap();
    let w = StateWriter::new(b.clone(), b.read().unwrap().unwrap());
    w.put(res("a", "1")).unwrap();
    w.remove("a").unwrap();
    let text = fs::read_to_string(b.journal_path()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["base_serial"], 1);
    assert_eq!(lines[0]["serial"], 2);
    assert_eq!(lines[1]["op"], "put");
    assert_eq!(lines[2], serde_json::json!({"op": "remove", "address": "a"}));
}

mod hostile_journal {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever follows a matching header, `read` returns a state or a Corrupt error.
        #[test]
        fn read_never_panics(tail in prop::collection::vec(any::<u8>(), 0..200)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.json");
            let b = Arc::new(LocalBackend::new(path.clone()));
            b.write(&doc_with(1, &[])).unwrap();
            let w = StateWriter::new(b.clone(), b.read().unwrap().unwrap());
            w.put(res("a", "1")).unwrap();
            let mut bytes = fs::read(b.journal_path()).unwrap();
            bytes.extend(&tail);
            fs::write(b.journal_path(), &bytes).unwrap();
            match LocalBackend::new(path).read() {
                Ok(doc) => prop_assert!(doc.is_some()),
                Err(e) => prop_assert!(matches!(e, StateError::Corrupt { .. }), "{e}"),
            }
        }
    }
}
