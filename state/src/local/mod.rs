//! The default backend: a JSON file on the local disk (docs/state.md, "Local backend").
//!
//! Files, for a state at `dir/rosca.state.json`:
//! - `rosca.state.json`: the last full snapshot, replaced atomically by `write`;
//! - `rosca.state.json.backup`: the file as it was before this backend first replaced it;
//! - `rosca.state.json.journal`: changes appended since the snapshot (`append`);
//! - `rosca.state.json.lock` and `.rosca.state.json.lock.info`: the OS lock and its holder.

mod fsio;
mod journal;
mod oslock;

use crate::backend::{LockError, LockInfo, StateBackend, StateError};
use crate::doc::{JournalEntry, StateDoc};
use journal::{Header, OpenJournal, Replay};
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How often, at most, appended journal entries are fsynced. Every append reaches the kernel
/// (write(2)) before it returns, so a killed process loses nothing; only a power loss or kernel
/// crash can lose the entries of the last interval. `write` always fsyncs.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);

pub struct LocalBackend {
    path: PathBuf,
    sync_interval: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Whether the backup decision was made (it is made once, at the first write).
    backup_done: bool,
    journal: Option<OpenJournal>,
    lock: Option<oslock::Held>,
    /// Digest of the snapshot this backend last read or wrote (`Some(None)`: it saw none), for
    /// the compare-and-swap of `write`; `None` until the first read or write.
    seen: Option<Option<String>>,
    /// Length of the journal file when this backend last read, wrote or appended (0: none),
    /// so a write from a view that missed another process's appends is refused too.
    seen_journal: u64,
}

impl LocalBackend {
    pub fn new(path: PathBuf) -> LocalBackend {
        LocalBackend { path, sync_interval: DEFAULT_SYNC_INTERVAL, inner: Mutex::default() }
    }

