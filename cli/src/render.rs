//! Rendering diagnostics: human (miette, with source snippets) and JSON.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, MietteError, MietteSpanContents, Report, SourceCode, SourceSpan, SpanContents};
use std::collections::HashMap;
use std::sync::Arc;
use std::io::IsTerminal;
use tosca::diag::{codes, Diagnostic};
use tosca::{Severity, Sources};

pub fn use_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let e = diags.iter().filter(|d| d.is_error()).count();
    (e, diags.len() - e)
}

/// Each diagnostic with `file:line:col`, its code, message, a snippet and the help line.
pub fn human(sources: &Sources, diags: &[Diagnostic], color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1).with_width(100);
    let mut out = String::new();
    let mut indexed: HashMap<tosca::FileId, IndexedSource> = HashMap::new();
    for d in diags {
        let mut m = MietteDiagnostic::new(d.message.clone()).with_code(d.code).with_severity(match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        });
        if let Some(h) = &d.help {
            m = m.with_help(h.clone());
        }
        let file = sources.get(d.span.file);
        if let (Some(file), false) = (file, d.span.is_none()) {
            let mut labels = vec![LabeledSpan::at(d.span.offset as usize..(d.span.offset + d.span.len.max(1)) as usize, "here")];
            for r in d.related.iter().filter(|r| r.span.file == d.span.file) {
                labels.push(LabeledSpan::at(r.span.offset as usize..(r.span.offset + r.span.len.max(1)) as usize, r.message.clone()));
            }
            m = m.with_labels(labels);
            let source = indexed.entry(d.span.file).or_insert_with(|| IndexedSource::new(&file.name, file.text.clone())).clone();
            let report = Report::new(m).with_source_code(source);
            if handler.render_report(&mut out, report.as_ref()).is_err() {
                out.push_str(&format!("{}:{}:{}: {}\n", file.name, d.span.line, d.span.col, d.message));
            }
            for r in d.related.iter().filter(|r| r.span.file != d.span.file && !r.span.is_none()) {
                out.push_str(&format!("  note: {} at {}:{}:{}\n", r.message, sources.name(r.span.file), r.span.line, r.span.col));
            }
        } else {
            let report = Report::new(m);
            let _ = handler.render_report(&mut out, report.as_ref());
        }
        out.push('\n');
    }
    out
}

/// A file's text with its line starts computed once, so that rendering each diagnostic costs
/// the size of its snippet, not of the file (miette's `str` source scans from the start).
#[derive(Clone)]
struct IndexedSource {
    name: Arc<str>,
    text: Arc<str>,
    line_starts: Arc<Vec<usize>>,
}

impl IndexedSource {
    fn new(name: &str, text: Arc<str>) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        IndexedSource { name: name.into(), text, line_starts: Arc::new(line_starts) }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }
}

impl SourceCode for IndexedSource {
    fn read_span<'a>(&'a self, span: &SourceSpan, before: usize, after: usize) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let len = self.text.len();
        let start = span.offset();
        let end = start.saturating_add(span.len());
        if start > len || end > len {
            return Err(MietteError::OutOfBounds);
        }
        if before == 0 && after == 0 {
            // miette reads the bare span to print `file:line:col`: give the span's own position.
            let line = self.line_of(start);
            let column = self.text.get(self.line_starts[line]..start).map_or(0, |t| t.chars().count());
            return Ok(Box::new(MietteSpanContents::new_named(self.name.to_string(), &self.text.as_bytes()[start..end], *span, line, column, 1)));
        }
        let first = self.line_of(start).saturating_sub(before);
        let last = (self.line_of(end.saturating_sub(1).max(start)) + after).min(self.line_starts.len() - 1);
        let from = self.line_starts[first];
        let to = self.line_starts.get(last + 1).copied().unwrap_or(len);
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            &self.text.as_bytes()[from..to],
            (from, to - from).into(),
            first,
            0,
            last - first + 1,
        )))
    }
}

pub fn json(sources: &Sources, diags: &[Diagnostic], valid: bool) -> serde_json::Value {
    let (e, w) = counts(diags);
    serde_json::json!({
        "valid": valid,
        "error_count": e,
        "warning_count": w,
        "diagnostics": diags.iter().map(|d| d.to_json(sources)).collect::<Vec<_>>(),
    })
}

pub fn codes_markdown() -> String {
    let mut s = String::from("# Diagnostic codes\n\nGenerated by `rosca codes`. Codes are stable: never renumbered or reused.\n\n| code | severity | meaning | what to do |\n|---|---|---|---|\n");
    for c in codes::ALL {
        let sev = match c.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        s.push_str(&format!("| {} | {} | {} | {} |\n", c.id, sev, c.title, c.help));
    }
    s
}
