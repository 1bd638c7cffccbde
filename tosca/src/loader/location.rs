//! Where a file lives, and how a reference written in an import turns into another location.
//!
//! Resolution is purely lexical here; whether the target exists is decided when it is read.

use crate::diag::codes::{self, Code};
use std::path::{Component, Path, PathBuf};
use url::Url;

/// Why a reference cannot be resolved: the diagnostic code to use and the message.
pub(crate) type ResolveError = (&'static Code, String);

/// The place a loaded file came from. Relative imports inside it resolve against this.
#[derive(Clone, Debug)]
pub(crate) enum Location {
    /// A file on disk, by the path as the user wrote it joined through the import chain, so
    /// messages show familiar relative paths (identity uses the canonical path, elsewhere).
    Local { path: PathBuf },
    /// Text handed over directly (stdin): relative imports resolve against the working directory.
    Text,
    /// A file inside a zip CSAR: `archive` indexes the loader's open archives, `path` is the
    /// normalized '/'-separated path inside it.
    Archive { archive: usize, path: String },
    /// A URL import. Relative imports inside it are URL-joined, so a mapped or cached copy still
    /// resolves its own imports the way the published file would.
    Url(Url),
}

/// A resolved import target, before it is read.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Local(PathBuf),
    Archive { archive: usize, path: String },
    Url(Url),
}

/// True for references that carry a scheme (`https://...`, `file:///...`). A Windows drive
/// letter (`C:\x`) has no `//` and stays a path.
pub(crate) fn looks_like_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else { return false };
    rest.starts_with("//")
        && scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Parses an absolute URL reference into a target. `file:` URLs become local paths because
/// that is what a user means by them; other schemes than http(s) cannot be loaded.
pub(crate) fn url_target(s: &str) -> Result<Target, ResolveError> {
    let url = Url::parse(s).map_err(|e| (&codes::BAD_IMPORT, format!("`{s}` is not a valid URL: {e}")))?;
    classify_url(url)
}

fn classify_url(mut url: Url) -> Result<Target, ResolveError> {
    url.set_fragment(None);
    match url.scheme() {
        "http" | "https" => Ok(Target::Url(url)),
        "file" => url
            .to_file_path()
            .map(Target::Local)
            .map_err(|()| (&codes::BAD_IMPORT, format!("`{url}` is not a local file URL"))),
        other => Err((&codes::BAD_IMPORT, format!("URL scheme `{other}:` is not supported in imports (use https://)"))),
    }
}

/// Resolves `reference` (an import's file, already combined with its repository) against the
/// location of the importing file.
pub(crate) fn resolve(base: &Location, reference: &str) -> Result<Target, ResolveError> {
    if reference.is_empty() {
        return Err((&codes::BAD_IMPORT, "the import names an empty file".into()));
    }
    if reference.contains('\0') {
        return Err((&codes::BAD_IMPORT, "the import's file contains a NUL character".into()));
    }
    if looks_like_url(reference) {
        return url_target(reference);
    }
    match base {
        Location::Local { path } => {
            let dir = path.parent().unwrap_or(Path::new(""));
            Ok(Target::Local(dir.join(reference)))
        }
        Location::Text => Ok(Target::Local(PathBuf::from(reference))),
        Location::Archive { archive, path } => {
            if reference.starts_with('/') || reference.starts_with('\\') || has_drive(reference) {
                return Err((
                    &codes::IMPORT_NOT_FOUND,
                    format!(
                        "`{reference}` is an absolute path; imports inside a CSAR are relative to the importing file"
                    ),
                ));
            }
            let dir = match path.rfind('/') {
                Some(i) => &path[..i],
                None => "",
            };
            let joined = if dir.is_empty() { reference.to_string() } else { format!("{dir}/{reference}") };
            match normalize_archive_path(&joined) {
                Some(p) if !p.is_empty() => Ok(Target::Archive { archive: *archive, path: p }),
                _ => Err((&codes::IMPORT_NOT_FOUND, format!("`{reference}` points outside the CSAR archive"))),
            }
        }
        Location::Url(url) => {
            let joined = url
                .join(reference)
                .map_err(|e| (&codes::BAD_IMPORT, format!("cannot join `{reference}` to `{url}`: {e}")))?;
            classify_url(joined)
        }
    }
}