    /// Sets how often journal appends are fsynced (`Duration::ZERO`: on every append).
    pub fn with_sync_interval(mut self, interval: Duration) -> LocalBackend {
        self.sync_interval = interval;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn backup_path(&self) -> PathBuf {
        fsio::with_suffix(&self.path, ".backup")
    }
    pub fn journal_path(&self) -> PathBuf {
        fsio::with_suffix(&self.path, ".journal")
    }
    pub fn lock_path(&self) -> PathBuf {
        fsio::with_suffix(&self.path, ".lock")
    }
    pub fn lock_info_path(&self) -> PathBuf {
        fsio::hidden_sibling(&self.path, ".lock.info")
    }

    /// Forces appended journal entries to disk now (they are otherwise fsynced at most every
    /// sync interval, and on `write` and drop).
    pub fn sync(&self) -> Result<(), StateError> {
        match self.inner().journal.as_mut() {
            Some(j) => j.sync().map_err(|e| self.write_error(&e, &self.journal_path())),
            None => Ok(()),
        }
    }

    /// A poisoned mutex only means another thread panicked mid-call; the data it guards is
    /// still consistent enough to go on (at worst the journal is marked broken).
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_error(&self, err: &io::Error, path: &Path) -> StateError {
        StateError::Read { location: path.display().to_string(), message: fsio::explain(err, path) }
    }
    fn write_error(&self, err: &io::Error, path: &Path) -> StateError {
        StateError::Write { location: path.display().to_string(), message: fsio::explain(err, path) }
    }

    fn check_path(&self) -> Result<(), StateError> {
        if self.path.file_name().is_none() {
            return Err(StateError::Write {
                location: self.path.display().to_string(),
                message: "the state path must name a file, e.g. rosca.state.json".into(),
            });
        }
        Ok(())
    }

    /// The snapshot's bytes, or `None` if there is none.
    fn read_snapshot(&self) -> Result<Option<Vec<u8>>, StateError> {
        match fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.read_error(&e, &self.path)),
        }
    }

    fn parse_snapshot(&self, bytes: &[u8]) -> Result<StateDoc, StateError> {
        StateDoc::from_bytes(bytes).map_err(|message| StateError::Corrupt {
            location: self.path.display().to_string(),
            message: format!(
                "{message}; the version before the last write is in {}",
                self.backup_path().display()
            ),
        })
    }

    fn read_journal(&self) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.journal_path();
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.read_error(&e, &path)),
        }
    }

    /// The header under which `doc` (the state after `entry`) can be journaled on top of the
    /// snapshot on disk, or `None` when the snapshot is not `doc` minus `entry` (no state yet,
    /// another lineage, a journal of an interrupted run still to fold in, a caller that
    /// changed the document some other way): then only a full write is correct.
    fn journal_header(&self, doc: &StateDoc, entry: &JournalEntry) -> Result<Option<Header>, StateError> {
        let Some(bytes) = self.read_snapshot()? else { return Ok(None) };
        let Ok(snapshot) = StateDoc::from_bytes(&bytes) else { return Ok(None) };
        let digest = fsio::digest(&bytes);
        if let Some(old) = self.read_journal()? {
            let mut replayed = snapshot.clone();
            if let Replay::Applied { entries } = journal::replay(&mut replayed, &digest, &old, &self.journal_path())? {
                if entries > 0 {
                    return Ok(None);
                }
            }
        }
        let mut expected = snapshot.clone();
        expected.apply(entry);
        expected.serial = doc.serial;
        if &expected != doc {
            return Ok(None);
        }
        Ok(Some(Header {
            base_serial: snapshot.serial,
            lineage: snapshot.lineage,
            base_digest: Some(digest),
            serial: Some(doc.serial),
        }))
    }

    fn write_locked(&self, inner: &mut Inner, doc: &StateDoc) -> Result<(), StateError> {
        self.check_path()?;
        if let Some(expected) = &inner.seen {
            let current = self.read_snapshot()?.map(|b| fsio::digest(&b));
            if &current != expected {
                return Err(StateError::Conflict {
                    location: self.location(),
                    message: format!("the file's content is not the one read at serial {}", doc.serial.saturating_sub(1)),
                });
            }
            if self.journal_len()? != inner.seen_journal {
                return Err(StateError::Conflict {
                    location: self.journal_path().display().to_string(),
                    message: "another run appended changes to the journal since this one read the state".into(),
                });
            }
        }
        let bytes = doc.to_bytes();
        let journal_path = self.journal_path();
        // Close our journal first; its entries are all in `doc`.
        inner.journal = None;
        if !inner.backup_done {
            match fs::read(&self.path) {
                Ok(old) => fsio::atomic_write(&self.backup_path(), &old)
                    .map_err(|e| self.write_error(&e, &self.backup_path()))?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.read_error(&e, &self.path)),
            }
            inner.backup_done = true;
        }
        // A journal normally goes stale by itself once the snapshot changes (its header names
        // the old snapshot's digest). Only if the new bytes equal its base would a crash right
        // after the rename let it be replayed onto them, so then it goes first.
        let journal_bytes = self.read_journal()?;
        let base_equal = journal_bytes
            .as_deref()
            .and_then(|b| journal::read_header(b, &journal_path).ok().flatten())
            .is_some_and(|h| h.base_digest.as_deref() == Some(fsio::digest(&bytes).as_str()));
        if base_equal {
            self.remove_journal()?;
        }
        fsio::atomic_write(&self.path, &bytes).map_err(|e| self.write_error(&e, &self.path))?;
        inner.seen = Some(Some(fsio::digest(&bytes)));
        inner.seen_journal = 0;
        if journal_bytes.is_some() && !base_equal {
            self.remove_journal()?;
        }
        Ok(())
    }

    /// The journal file's length, 0 when there is none.
    fn journal_len(&self) -> Result<u64, StateError> {
        let path = self.journal_path();
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.read_error(&e, &path)),
        }
    }

    fn remove_journal(&self) -> Result<(), StateError> {
        let path = self.journal_path();
        match fs::remove_file(&path) {
            Ok(()) => fsio::sync_dir(&fsio::parent_dir(&path)).map_err(|e| self.write_error(&e, &path)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.write_error(&e, &path)),
        }
    }

    fn lock_failed(&self, message: String) -> LockError {
        LockError::Failed { location: self.location(), message }
    }
}

