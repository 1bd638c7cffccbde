//! CSAR archives: zip files (or directories) holding a service template and its imports.
//!
//! Zip archives are never extracted. Entries are read into memory on demand, each capped at the
//! file size limit, so a zip bomb costs at most one capped read, and an entry name cannot
//! escape anywhere because nothing is written to disk; names that try (`..`, absolute paths) make
//! the whole archive suspect and it is rejected.

use super::cache::read_to_cap;
use super::location::{is_unsafe_entry_name, normalize_archive_path};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;
use zip::ZipArchive;

pub(crate) const META_PATH: &str = "TOSCA-Metadata/TOSCA.meta";

/// An open zip CSAR.
pub(crate) struct Archive {
    /// The archive path as given, used in file names (`archive.csar!/path`).
    pub display: String,
    /// The canonical archive path, used in locations and as identity.
    pub canonical: String,
    zip: ZipArchive<File>,
    /// Normalized entry path -> index, files only.
    entries: HashMap<String, usize>,
}

pub(crate) enum EntryError {
    NotFound,
    TooLarge(u64),
    Other(String),
}

impl Archive {
    /// Opens and vets an archive. The error is a message for a CSAR diagnostic.
    pub fn open(path: &Path, max_entries: usize, max_archive_size: u64) -> Result<Archive, String> {
        let display = path.display().to_string();
        let file = File::open(path).map_err(|e| format!("cannot open {display}: {e}"))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > max_archive_size {
            return Err(format!("{display} is {len} bytes, above the archive size limit of {max_archive_size} bytes"));
        }
        let canonical = path.canonicalize().map(|p| p.display().to_string()).unwrap_or_else(|_| display.clone());
        let zip = guard(|| ZipArchive::new(file))
            .ok_or_else(|| format!("{display} is not a valid zip archive (the zip reader failed on it)"))?
            .map_err(|e| format!("{display} is not a valid zip archive: {e}"))?;
        if zip.len() > max_entries {
            return Err(format!("{display} has {} entries, more than the limit of {max_entries}", zip.len()));
        }
        let mut entries = HashMap::new();
        let mut unsafe_names = Vec::new();
        for i in 0..zip.len() {
            let Some(name) = zip.name_for_index(i) else { continue };
            if is_unsafe_entry_name(name) {
                unsafe_names.push(format!("`{}`", name.escape_debug()));
                continue;
            }
            if name.ends_with('/') || name.ends_with('\\') {
                continue;
            }
            if let Some(norm) = normalize_archive_path(name).filter(|n| !n.is_empty()) {
                entries.entry(norm).or_insert(i);
            }
        }
        if !unsafe_names.is_empty() {
            let shown: Vec<_> = unsafe_names.iter().take(5).cloned().collect();
            let more =
                if unsafe_names.len() > 5 { format!(" and {} more", unsafe_names.len() - 5) } else { String::new() };
            return Err(format!(
                "{display} contains entries with absolute paths or `..` that would escape the archive: {}{more}; refusing to read it",
                shown.join(", ")
            ));
        }
        Ok(Archive { display, canonical, zip, entries })
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// YAML files at the archive root: the candidates for the entry definitions of a CSAR
    /// without TOSCA.meta.
    pub fn root_yaml_files(&self) -> Vec<String> {
        let mut v: Vec<String> = self.entries.keys().filter(|k| !k.contains('/') && is_yaml_name(k)).cloned().collect();
        v.sort();
        v
    }

    pub fn read(&mut self, path: &str, max: usize) -> Result<Vec<u8>, EntryError> {
        let Some(&index) = self.entries.get(path) else { return Err(EntryError::NotFound) };
        let zip = &mut self.zip;
        guard(|| Self::read_entry(zip, index, max))
            .unwrap_or_else(|| Err(EntryError::Other("the zip reader failed on this entry".into())))
    }

    fn read_entry(zip: &mut ZipArchive<File>, index: usize, max: usize) -> Result<Vec<u8>, EntryError> {
        let entry = zip.by_index(index).map_err(|e| EntryError::Other(e.to_string()))?;
        if entry.encrypted() {
            return Err(EntryError::Other("the entry is encrypted".into()));
        }
        // The header's size can lie; it is only an early exit, the read below is capped too.
        if entry.size() > max as u64 {
            return Err(EntryError::TooLarge(entry.size()));
        }
        match read_to_cap(entry, max) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(EntryError::TooLarge(max as u64 + 1)),
            Err(e) => Err(EntryError::Other(e.to_string())),
        }
    }

    pub fn name_of(&self, path: &str) -> String {
        format!("{}!/{}", self.display, path)
    }

    pub fn location_of(&self, path: &str) -> String {
        format!("{}!/{}", self.canonical, path)
    }
}

/// Runs third-party decoding of hostile bytes so that a bug in it becomes an error for this
/// archive instead of a crash of the whole process.
fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

pub(crate) fn is_yaml_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml")
}

pub(crate) fn is_archive_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip") || e.eq_ignore_ascii_case("csar"))
}

/// True when the file starts like a zip archive, so a CSAR with an unusual extension is still
/// recognized instead of being parsed as YAML.
pub(crate) fn has_zip_magic(path: &Path) -> bool {
    use io::Read;
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"PK\x03\x04"
}

/// One `Key: Value` line of TOSCA.meta.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaEntry {
    pub key: String,
    pub value: String,
    /// 1-based line in TOSCA.meta.
    pub line: u32,
}

/// Parses TOSCA.meta: `Key: Value` lines (a manifest-style block format). Blank lines separate
/// blocks; a line starting with a space continues the previous value. The error is the 1-based
/// line and what is wrong with it.
pub(crate) fn parse_meta(text: &str) -> Result<Vec<MetaEntry>, (u32, String)> {
    let mut out: Vec<MetaEntry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i as u32 + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            match out.last_mut() {
                Some(prev) => {
                    prev.value.push_str(line.trim_start());
                    continue;
                }
                None => return Err((line_no, "continuation line before any `Key: Value` line".into())),
            }
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err((line_no, format!("`{}` is not a `Key: Value` line", line.escape_debug())));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err((line_no, "line has an empty key".into()));
        }
        out.push(MetaEntry { key: key.to_string(), value: value.trim().to_string(), line: line_no });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_parsing() {
        let m = parse_meta("TOSCA-Meta-File-Version: 1.1\r\nCSAR-Version: 1.1\nCreated-By: me\n\nEntry-Definitions: Definitions/\n main.yaml\n").unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[3], MetaEntry { key: "Entry-Definitions".into(), value: "Definitions/main.yaml".into(), line: 5 });
        assert_eq!(parse_meta("CSAR-Version: 1.1\nbogus line\n").unwrap_err().0, 2);
        assert_eq!(parse_meta(" x\n").unwrap_err().0, 1);
    }
}
