//! The journal file `<state>.journal`: JSON lines, a header naming the snapshot it extends,
//! then one `JournalEntry` per line. Appending costs one write(2) per change, so N changes cost
//! O(N) instead of N full rewrites.

use crate::backend::StateError;
use crate::doc::{JournalEntry, StateDoc};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// First line of a journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// Serial of the snapshot the entries apply to.
    pub base_serial: u64,
    /// Lineage of that snapshot.
    pub lineage: String,
    /// Digest of that snapshot's bytes (`fsio::digest`); absent = not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
    /// Serial of the state the entries produce; absent = `base_serial + 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u64>,
}

impl Header {
    fn applies_to(&self, doc: &StateDoc, digest: &str) -> bool {
        self.base_serial == doc.serial
            && self.lineage == doc.lineage
            && self.base_digest.as_deref().is_none_or(|d| d == digest)
    }
}

/// What `replay` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// No complete header: an empty journal, or one torn while its first line was written.
    Empty,
    /// The journal extends another snapshot (one written before the current one): ignored.
    Stale,
    Applied { entries: usize },
}

/// The header line of a journal file, if it has a complete one.
pub(crate) fn read_header(bytes: &[u8], journal: &Path) -> Result<Option<Header>, StateError> {
    match complete_lines(bytes).next() {
        None => Ok(None),
        Some(line) => serde_json::from_slice(line).map(Some).map_err(|e| corrupt(journal, 1, &e)),
    }
}

/// Applies the journal `bytes` to `doc` (the snapshot whose bytes have `digest`) if its header
/// names that snapshot. A last line without its newline is a write torn by a crash and is
/// ignored; any other unreadable line is an error.
pub(crate) fn replay(
    doc: &mut StateDoc,
    digest: &str,
    bytes: &[u8],
    journal: &Path,
) -> Result<Replay, StateError> {
    let Some(header) = read_header(bytes, journal)? else {
        return Ok(Replay::Empty);
    };
    if !header.applies_to(doc, digest) {
        return Ok(Replay::Stale);
    }
    let mut entries = 0;
    for (i, line) in complete_lines(bytes).enumerate().skip(1) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry: JournalEntry = serde_json::from_slice(line).map_err(|e| corrupt(journal, i + 1, &e))?;
        doc.apply(&entry);
        entries += 1;
    }
    if entries > 0 {
        doc.serial = header.serial.unwrap_or(header.base_serial.saturating_add(1));
    }
    Ok(Replay::Applied { entries })
}

/// The newline-terminated lines of `bytes` (a trailing partial line is left out).
fn complete_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes[..end].split_inclusive(|&b| b == b'\n').map(|l| l.strip_suffix(b"\n").unwrap_or(l))
}

fn corrupt(journal: &Path, line: usize, err: &serde_json::Error) -> StateError {
    StateError::Corrupt {
        location: journal.display().to_string(),
        message: format!(
            "line {line} is not a journal record ({err}); the journal holds changes made since \
             the last full write of the state. Fix or delete that line, or move the journal \
             aside to fall back to the last full state (losing those changes), then run \
             `rosca plan` to see what the state is missing"
        ),
    }
}

/// One JSON line (the record and its newline, written with a single write(2)).
pub(crate) fn line<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut out = serde_json::to_vec(value).map_err(io::Error::other)?;
    out.push(b'\n');
    Ok(out)
}

/// A journal this process is appending to.
pub(crate) struct OpenJournal {
    file: File,
    pub header: Header,
    last_sync: Instant,
    unsynced: bool,
    /// A write failed part-way: the file may end in a partial line, so it must not be
    /// appended to again (the next change rewrites the full state instead).
    pub broken: bool,
    /// Bytes this process wrote to the file.
    pub written: u64,
}

impl OpenJournal {
    /// Starts a journal at `path` (replacing any stale one) holding `header` and `first`.
    pub fn create(path: &Path, header: Header, first: &JournalEntry) -> io::Result<OpenJournal> {
        let mut bytes = line(&header)?;
        bytes.extend(line(first)?);
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
        Ok(OpenJournal { file, header, last_sync: Instant::now(), unsynced: false, broken: false, written: bytes.len() as u64 })
    }

