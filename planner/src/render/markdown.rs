//! Pull-request Markdown: verdict, destroy warning and summary table first, then one folded
//! `<details>` per changed instance with a ```diff block; split into parts under a size limit
//! with fences and `<details>` closed at the end of a part and re-opened in the next.

use super::attrs::{value_line, Line, Mark};
use super::human::{drift_lines, resource_comments, resource_lines};
use super::text::{action_word, by_type_rows, changed_sorted, clean, fmt_key, plan_line, short_reason, unchanged_count};
use super::MarkdownOptions;
use crate::plan::{Action, Plan, PlanMode, ResourceChange};

/// Renders the plan as one or more Markdown comments, each at most `opts.max_chars` characters
/// (raised to [`MarkdownOptions::MIN_CHARS`]).
pub fn markdown(plan: &Plan, opts: &MarkdownOptions) -> Vec<String> {
    let units = build(plan, opts);
    split(&units, opts.max_chars.max(MarkdownOptions::MIN_CHARS))
}

/// A piece of a comment; `<details>` and fences are structural so the splitter can close and
/// re-open them.
#[derive(Clone, Debug)]
enum Piece {
    Line(String),
    OpenDetails(String),
    CloseDetails,
    OpenFence,
    CloseFence,
}

/// A run of pieces the splitter keeps together when it can (a section, an instance).
type Unit = Vec<Piece>;

/// Longest `<summary>` content kept (so re-opening a `<details>` always fits in a part).
const MAX_SUMMARY: usize = 300;

/// Escapes text for HTML and table cells.
fn html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '`' => o.push_str("&#96;"),
            '|' => o.push_str("&#124;"),
            '*' => o.push_str("&#42;"),
            '_' => o.push_str("&#95;"),
            '[' => o.push_str("&#91;"),
            ']' => o.push_str("&#93;"),
            c => o.push(c),
        }
    }
    o
}

/// `<code>…</code>` with escaped content (brackets are safe inside code).
fn code(s: &str) -> String {
    let mut o = String::from("<code>");
    for c in clean(s).chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '`' => o.push_str("&#96;"),
            '|' => o.push_str("&#124;"),
            c => o.push(c),
        }
    }
    o.push_str("</code>");
    o
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Content of a diff fence: no run of three backticks may close the fence early.
fn fence_safe(s: &str) -> String {
    if !s.contains("```") {
        return s.to_string();
    }
    let mut o = String::with_capacity(s.len() + 8);
    let mut run = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            if run == 3 {
                o.push('\u{200B}');
                run = 1;
            }
        } else {
            run = 0;
        }
        o.push(c);
    }
    o
}

fn diff_mark(m: Mark) -> char {
    match m {
        Mark::Add | Mark::Act(Action::Create) => '+',
        Mark::Remove | Mark::Act(Action::Delete) => '-',
        Mark::Change | Mark::Act(Action::Update | Action::DeleteThenCreate | Action::CreateThenDelete) => '!',
        Mark::Keep | Mark::Act(Action::Read | Action::NoOp) => ' ',
    }
}

fn diff_line(l: &Line) -> Piece {
    let s = format!("{} {}{}", diff_mark(l.mark), "    ".repeat(l.depth), l.text);
    Piece::Line(fence_safe(s.trim_end()))
}

fn details(summary: String, body: Vec<Piece>) -> Unit {
    let mut u = vec![Piece::OpenDetails(truncate_chars(&summary, MAX_SUMMARY)), Piece::OpenFence];
    u.extend(body);
    u.push(Piece::CloseFence);
    u.push(Piece::CloseDetails);
    u
}

