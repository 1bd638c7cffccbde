//! File-system helpers of the local backend: sibling paths, atomic replace, directory fsync,
//! error messages that say what to do, and the snapshot digest the journal header names.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` with `suffix` appended to its file name (`s.json` → `s.json.journal`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The hidden sibling `.<file name><suffix>` (like Terraform's `.terraform.tfstate.lock.info`).
pub(crate) fn hidden_sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}{suffix}"))
}

/// `err` on `path` as a sentence that says what to do about it.
pub(crate) fn explain(err: &io::Error, path: &Path) -> String {
    let dir = parent_dir(path);
    match err.kind() {
        ErrorKind::NotFound if !dir.is_dir() => format!(
            "{err}: the directory {} does not exist; create it or choose another state path",
            dir.display()
        ),
        ErrorKind::PermissionDenied => format!(
            "{err}: check that you may read and write {} and its directory {}",
            path.display(),
            dir.display()
        ),
        ErrorKind::ReadOnlyFilesystem => {
            format!("{err}: {} is on a read-only file system; choose another state path", dir.display())
        }
        ErrorKind::StorageFull => format!("{err}: free some space on the disk holding {}", dir.display()),
        _ => err.to_string(),
    }
}

/// Makes the directory entry changes (create, rename, unlink) in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        // Some file systems cannot fsync a directory; nothing more can be done there.
        Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => Ok(()),
        other => other,
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically: a temp file in the same directory (so the rename
/// stays on one file system), fsync, rename, fsync of the directory. Readers see the old or the
/// new file, never a mix; a crash leaves at worst a stray `.<name>.tmp-*` file.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = hidden_sibling(path, &format!(".tmp-{}-{n}", std::process::id()));
    let result = write_temp(path, &tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(&parent_dir(path))
}

fn write_temp(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        // The state holds secrets: a new file is private to its owner.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(tmp)?;
    // A replaced file keeps the permissions its owner gave it.
    if let Ok(meta) = fs::metadata(path) {
        file.set_permissions(meta.permissions())?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// FNV-1a (64 bit) of a snapshot's bytes: the journal header names the exact snapshot it
/// extends, so a journal is never replayed onto a different document that happens to have the
/// same serial. Not a security measure (whoever can write the file can write both).
pub(crate) fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names() {
        let p = Path::new("dir/rosca.state.json");
        assert_eq!(with_suffix(p, ".journal"), Path::new("dir/rosca.state.json.journal"));
        assert_eq!(hidden_sibling(p, ".lock.info"), Path::new("dir/.rosca.state.json.lock.info"));
        assert_eq!(hidden_sibling(Path::new("s.json"), ".x"), Path::new(".s.json.x"));
        assert_eq!(parent_dir(Path::new("s.json")), Path::new("."));
    }

    #[test]
    fn digest_is_fnv1a() {
        assert_eq!(digest(b""), "fnv1a64:cbf29ce484222325");
        assert_eq!(digest(b"a"), "fnv1a64:af63dc4c8601ec8c");
    }
}