    /// Whether the file at `path` is still this journal as this process left it. Another
    /// process's full write removes it; another's journal replaces or truncates it: then
    /// appending here would be lost, or lose the other's changes.
    pub fn still_ours(&self, path: &Path) -> io::Result<bool> {
        let on_disk = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let mine = self.file.metadata()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if on_disk.ino() != mine.ino() || on_disk.dev() != mine.dev() {
                return Ok(false);
            }
        }
        Ok(on_disk.len() == self.written && mine.len() == self.written)
    }

    /// Appends one entry. The write(2) makes it survive a crash of this process at once;
    /// fsync (survival of a power loss) runs at most every `sync_interval`.
    pub fn append(&mut self, entry: &JournalEntry, sync_interval: Duration) -> io::Result<()> {
        let bytes = line(entry)?;
        if let Err(e) = self.file.write_all(&bytes) {
            self.broken = true;
            return Err(e);
        }
        self.written += bytes.len() as u64;
        self.unsynced = true;
        if self.last_sync.elapsed() >= sync_interval {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{ResourceState, ResourceStatus};

    fn res(address: &str) -> ResourceState {
        ResourceState {
            address: address.into(),
            node: address.into(),
            index: None,
            type_name: "T".into(),
            provider: "local".into(),
            site: None,
            id: Some("x".into()),
            status: ResourceStatus::Created,
            pending: None,
            config: serde_json::Value::Null,
            attributes: Default::default(),
            outputs: Default::default(),
            sensitive: vec![],
            dependencies: vec![],
            private: serde_json::Value::Null,
        }
    }

    fn journal(header: &Header, entries: &[JournalEntry]) -> Vec<u8> {
        let mut out = line(header).unwrap();
        for e in entries {
            out.extend(line(e).unwrap());
        }
        out
    }

    fn header(base: u64) -> Header {
        Header { base_serial: base, lineage: "L".into(), base_digest: Some("d".into()), serial: Some(base + 1) }
    }

    #[test]
    fn replays_matching_journal_and_sets_serial() {
        let mut doc = StateDoc::new("L".into());
        doc.serial = 3;
        let bytes = journal(&header(3), &[JournalEntry::Put(Box::new(res("a")))]);
        let r = replay(&mut doc, "d", &bytes, Path::new("j")).unwrap();
        assert_eq!(r, Replay::Applied { entries: 1 });
        assert_eq!(doc.serial, 4);
        assert!(doc.resource("a").is_some());
    }

    #[test]
    fn stale_and_torn() {
        let mut doc = StateDoc::new("L".into());
        doc.serial = 4;
        let bytes = journal(&header(3), &[JournalEntry::Put(Box::new(res("a")))]);
        assert_eq!(replay(&mut doc, "d", &bytes, Path::new("j")).unwrap(), Replay::Stale);
        doc.serial = 3;
        assert_eq!(replay(&mut doc, "other", &bytes, Path::new("j")).unwrap(), Replay::Stale);
        // A torn header is an empty journal; a torn entry is dropped.
        assert_eq!(replay(&mut doc, "d", b"{\"base_se", Path::new("j")).unwrap(), Replay::Empty);
        assert_eq!(replay(&mut doc, "d", b"", Path::new("j")).unwrap(), Replay::Empty);
        let err = replay(&mut doc, "d", b"\n", Path::new("j")).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        let mut torn = bytes.clone();
        torn.truncate(torn.len() - 5);
        assert_eq!(replay(&mut doc, "d", &torn, Path::new("j")).unwrap(), Replay::Applied { entries: 0 });
        assert_eq!(doc.serial, 3);
    }

    #[test]
    fn garbled_middle_line_names_file_and_line() {
        let mut doc = StateDoc::new("L".into());
        doc.serial = 3;
        let mut bytes = line(&header(3)).unwrap();
        bytes.extend(b"{not json}\n");
        bytes.extend(line(&JournalEntry::Remove { address: "a".into() }).unwrap());
        let err = replay(&mut doc, "d", &bytes, Path::new("s.journal")).unwrap_err().to_string();
        assert!(err.contains("s.journal") && err.contains("line 2"), "{err}");
    }
}
