//! Reads the `imports:` list of a document, with the repositories it refers to.
//!
//! This is the only TOSCA grammar the loader interprets: it has to, to know which files to read.
//! Everything else in the document is left for the rest of the crate.

use crate::diag::{codes, Diagnostic, Diagnostics};
use crate::source::Span;
use crate::yaml::{Yaml, YamlValue};

/// One import, in whichever of the TOSCA forms it was written.
#[derive(Clone, Debug)]
pub(crate) struct ImportDecl {
    /// The reference to load: the file, already joined onto its repository's URL if any.
    pub reference: String,
    /// Where to report problems with this import: the `file` value.
    pub span: Span,
    pub repository: Option<String>,
    pub namespace_prefix: Option<String>,
    pub namespace_uri: Option<String>,
    /// The name of a TOSCA 1.0 named import (`- name: path`).
    pub name: Option<String>,
}

const LONG_FORM_KEYS: &[&str] = &["file", "repository", "namespace_prefix", "namespace_uri"];

/// The imports of `doc`, in order. Malformed entries are reported and skipped, so one bad import
/// does not hide the others.
pub(crate) fn import_decls(doc: &Yaml, diags: &mut Diagnostics) -> Vec<ImportDecl> {
    let Some(imports) = doc.get("imports") else { return Vec::new() };
    let items = match &imports.value {
        YamlValue::Null => return Vec::new(),
        YamlValue::Seq(items) => items,
        _ => {
            diags.report(
                &codes::BAD_IMPORT,
                imports.span,
                format!("`imports` must be a list, found {}", imports.kind_name()),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items.iter() {
        if let Some(decl) = import_decl(doc, item, diags) {
            out.push(decl);
        }
    }
    out
}

fn import_decl(doc: &Yaml, item: &Yaml, diags: &mut Diagnostics) -> Option<ImportDecl> {
    match &item.value {
        YamlValue::Str(_) => plain(item, None, diags),
        YamlValue::Map(entries) => {
            let has_file = entries.iter().any(|(k, _)| k.as_str() == Some("file"));
            if has_file {
                long_form(doc, item, None, diags)
            } else if let [(key, value)] = &entries[..] {
                // TOSCA 1.0 named form: `- name: path` or `- name: {file: ...}`.
                let name = key.scalar_text();
                if key.as_str().is_some_and(|k| LONG_FORM_KEYS.contains(&k)) {
                    diags.report(&codes::BAD_IMPORT, item.span, "import definition has no `file`");
                    return None;
                }
                match &value.value {
                    YamlValue::Str(_) => plain(value, name, diags),
                    YamlValue::Map(_) => long_form(doc, value, name, diags),
                    _ => {
                        diags.report(
                            &codes::BAD_IMPORT,
                            value.span,
                            format!(
                                "named import `{}` must be a path or a mapping with `file`, found {}",
                                name.unwrap_or_default(),
                                value.kind_name()
                            ),
                        );
                        None
                    }
                }
            } else {
                diags.report(&codes::BAD_IMPORT, item.span, "import definition has no `file`");
                None
            }
        }
        _ => {
            diags.report(
                &codes::BAD_IMPORT,
                item.span,
                format!("an import must be a path or a mapping, found {}", item.kind_name()),
            );
            None
        }
    }
}

fn plain(value: &Yaml, name: Option<String>, diags: &mut Diagnostics) -> Option<ImportDecl> {
    let file = value.as_str().unwrap_or_default();
    if file.trim().is_empty() {
        diags.report(&codes::BAD_IMPORT, value.span, "import names an empty file");
        return None;
    }
    Some(ImportDecl {
        reference: file.to_string(),
        span: value.span,
        repository: None,
        namespace_prefix: None,
        namespace_uri: None,
        name,
    })
}

fn long_form(doc: &Yaml, map: &Yaml, name: Option<String>, diags: &mut Diagnostics) -> Option<ImportDecl> {
    let mut file: Option<&Yaml> = None;
    let mut repository: Option<&Yaml> = None;
    let mut prefix = None;
    let mut uri = None;
    let mut ok = true;
    for (k, v) in map.as_map().unwrap_or_default() {
        let key = k.as_str().unwrap_or_default();
        match key {
            "file" => file = Some(v),
            "repository" => repository = (!v.is_null()).then_some(v),
            "namespace_prefix" | "namespace_uri" => {
                if v.is_null() {
                    continue;
                }
                let Some(s) = v.scalar_text().filter(|_| v.as_seq().is_none() && v.as_map().is_none()) else {
                    diags.report(&codes::BAD_IMPORT, v.span, format!("`{key}` must be a string, found {}", v.kind_name()));
                    ok = false;
                    continue;
                };
                if key == "namespace_prefix" {
                    prefix = Some(s);
                } else {
                    uri = Some(s);
                }
            }
            _ => diags.report(
                &codes::UNKNOWN_KEY,
                k.span,
                format!(
                    "unknown key `{}` in import definition (expected file, repository, namespace_prefix, namespace_uri)",
                    k.scalar_text().unwrap_or_default()
                ),
            ),
        }
    }
    let Some(file) = file else {
        diags.report(&codes::BAD_IMPORT, map.span, "import definition has no `file`");
        return None;
    };
    let Some(file_text) = file.as_str().filter(|s| !s.trim().is_empty()) else {
        let what = if file.as_str().is_some() { "an empty string".to_string() } else { file.kind_name().to_string() };
        diags.report(&codes::BAD_IMPORT, file.span, format!("`file` must be a path or URL, found {what}"));
        return None;
    };
    let mut reference = file_text.to_string();
    let mut repo_name = None;
    if let Some(repo) = repository {
        let Some(rname) = repo.as_str() else {
            diags.report(
                &codes::BAD_IMPORT,
                repo.span,
                format!("`repository` must be a repository name, found {}", repo.kind_name()),
            );
            return None;
        };
        match repository_url(doc, rname) {
            RepoLookup::Found(url) => reference = super::location::join_repository(&url, file_text),
            RepoLookup::Missing => {
                let defined: Vec<String> = doc
                    .get("repositories")
                    .and_then(Yaml::as_map)
                    .map(|m| m.iter().filter_map(|(k, _)| k.scalar_text()).collect())
                    .unwrap_or_default();
                let known = if defined.is_empty() {
                    "this file defines no repositories".to_string()
                } else {
                    format!("defined here: {}", defined.join(", "))
                };
                diags.report(
                    &codes::UNKNOWN_REPOSITORY,
                    repo.span,
                    format!("repository `{rname}` is not defined ({known})"),
                );
                return None;
            }
            RepoLookup::Malformed(def_span, why) => {
                diags.push(
                    Diagnostic::new(
                        &codes::BAD_IMPORT,
                        repo.span,
                        format!("repository `{rname}` cannot be used: {why}"),
                    )
                    .help("define the repository as `name: URL` or `name: {url: URL}`")
                    .related(def_span, "the repository is defined here"),
                );
                return None;
            }
        }
        repo_name = Some(rname.to_string());
    }
    if !ok {
        return None;
    }
    Some(ImportDecl {
        reference,
        span: file.span,
        repository: repo_name,
        namespace_prefix: prefix,
        namespace_uri: uri,
        name,
    })
}

enum RepoLookup {
    Found(String),
    Missing,
    Malformed(Span, String),
}

/// Repositories are looked up in the importing document only: TOSCA scopes them to the file
/// that defines them.
fn repository_url(doc: &Yaml, name: &str) -> RepoLookup {
    let Some(def) = doc.get("repositories").and_then(|r| r.get(name)) else { return RepoLookup::Missing };
    let url = match &def.value {
        YamlValue::Str(s) => Some(s.as_str()),
        YamlValue::Map(_) => match def.get("url") {
            Some(u) => match u.as_str() {
                Some(s) => Some(s),
                None => {
                    return RepoLookup::Malformed(
                        u.span,
                        format!("its `url` must be a string, found {}", u.kind_name()),
                    )
                }
            },
            None => return RepoLookup::Malformed(def.span, "it has no `url`".into()),
        },
        _ => None,
    };
    match url {
        Some(s) if !s.trim().is_empty() => RepoLookup::Found(s.trim().to_string()),
        Some(_) => RepoLookup::Malformed(def.span, "its URL is empty".into()),
        None => RepoLookup::Malformed(
            def.span,
            format!("it must be a URL or a mapping with `url`, found {}", def.kind_name()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;
    use crate::yaml::{parse, Limits};

    fn decls(text: &str) -> (Vec<ImportDecl>, Diagnostics) {
        let doc = parse(FileId(0), text, &Limits::default()).unwrap();
        let mut d = Diagnostics::new();
        (import_decls(&doc, &mut d), d)
    }

    #[test]
    fn all_forms() {
        let (v, d) = decls(
            "repositories:\n  r1: https://h/types\n  r2: {url: 'https://h2/x/', description: d}\nimports:\n  - a.yaml\n  - file: b.yaml\n    namespace_prefix: p\n    namespace_uri: http://ns\n  - n1: c.yaml\n  - n2: {file: d.yaml, repository: r2}\n  - file: e.yaml\n    repository: r1\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let refs: Vec<&str> = v.iter().map(|d| d.reference.as_str()).collect();
        assert_eq!(refs, ["a.yaml", "b.yaml", "c.yaml", "https://h2/x/d.yaml", "https://h/types/e.yaml"]);
        assert_eq!(v[1].namespace_prefix.as_deref(), Some("p"));
        assert_eq!(v[1].namespace_uri.as_deref(), Some("http://ns"));
        assert_eq!(v[2].name.as_deref(), Some("n1"));
        assert_eq!(v[3].name.as_deref(), Some("n2"));
        assert_eq!(v[4].repository.as_deref(), Some("r1"));
        assert_eq!((v[0].span.line, v[0].span.col), (5, 5));
    }

    #[test]
    fn malformed_imports_are_reported_and_skipped() {
        let (v, d) = decls("imports:\n  - 42\n  - {file: a.yaml, colour: red}\n  - {repository: r}\n  - {file: b.yaml, repository: nope}\n  - {a: x, b: y}\n  - ''\n");
        assert_eq!(v.len(), 1);
        let codes: Vec<(&str, u32)> = d.iter().map(|d| (d.code, d.span.line)).collect();
        assert_eq!(codes, [("E0014", 2), ("E0102", 3), ("E0014", 4), ("E0015", 5), ("E0014", 6), ("E0014", 7)]);
        let (_, d) = decls("imports: a.yaml\n");
        assert_eq!(d.iter().next().map(|d| d.code), Some("E0014"));
    }

    #[test]
    fn repository_without_url() {
        let (v, d) = decls("repositories:\n  r: {description: x}\nimports:\n  - {file: a.yaml, repository: r}\n");
        assert!(v.is_empty());
        let e = d.iter().next().unwrap();
        assert_eq!((e.code, e.span.line, e.related.len()), ("E0014", 4, 1));
    }
}
