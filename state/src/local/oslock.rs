//! The local lock: an OS lock (flock via `File::try_lock`) on `<state>.lock`, plus the holder's
//! `LockInfo` in `.<state>.lock.info` for messages. The OS lock is the truth: it dies with its
//! process, so a sidecar left by a dead holder never blocks anyone.
//!
//! The lock is on a separate file, not on the state itself, because every write replaces the
//! state file (rename) and a lock on the old inode would protect nothing. The `.lock` file is
//! never deleted: unlinking it while another process waits on it would let two holders lock two
//! different inodes.

use super::fsio;
use crate::backend::{LockError, LockInfo};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::path::Path;

/// A lock this process holds; dropping the file releases the OS lock.
pub(crate) struct Held {
    pub file: File,
    pub info: LockInfo,
}

/// Takes the lock at once or reports who has it.
pub(crate) fn acquire(lock: &Path, sidecar: &Path, info: &LockInfo) -> Result<Held, LockError> {
    let failed = |message: String| LockError::Failed { location: lock.display().to_string(), message };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .map_err(|e| failed(fsio::explain(&e, lock)))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(LockError::Held(Box::new(holder(lock, sidecar)))),
        Err(TryLockError::Error(e)) => {
            return Err(failed(format!(
                "{e}; the file system may not support locks: use a local disk, or run with \
                 -lock=false if you are sure nobody else uses this state"
            )))
        }
    }
    // We hold the lock: whatever sidecar exists belongs to a dead holder and is overwritten.
    let mut json = serde_json::to_vec(info).map_err(|e| failed(e.to_string()))?;
    json.push(b'\n');
    fsio::atomic_write(sidecar, &json).map_err(|e| failed(fsio::explain(&e, sidecar)))?;
    Ok(Held { file, info: info.clone() })
}

/// Releases `held`, removing its sidecar first (so nobody sees our info once it is free).
pub(crate) fn release(held: Held, sidecar: &Path) {
    if read_info(sidecar).is_some_and(|i| i.id == held.info.id) {
        let _ = fs::remove_file(sidecar);
    }
    let _ = held.file.unlock();
}

/// Whether someone holds the lock: `Ok(None)` if free, else their info. Probing takes the lock
/// for an instant when it is free, and `while_free` runs during that instant (so a cleanup
/// cannot race with a new holder writing its sidecar). Without `while_free`, a missing lock
/// file means "free" and is not created (a read-only look creates nothing).
pub(crate) fn probe(
    lock: &Path,
    sidecar: &Path,
    while_free: Option<&dyn Fn()>,
) -> Result<Option<LockInfo>, LockError> {
    let opened = match while_free {
        None => File::open(lock),
        Some(_) => OpenOptions::new().read(true).write(true).create(true).truncate(false).open(lock),
    };
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound && while_free.is_none() => return Ok(None),
        Err(e) => {
            return Err(LockError::Failed {
                location: lock.display().to_string(),
                message: fsio::explain(&e, lock),
            })
        }
    };
    match file.try_lock() {
        Ok(()) => {
            if let Some(f) = while_free {
                f();
            }
            let _ = file.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(Some(holder(lock, sidecar))),
        Err(TryLockError::Error(e)) => {
            Err(LockError::Failed { location: lock.display().to_string(), message: e.to_string() })
        }
    }
}

/// The sidecar's info, if it exists and parses.
pub(crate) fn read_info(sidecar: &Path) -> Option<LockInfo> {
    fs::read(sidecar).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// The holder of a lock we could not take: its sidecar, or a stand-in when the holder has not
/// written it yet (or it is unreadable), so the caller still gets a message and can retry.
fn holder(lock: &Path, sidecar: &Path) -> LockInfo {
    read_info(sidecar).unwrap_or_else(|| LockInfo {
        id: String::new(),
        operation: "unknown".into(),
        info: format!(
            "{} is locked by a process that has not written {} (yet)",
            lock.display(),
            sidecar.display()
        ),
        who: "unknown".into(),
        version: String::new(),
        created: String::new(),
        path: lock.display().to_string(),
    })
}
