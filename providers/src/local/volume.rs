//! BlockStorage as a directory: the size (`properties.size`) parsed from bytes or a scalar-unit
//! string, and the record file that marks the directory as ours and keeps the size.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs;
use std::io;
use std::path::Path;

/// The record file inside a volume directory; its presence marks the directory as ours.
pub(crate) const RECORD: &str = ".rosca-volume.json";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    /// Bytes; absent when the node has no `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// `properties.size` of a node's config: a number of bytes (what the front-end normalizes
/// scalar-units to) or a string such as `"10 GB"`, `"512MiB"`, `"1024"`.
pub(crate) fn size_of(config: &Value) -> Result<Option<u64>, String> {
    match config.pointer("/properties/size") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(b), _) => Ok(Some(b)),
            (None, Some(f)) if f >= 0.0 && f.is_finite() => Ok(Some(f.round() as u64)),
            _ => Err(format!("size {n} is not a number of bytes")),
        },
        Some(Value::String(s)) => parse_size(s).map(Some),
        Some(other) => Err(format!("size must be bytes or a scalar-unit.size string, not {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
        _ => "that",
    }
}

/// A TOSCA scalar-unit.size (`B`, `kB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`, `TB`, `TiB`, units
/// case-insensitive) or a bare number of bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    let bad = || format!("size `{s}` is not a scalar-unit.size (e.g. `10 GB`, `512 MiB`)");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "kib" => 1024.0,
        "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tb" => 1e12,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = (n * mult).round();
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

pub(crate) fn write_record(dir: &Path, rec: &Record) -> io::Result<()> {
    let text = serde_json::to_string_pretty(rec).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{RECORD}.tmp"));
    fs::write(&tmp, text + "\n")?;
    fs::rename(tmp, dir.join(RECORD))
}

/// `None` when the record is missing or unreadable (the directory is not, or no longer, ours).
pub(crate) fn read_record(dir: &Path) -> Option<Record> {
    let text = fs::read(dir.join(RECORD)).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10 GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512mib"), Ok(512 << 20));
        assert_eq!(parse_size("1.5 kB"), Ok(1500));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("ten GB").is_err());
        assert!(parse_size("10 parsecs").is_err());
        assert_eq!(size_of(&json!({"properties": {"size": 2048}})), Ok(Some(2048)));
        assert_eq!(size_of(&json!({"properties": {}})), Ok(None));
        assert!(size_of(&json!({"properties": {"size": true}})).is_err());
    }
}
