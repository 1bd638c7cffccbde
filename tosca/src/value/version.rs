//! `version` (TOSCA 1.3 §3.3.2): `major.minor[.fix[.qualifier[-build]]]`.
//!
//! major, minor, fix and build are non-negative integers; the qualifier is letters, digits and
//! `_`. Comparison: major, minor, fix numerically (`2.0` equals `2.0.0`, `1.10` is after
//! `1.9`); a version with a qualifier is older than the same version without one; qualifiers are
//! compared as strings (the specification leaves their order to the domain), then builds
//! numerically (no build counts as 0).

use super::Version;
use std::cmp::Ordering;

/// The outcome of reading a version: the version, and whether it was a bare major number
/// (`1`, read as `1.0`), which is accepted with a warning.
pub struct Parsed {
    pub version: Version,
    pub major_only: bool,
}

/// Parses a version; the error is a message fragment.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parts = text.splitn(4, '.');
    let major = number(parts.next().unwrap_or(""), "major")?;
    let Some(minor) = parts.next() else {
        let version = Version { original: text.to_string(), major, minor: 0, fix: 0, qualifier: None, build: None };
        return Ok(Parsed { version, major_only: true });
    };
    let minor = number(minor, "minor")?;
    let fix = match parts.next() {
        Some(f) => number(f, "fix")?,
        None => 0,
    };
    let (qualifier, build) = match parts.next() {
        None => (None, None),
        Some(rest) => {
            let (q, b) = match rest.split_once('-') {
                Some((q, b)) => (q, Some(number(b, "build")?)),
                None => (rest, None),
            };
            if q.is_empty() || !q.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return Err(format!("qualifier `{q}` must be letters, digits and `_`"));
            }
            (Some(q.to_string()), b)
        }
    };
    Ok(Parsed { version: Version { original: text.to_string(), major, minor, fix, qualifier, build }, major_only: false })
}

fn number(s: &str, what: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("the {what} version `{s}` is not a non-negative integer"));
    }
    s.parse().map_err(|_| format!("the {what} version `{s}` is too large"))
}

/// TOSCA version order (see the module documentation).
pub fn compare(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.fix)
        .cmp(&(b.major, b.minor, b.fix))
        .then_with(|| match (&a.qualifier, &b.qualifier) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(y),
        })
        .then_with(|| a.build.unwrap_or(0).cmp(&b.build.unwrap_or(0)))
}