/// Joins an import's file onto its repository URL. Repository URLs usually name a directory
/// without a trailing slash (`https://host/types`), and users expect `types/file.yaml`, not the
/// RFC 3986 result that would drop the last segment, so a slash is added first.
pub(crate) fn join_repository(repo_url: &str, file: &str) -> String {
    if looks_like_url(file) {
        return file.to_string();
    }
    let file = file.trim_start_matches("./");
    if looks_like_url(repo_url) {
        let base = if repo_url.ends_with('/') { repo_url.to_string() } else { format!("{repo_url}/") };
        match Url::parse(&base).and_then(|u| u.join(file)) {
            Ok(u) => u.to_string(),
            Err(_) => format!("{base}{file}"),
        }
    } else if repo_url.is_empty() {
        file.to_string()
    } else {
        format!("{}/{}", repo_url.trim_end_matches(['/', '\\']), file.trim_start_matches(['/', '\\']))
    }
}

fn has_drive(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Normalizes a path inside an archive: '/'-separated, no `.` or empty segments. `None` when
/// `..` would climb above the archive root, which is how a zip slip starts.
pub(crate) fn normalize_archive_path(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    Some(out.join("/"))
}

/// True when a zip entry name is unsafe: absolute, drive-qualified, or with a `..` segment.
/// Such names never appear in archives made by honest tools.
pub(crate) fn is_unsafe_entry_name(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with('\\')
        || has_drive(name)
        || name.contains('\0')
        || name.split(['/', '\\']).any(|s| s == "..")
}

/// Lexical normalization for display: `a/./b/../c` becomes `a/c`. Leading `..` are kept.
pub(crate) fn normalize_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    let mut normal = 0usize;
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if normal > 0 {
                    out.pop();
                    normal -= 1;
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            Component::Normal(s) => {
                out.push(s);
                normal += 1;
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `http://` is allowed only to this machine, so that tests can use a local server while real
/// imports always travel over TLS.
pub(crate) fn is_insecure_remote(url: &Url) -> bool {
    url.scheme() == "http" && !is_loopback(url)
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_detection() {
        assert!(looks_like_url("https://x/y.yaml"));
        assert!(looks_like_url("file:///tmp/a.yaml"));
        assert!(!looks_like_url("C:\\x\\y.yaml"));
        assert!(!looks_like_url("types/a.yaml"));
        assert!(!looks_like_url("a:b"));
    }

    #[test]
    fn archive_paths() {
        assert_eq!(normalize_archive_path("a/./b/../c.yaml").as_deref(), Some("a/c.yaml"));
        assert_eq!(normalize_archive_path("../c.yaml"), None);
        assert!(is_unsafe_entry_name("../evil"));
        assert!(is_unsafe_entry_name("/etc/passwd"));
        assert!(is_unsafe_entry_name("a/../../b"));
        assert!(!is_unsafe_entry_name("a/b..c/d"));
        let base = Location::Archive { archive: 0, path: "Definitions/main.yaml".into() };
        match resolve(&base, "../types/t.yaml") {
            Ok(Target::Archive { path, .. }) => assert_eq!(path, "types/t.yaml"),
            other => panic!("{other:?}"),
        }
        assert!(resolve(&base, "../../t.yaml").is_err());
        assert!(resolve(&base, "/t.yaml").is_err());
    }

    #[test]
    fn url_joins() {
        let base = Location::Url(Url::parse("https://h/a/b/main.yaml").unwrap());
        match resolve(&base, "../t.yaml") {
            Ok(Target::Url(u)) => assert_eq!(u.as_str(), "https://h/a/t.yaml"),
            other => panic!("{other:?}"),
        }
        assert!(resolve(&base, "ftp://h/x").is_err());
        assert_eq!(join_repository("https://h/types", "custom.yaml"), "https://h/types/custom.yaml");
        assert_eq!(join_repository("https://h/types/", "./custom.yaml"), "https://h/types/custom.yaml");
        assert_eq!(join_repository("libs", "t.yaml"), "libs/t.yaml");
    }

    #[test]
    fn loopback_only_for_http() {
        for ok in ["http://127.0.0.1:8/x", "http://localhost/x", "http://[::1]/x", "https://example.org/x"] {
            assert!(!is_insecure_remote(&Url::parse(ok).unwrap()), "{ok}");
        }
        assert!(is_insecure_remote(&Url::parse("http://example.org/x").unwrap()));
    }

    #[test]
    fn display_normalization() {
        assert_eq!(normalize_path(Path::new("a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(normalize_path(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(normalize_path(Path::new("/../x")), PathBuf::from("/x"));
    }
}
