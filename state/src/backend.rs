//! The backend trait every state store implements (the local file, PostgreSQL, etcd, S3, HTTP,
//! and encryption around any of them), and the lock record they share.

use crate::doc::{JournalEntry, StateDoc};
use serde::{Deserialize, Serialize};

/// Who holds a state lock and why (the fields of Terraform's LockInfo, same JSON names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    #[serde(rename = "ID")]
    pub id: String,
    /// `plan`, `apply`, `destroy`, `refresh`, `state-push`, ...
    #[serde(rename = "Operation")]
    pub operation: String,
    #[serde(rename = "Info", default)]
    pub info: String,
    /// `user@host`.
    #[serde(rename = "Who")]
    pub who: String,
    #[serde(rename = "Version")]
    pub version: String,
    /// RFC 3339.
    #[serde(rename = "Created")]
    pub created: String,
    /// The state's location (file path, URL, key).
    #[serde(rename = "Path")]
    pub path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state at {location}: {message}")]
    Read { location: String, message: String },
    #[error("cannot write state at {location}: {message}")]
    Write { location: String, message: String },
    #[error("state at {location} is not valid: {message}")]
    Corrupt { location: String, message: String },
    /// The stored state changed since this backend last read or wrote it (another writer got
    /// in, e.g. after its lock expired): writing would lose that update.
    #[error("state at {location} was changed by another writer since it was read ({message}); nothing was written: run the command again to start from the current state")]
    Conflict { location: String, message: String },
    #[error("{0}")]
    Lock(#[from] LockError),
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Somebody else holds the lock.
    #[error("the state is locked by another operation (lock ID {})", .0.id)]
    Held(Box<LockInfo>),
    #[error("cannot lock the state at {location}: {message}")]
    Failed { location: String, message: String },
    #[error("no lock with ID {id} is held on {location}")]
    NotHeld { location: String, id: String },
}

/// A place where one state document lives, with a lock around read-modify-write cycles.
///
/// Synchronous on purpose: callers on an async runtime run it on a blocking thread (the applier
/// funnels all writes through one writer thread), and each backend picks its own client.
pub trait StateBackend: Send + Sync {
    /// Where the state lives, for messages and `LockInfo::path`.
    fn location(&self) -> String;

    /// The current document (a journal left by an interrupted run is replayed), or `None` when
    /// no state exists yet.
    fn read(&self) -> Result<Option<StateDoc>, StateError>;

    /// Replaces the whole document atomically (and keeps the previous one as a backup where the
    /// backend can). Any journal is folded in: after `write`, `read` returns exactly `doc`.
    ///
    /// Compare-and-swap: once this backend has read or written the state, `write` refuses with
    /// `StateError::Conflict` when the stored document is no longer the one it read or wrote
    /// last, so a writer whose lock was taken over never overwrites the newer state.
    fn write(&self, doc: &StateDoc) -> Result<(), StateError>;

    /// Persists one change cheaply. `doc` is the state after `entry` (the previous `doc` plus
    /// `entry`, as `StateWriter` calls it). Once it returns, a crash loses nothing: `read` (from
    /// any handle) returns the document with the entry applied. Compare-and-swap as for
    /// `write`: refused with `StateError::Conflict` once another writer changed the state.
    ///
    /// The local file, PostgreSQL, etcd and S3 backends journal the entry (after one full
    /// write per run, or a check that the stored state plus the entry is `doc`), and `write`
    /// folds the journal in. The default, kept by the HTTP and encrypted backends, is a full
    /// `write` (correct, but O(state size) per change).
    fn append(&self, doc: &StateDoc, entry: &JournalEntry) -> Result<(), StateError> {
        let _ = entry;
        self.write(doc)
    }

    /// Takes the lock, or fails at once with `LockError::Held` naming the holder.
    fn lock(&self, info: &LockInfo) -> Result<(), LockError>;

    /// Releases the lock this process took with `id`.
    fn unlock(&self, id: &str) -> Result<(), LockError>;

    /// Who holds the lock now, if anyone.
    fn lock_holder(&self) -> Result<Option<LockInfo>, LockError>;

    /// Breaks a lock held by someone else, if its ID is `id`.
    fn force_unlock(&self, id: &str) -> Result<(), LockError>;

    /// The names of the states this backend's store holds (workspaces, deployments).
    fn list(&self) -> Result<Vec<String>, StateError>;
}