fn build(plan: &Plan, opts: &MarkdownOptions) -> Vec<Unit> {
    let mut units = Vec::new();
    let changed = changed_sorted(plan);
    let c = plan.counts();

    // Heading and verdict.
    let mut head = vec![Piece::Line(format!(
        "<!-- rosca-plan add={} change={} destroy={} changes={} -->",
        c.add,
        c.change,
        c.destroy,
        plan.has_changes()
    ))];
    let kind = match plan.mode {
        PlanMode::Normal => "Rosca plan",
        PlanMode::Destroy => "Rosca destroy plan",
        PlanMode::RefreshOnly => "Rosca refresh-only plan",
    };
    let title = if plan.binding.template.is_empty() {
        format!("### {kind}")
    } else {
        format!("### {kind} for {}", code(&truncate_chars(&plan.binding.template, MAX_SUMMARY)))
    };
    head.push(Piece::Line(title));
    head.push(Piece::Line(String::new()));
    let verdict = if plan.has_changes() {
        format!("**{}**", plan_line(plan))
    } else {
        match plan.mode {
            PlanMode::Destroy => "**No changes.** No objects need to be destroyed.".to_string(),
            PlanMode::RefreshOnly if !plan.drift.is_empty() => format!(
                "**No changes.** {} changed outside of Rosca; applying this refresh-only plan records them in the state.",
                objects(plan.drift.len())
            ),
            PlanMode::RefreshOnly => "**No changes.** Your infrastructure still matches the configuration.".to_string(),
            PlanMode::Normal => "**No changes.** Your infrastructure matches the configuration.".to_string(),
        }
    };
    head.push(Piece::Line(verdict));
    head.push(Piece::Line(String::new()));
    units.push(head);

    // Destroy warning.
    let gone: Vec<&&ResourceChange> = changed.iter().filter(|c| c.action.deletes()).collect();
    if !gone.is_empty() {
        let mut u = vec![
            Piece::Line("> [!WARNING]".to_string()),
            Piece::Line(format!(
                "> **{} will be destroyed or replaced:**",
                if gone.len() == 1 { "1 instance".to_string() } else { format!("{} instances", gone.len()) }
            )),
        ];
        for c in gone {
            let reason = short_reason(c).map(|r| format!(": {}", html(&r))).unwrap_or_default();
            u.push(Piece::Line(truncate_chars(
                &format!("> - {} {} ({}){reason}", code(c.action.symbol()), code(&c.address), html(&c.type_name)),
                MAX_SUMMARY * 2,
            )));
        }
        u.push(Piece::Line(String::new()));
        units.push(u);
    }

    // Summary table.
    if !changed.is_empty() {
        let mut u = vec![Piece::Line("| | Action | Type | Count |".to_string()), Piece::Line("|---|---|---|---:|".to_string())];
        for (a, t, n) in by_type_rows(plan) {
            u.push(Piece::Line(format!("| {} | {} | {} | {n} |", code(a.symbol()), action_word(a), code(&t))));
        }
        u.push(Piece::Line(String::new()));
        let unchanged = unchanged_count(plan);
        if unchanged > 0 {
            let s = if unchanged == 1 { "instance is" } else { "instances are" };
            u.push(Piece::Line(format!("_{unchanged} unchanged {s} not shown._")));
            u.push(Piece::Line(String::new()));
        }
        units.push(u);
    }

    // Drift.
    if !plan.drift.is_empty() {
        let mut body = Vec::new();
        for d in &plan.drift {
            let (headline, lines) = drift_lines(plan, d, opts.show_unchanged);
            body.push(Piece::Line(fence_safe(&headline)));
            body.extend(lines.iter().map(diff_line));
        }
        let summary = format!("<b>Note:</b> {} changed outside of Rosca", objects(plan.drift.len()));
        units.push(details(summary, body));
    }

    // One folded diff per changed instance.
    for c in &changed {
        let mut body: Vec<Piece> = resource_comments(c).iter().map(|s| Piece::Line(fence_safe(s))).collect();
        body.extend(resource_lines(c, opts.show_unchanged).iter().map(diff_line));
        let why = short_reason(c).map(|r| format!(" ({})", html(&r))).unwrap_or_default();
        let summary = format!(
            "{} {} {}{why}",
            code(c.action.symbol()),
            code(&truncate_chars(&c.address, MAX_SUMMARY / 2)),
            super::text::action_verb(c.action)
        );
        units.push(details(summary, body));
    }

    // Outputs.
    let outputs: Vec<_> = plan.outputs.iter().filter(|o| o.action != Action::NoOp).collect();
    if !outputs.is_empty() {
        let rows: Vec<(Mark, String, String)> = outputs
            .iter()
            .map(|o| {
                let (m, v) = value_line(Some(&o.before), Some(&o.after), o.after_unknown, o.sensitive);
                (m, fmt_key(&o.name), v)
            })
            .collect();
        let w = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        let body = rows
            .into_iter()
            .map(|(m, name, v)| {
                let pad = " ".repeat(w - name.chars().count());
                Piece::Line(fence_safe(&format!("{} {name}{pad} = {v}", diff_mark(m))))
            })
            .collect();
        units.push(details(format!("Changes to outputs ({})", outputs.len()), body));
    }
    units
}

fn objects(n: usize) -> String {
    if n == 1 {
        "1 object has".to_string()
    } else {
        format!("{n} objects have")
    }
}

// ---------------------------------------------------------------------------------------------
// Splitting.

#[derive(Clone, Debug)]
enum Open {
    Details(String),
    Fence,
}

fn open_text(o: &Open, continued: bool) -> String {
    match o {
        Open::Details(s) if continued => format!("<details><summary>{s} (continued)</summary>\n\n"),
        Open::Details(s) => format!("<details><summary>{s}</summary>\n\n"),
        Open::Fence => "```diff\n".to_string(),
    }
}