impl StateBackend for LocalBackend {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&self) -> Result<Option<StateDoc>, StateError> {
        let Some(bytes) = self.read_snapshot()? else {
            let len = self.journal_len()?;
            let mut inner = self.inner();
            inner.seen = Some(None);
            inner.seen_journal = len;
            return Ok(None);
        };
        let mut doc = self.parse_snapshot(&bytes)?;
        let journal = self.read_journal()?;
        {
            let mut inner = self.inner();
            inner.seen = Some(Some(fsio::digest(&bytes)));
            inner.seen_journal = journal.as_ref().map_or(0, |j| j.len() as u64);
        }
        if let Some(journal) = journal {
            journal::replay(&mut doc, &fsio::digest(&bytes), &journal, &self.journal_path())?;
        }
        Ok(Some(doc))
    }

    fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
        let mut inner = self.inner();
        self.write_locked(&mut inner, doc)
    }

    fn append(&self, doc: &StateDoc, entry: &JournalEntry) -> Result<(), StateError> {
        let mut inner = self.inner();
        let journal_path = self.journal_path();
        if let Some(j) = inner.journal.as_mut() {
            // The open journal produces `doc` as long as the caller keeps the contract (`doc`
            // is the previous document plus `entry`) and the serial and lineage stay.
            if !j.broken && j.header.serial == Some(doc.serial) && j.header.lineage == doc.lineage {
                if !j.still_ours(&journal_path).map_err(|e| self.read_error(&e, &journal_path))? {
                    inner.journal = None;
                    return Err(StateError::Conflict {
                        location: journal_path.display().to_string(),
                        message: "another run wrote the state or its journal since this one appended to it".into(),
                    });
                }
                j.append(entry, self.sync_interval).map_err(|e| self.write_error(&e, &journal_path))?;
                let written = j.written;
                inner.seen_journal = written;
                return Ok(());
            }
        }
        inner.journal = None;
        match self.journal_header(doc, entry)? {
            Some(header) => {
                // Creating the journal replaces the one this backend saw: only if it is still
                // that one (another run may have appended meanwhile).
                if inner.seen.is_some() && self.journal_len()? != inner.seen_journal {
                    return Err(StateError::Conflict {
                        location: journal_path.display().to_string(),
                        message: "another run appended changes to the journal since this one read the state".into(),
                    });
                }
                let j = OpenJournal::create(&journal_path, header, entry)
                    .map_err(|e| self.write_error(&e, &journal_path))?;
                fsio::sync_dir(&fsio::parent_dir(&journal_path)).map_err(|e| self.write_error(&e, &journal_path))?;
                inner.seen_journal = j.written;
                inner.journal = Some(j);
                Ok(())
            }
            None => self.write_locked(&mut inner, doc),
        }
    }

    fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let mut inner = self.inner();
        if let Some(held) = &inner.lock {
            return if held.info.id == info.id { Ok(()) } else { Err(LockError::Held(Box::new(held.info.clone()))) };
        }
        if self.path.file_name().is_none() {
            return Err(self.lock_failed("the state path must name a file, e.g. rosca.state.json".into()));
        }
        inner.lock = Some(oslock::acquire(&self.lock_path(), &self.lock_info_path(), info)?);
        Ok(())
    }

    fn unlock(&self, id: &str) -> Result<(), LockError> {
        let mut inner = self.inner();
        match inner.lock.take() {
            Some(held) if held.info.id == id => {
                oslock::release(held, &self.lock_info_path());
                Ok(())
            }
            other => {
                inner.lock = other;
                Err(LockError::NotHeld { location: self.location(), id: id.to_string() })
            }
        }
    }

    fn lock_holder(&self) -> Result<Option<LockInfo>, LockError> {
        if let Some(held) = &self.inner().lock {
            return Ok(Some(held.info.clone()));
        }
        oslock::probe(&self.lock_path(), &self.lock_info_path(), None)
    }

    fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        if self.inner().lock.as_ref().is_some_and(|h| h.info.id == id) {
            return self.unlock(id);
        }
        let sidecar = self.lock_info_path();
        let actual = oslock::read_info(&sidecar);
        match &actual {
            Some(a) if a.id == id => {}
            Some(a) => {
                return Err(LockError::NotHeld {
                    location: format!("{} (the lock there has ID {})", self.location(), a.id),
                    id: id.to_string(),
                })
            }
            None => {
                return Err(LockError::NotHeld {
                    location: format!("{} (it has no lock info)", self.location()),
                    id: id.to_string(),
                })
            }
        }
        // The sidecar names `id`. If its holder died, the OS lock is already free: remove the
        // sidecar while we hold the lock for an instant, so no new holder's info is removed.
        let remove_if_ours = || {
            if oslock::read_info(&sidecar).is_some_and(|i| i.id == id) {
                let _ = fs::remove_file(&sidecar);
            }
        };
        let holder = oslock::probe(&self.lock_path(), &sidecar, Some(&remove_if_ours))?;
        match holder {
            None => Ok(()),
            Some(h) => Err(self.lock_failed(format!(
                "lock {id} is held by a process that is still running ({} since {}, operation {}); \
                 an OS lock cannot be broken from outside its process: stop that process (the \
                 lock is released when it exits) or wait for it to finish",
                h.who, h.created, h.operation
            ))),
        }
    }

    /// The state files beside this one: `*.state.json` and `*.tfstate`-like names are not
    /// guessed; a local workspace is a file named `<name>.state.json`, listed by `<name>`.
    fn list(&self) -> Result<Vec<String>, StateError> {
        let dir = fsio::parent_dir(&self.path);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.read_error(&e, &dir)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".state.json")).map(str::to_string))
            .filter(|n| !n.is_empty() && !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        let sidecar = self.lock_info_path();
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = inner.journal.as_mut() {
            let _ = j.sync();
        }
        if let Some(held) = inner.lock.take() {
            oslock::release(held, &sidecar);
        }
    }
}
