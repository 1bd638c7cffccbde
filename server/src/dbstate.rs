//! A deployment's state document in the store, behind `state::StateBackend`: snapshot row plus
//! journal rows, like the local backend's file and journal. Exclusivity comes from the job
//! lease (one active job per deployment, enforced by the database), so `lock` only records
//! who works on it.

use crate::store::Store;
use state::{JournalEntry, LockError, LockInfo, StateBackend, StateDoc, StateError};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

pub struct DbStateBackend {
    store: Store,
    deployment: String,
    handle: tokio::runtime::Handle,
    /// Next journal sequence number (continues after what is stored).
    seq: AtomicI64,
    /// Whether this run has written its first change (as a full snapshot).
    started: AtomicBool,
    lock: Mutex<Option<LockInfo>>,
}

impl DbStateBackend {
    pub fn new(store: Store, deployment: String, handle: tokio::runtime::Handle) -> DbStateBackend {
        DbStateBackend { store, deployment, handle, seq: AtomicI64::new(0), started: AtomicBool::new(false), lock: Mutex::new(None) }
    }

    /// Runs a store future from synchronous code and waits for it. The future runs as a task
    /// of the server's runtime (whose threads drive the database connections' IO); this
    /// thread only waits. Waiting there with `Handle::block_on` instead deadlocks on
    /// PostgreSQL: the applier calls the backend while holding the state writer's mutex, and
    /// when the runtime's threads all block on that mutex nothing drives the IO the holder
    /// waits for (SQLite's connections have their own threads, so it never showed there).
    fn run<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(f.await);
        });
        let wait = move || rx.recv().expect("the server's runtime stopped during a state operation");
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }

    fn err(&self, message: impl std::fmt::Display) -> StateError {
        StateError::Write { location: self.location(), message: message.to_string() }
    }
}

impl StateBackend for DbStateBackend {
    fn location(&self) -> String {
        format!("deployment {} (server store)", self.deployment)
    }

    fn read(&self) -> Result<Option<StateDoc>, StateError> {
        let (store, id) = (self.store.clone(), self.deployment.clone());
        let (doc, journal) = self.run(async move { store.state(&id).await }).map_err(|e| StateError::Read { location: self.location(), message: e.to_string() })?;
        let Some(text) = doc else {
            if journal.is_empty() {
                return Ok(None);
            }
            return Err(StateError::Corrupt { location: self.location(), message: "a journal without a snapshot".into() });
        };
        let mut doc = StateDoc::from_bytes(text.as_bytes()).map_err(|m| StateError::Corrupt { location: self.location(), message: m })?;
        for (i, line) in journal.iter().enumerate() {
            let entry: JournalEntry = serde_json::from_str(line).map_err(|e| StateError::Corrupt { location: self.location(), message: format!("journal entry {}: {e}", i + 1) })?;
            doc.apply(&entry);
        }
        self.seq.store(journal.len() as i64, Ordering::SeqCst);
        Ok(Some(doc))
    }

    fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
        let text = String::from_utf8(doc.to_bytes()).map_err(|e| self.err(e))?;
        let (store, id) = (self.store.clone(), self.deployment.clone());
        self.run(async move { store.write_state(&id, &text).await }).map_err(|e| self.err(e))?;
        self.seq.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// The first change of a run writes the whole document (which already carries the run's
    /// serial); every later one is a journal row. Replay = snapshot + rows, in order.
    fn append(&self, doc: &StateDoc, entry: &JournalEntry) -> Result<(), StateError> {
        if !self.started.swap(true, Ordering::SeqCst) {
            return self.write(doc);
        }
        let text = serde_json::to_string(entry).map_err(|e| self.err(e))?;
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let (store, id) = (self.store.clone(), self.deployment.clone());
        self.run(async move { store.append_state(&id, seq, &text).await }).map_err(|e| self.err(e))
    }

    fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let mut l = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match &*l {
            Some(held) if held.id != info.id => Err(LockError::Held(Box::new(held.clone()))),
            _ => {
                *l = Some(info.clone());
                Ok(())
            }
        }
    }

    fn unlock(&self, id: &str) -> Result<(), LockError> {
        let mut l = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match &*l {
            Some(held) if held.id == id => {
                *l = None;
                Ok(())
            }
            _ => Err(LockError::NotHeld { location: self.location(), id: id.to_string() }),
        }
    }

    fn lock_holder(&self) -> Result<Option<LockInfo>, LockError> {
        Ok(self.lock.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        self.unlock(id)
    }

    fn list(&self) -> Result<Vec<String>, StateError> {
        let store = self.store.clone();
        self.run(async move { store.state_names().await }).map_err(|e| self.err(e))
    }
}
