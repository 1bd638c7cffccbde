//! The on-disk cache of fetched URL imports.
//!
//! Layout: `<dir>/<hex sha256 of url>/content` and `meta.json` (`url`, `sha256` of the content,
//! `fetched_at`). Hashing the URL gives a flat, filesystem-safe key; the content digest lets a
//! reader detect a truncated or tampered entry instead of feeding it to the parser. Both files
//! are written to a temporary name and renamed, so a concurrent reader sees old or new, never a
//! half-written file.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Serialize, Deserialize)]
struct Meta {
    url: String,
    sha256: String,
    fetched_at: u64,
}

/// What a cache lookup found.
pub(crate) enum Lookup {
    Hit(Vec<u8>),
    Miss,
    /// An entry exists but cannot be trusted (digest mismatch, bad meta, too large).
    Invalid(String),
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The directory holding the cache entry of `url`.
pub fn entry_dir(cache: &Path, url: &str) -> PathBuf {
    cache.join(sha256_hex(url.as_bytes()))
}

pub(crate) fn lookup(cache: &Path, url: &str, max_size: usize) -> Lookup {
    let dir = entry_dir(cache, url);
    let meta_bytes = match read_capped(&dir.join("meta.json"), 64 * 1024) {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return Lookup::Invalid("meta.json is too large".into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
        Err(e) => return Lookup::Invalid(format!("cannot read meta.json: {e}")),
    };
    let meta: Meta = match serde_json::from_slice(&meta_bytes) {
        Ok(m) => m,
        Err(e) => return Lookup::Invalid(format!("meta.json is malformed: {e}")),
    };
    if meta.url != url {
        return Lookup::Invalid(format!("entry belongs to another URL ({})", meta.url));
    }
    let content = match read_capped(&dir.join("content"), max_size) {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => return Lookup::Invalid("cached content is larger than the file size limit".into()),
        Err(e) => return Lookup::Invalid(format!("cannot read cached content: {e}")),
    };
    if !sha256_hex(&content).eq_ignore_ascii_case(&meta.sha256) {
        return Lookup::Invalid("cached content does not match its recorded sha256".into());
    }
    Lookup::Hit(content)
}

pub(crate) fn store(cache: &Path, url: &str, content: &[u8]) -> io::Result<()> {
    let dir = entry_dir(cache, url);
    fs::create_dir_all(&dir)?;
    let fetched_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let meta = Meta { url: url.to_string(), sha256: sha256_hex(content), fetched_at };
    let meta_json = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
    // Content first: a reader that sees the new meta with the old content rejects the entry by
    // digest, which is a miss, never a wrong file.
    write_atomic(&dir, "content", content)?;
    write_atomic(&dir, "meta.json", &meta_json)
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a file, but never more than `max` bytes: `Ok(Err(size))` when it is larger (`size` is
/// a lower bound when the file grew while read). The size is checked from metadata first, so a
/// huge file costs one `stat`, and the read is capped anyway because metadata can lie (special
/// files, files growing under us).
pub(crate) fn read_capped(path: &Path, max: usize) -> io::Result<Result<Vec<u8>, u64>> {
    let file = fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::other("it is a directory, not a file"));
    }
    if meta.len() > max as u64 {
        return Ok(Err(meta.len()));
    }
    Ok(read_to_cap(file, max)?.ok_or(max as u64 + 1))
}

pub(crate) fn read_to_cap(reader: impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    reader.take(max as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > max {
        return Ok(None);
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let url = "https://h/x.yaml";
        assert!(matches!(lookup(dir.path(), url, 100), Lookup::Miss));
        store(dir.path(), url, b"a: 1\n").unwrap();
        match lookup(dir.path(), url, 100) {
            Lookup::Hit(c) => assert_eq!(c, b"a: 1\n"),
            _ => panic!("expected a hit"),
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(entry_dir(dir.path(), url).join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["url"], url);
        assert_eq!(meta["sha256"], sha256_hex(b"a: 1\n"));
        assert!(meta["fetched_at"].as_u64().unwrap() > 1_600_000_000);
        assert!(matches!(lookup(dir.path(), url, 3), Lookup::Invalid(_)));
        fs::write(entry_dir(dir.path(), url).join("content"), b"a: 2\n").unwrap();
        assert!(matches!(lookup(dir.path(), url, 100), Lookup::Invalid(_)));
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(entry_dir(dir.path(), url)).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