fn close_text(o: &Open) -> &'static str {
    match o {
        Open::Details(_) => "</details>\n\n",
        Open::Fence => "```\n",
    }
}

fn piece_text(p: &Piece) -> String {
    match p {
        Piece::Line(s) => format!("{s}\n"),
        Piece::OpenDetails(s) => open_text(&Open::Details(s.clone()), false),
        Piece::CloseDetails => close_text(&Open::Details(String::new())).to_string(),
        Piece::OpenFence => open_text(&Open::Fence, false),
        Piece::CloseFence => close_text(&Open::Fence).to_string(),
    }
}

fn len(s: &str) -> usize {
    s.chars().count()
}

fn part_header(k: usize, n: usize) -> String {
    format!("**Part {k} of {n}**\n\n")
}

fn split(units: &[Unit], limit: usize) -> Vec<String> {
    let whole: String = units.iter().flatten().map(piece_text).collect();
    if len(&whole) <= limit {
        return vec![whole];
    }
    let mut digits = 1;
    loop {
        let widest = "9".repeat(digits).parse::<usize>().unwrap_or(usize::MAX);
        let reserve = len(&part_header(widest, widest));
        let parts = split_with(units, limit - reserve);
        if parts.len() <= widest {
            let n = parts.len();
            return parts.into_iter().enumerate().map(|(i, p)| format!("{}{p}", part_header(i + 1, n))).collect();
        }
        digits += 1;
    }
}

struct Splitter {
    budget: usize,
    parts: Vec<String>,
    cur: String,
    cur_len: usize,
    /// Whether `cur` holds more than the re-opened context.
    has_content: bool,
    stack: Vec<Open>,
}

impl Splitter {
    fn closers_len(&self) -> usize {
        self.stack.iter().map(|o| close_text(o).len()).sum()
    }

    fn push_text(&mut self, s: &str) {
        self.cur.push_str(s);
        self.cur_len += len(s);
    }

    /// Ends the current part (closing what is open) and starts the next one re-opening it.
    fn break_part(&mut self) {
        let closers: String = self.stack.iter().rev().map(close_text).collect();
        self.cur.push_str(&closers);
        self.parts.push(std::mem::take(&mut self.cur));
        self.cur_len = 0;
        let reopen: String = self.stack.iter().map(|o| open_text(o, true)).collect();
        self.push_text(&reopen);
        self.has_content = false;
    }

    /// Room left for text after reserving the closers of what is open.
    fn room(&self, extra_closer: usize) -> usize {
        self.budget.saturating_sub(self.cur_len + self.closers_len() + extra_closer)
    }

    fn line(&mut self, s: &str) {
        let need = len(s) + 1;
        if need > self.room(0) && self.has_content {
            self.break_part();
        }
        let room = self.room(0);
        if need > room {
            let omitted_from = room.saturating_sub(1);
            let marker = format!(" … (line truncated, {} characters omitted)", len(s));
            let keep = omitted_from.saturating_sub(len(&marker));
            let mut t: String = s.chars().take(keep).collect();
            let omitted = len(s) - len(&t);
            let marker = format!(" … (line truncated, {omitted} characters omitted)");
            t.push_str(&marker);
            // `marker` is never longer than the estimate made above.
            self.push_text(&t);
        } else {
            self.push_text(s);
        }
        self.push_text("\n");
        self.has_content = true;
    }

    fn open(&mut self, o: Open) {
        let text = open_text(&o, false);
        // Leave room for at least one short line after opening.
        if len(&text) + 80 > self.room(close_text(&o).len()) && self.has_content {
            self.break_part();
        }
        self.push_text(&text);
        self.stack.push(o);
        self.has_content = true;
    }

    fn close(&mut self) {
        if let Some(o) = self.stack.pop() {
            self.push_text(close_text(&o));
        }
    }
}

fn split_with(units: &[Unit], budget: usize) -> Vec<String> {
    let mut s = Splitter { budget, parts: Vec::new(), cur: String::new(), cur_len: 0, has_content: false, stack: Vec::new() };
    for unit in units {
        let unit_len: usize = unit.iter().map(|p| len(&piece_text(p))).sum();
        // Start a unit in a fresh part when it fits there but not in what is left here.
        if s.stack.is_empty() && s.has_content && s.cur_len + unit_len > budget && unit_len <= budget {
            s.break_part();
        }
        for p in unit {
            match p {
                Piece::Line(l) => s.line(l),
                Piece::OpenDetails(sum) => s.open(Open::Details(sum.clone())),
                Piece::OpenFence => s.open(Open::Fence),
                Piece::CloseDetails | Piece::CloseFence => s.close(),
            }
        }
    }
    while !s.stack.is_empty() {
        s.close();
    }
    if s.has_content || s.parts.is_empty() {
        s.parts.push(s.cur);
    }
    s.parts
}
