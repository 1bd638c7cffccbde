//! The human plan: drift note, legend, the per-type summary and the list of destroyed
//! instances first, then one diff block per changed instance, output changes and the
//! `Plan:` line.

use super::attrs::{block_lines, value_line, Line, Mark, Sides};
use super::text::{
    action_verb, action_word, by_type_rows, changed_sorted, clean, drift_mask, fmt_key, legend_text, node_title, plan_line,
    reasons, short_reason, unchanged_count, used_actions,
};
use super::HumanOptions;
use crate::plan::{Action, Drift, Plan, PlanMode, ResourceChange};
use console::Style;
use serde_json::Value;

/// Renders the plan for a terminal. No escape sequence is emitted unless `opts.color`.
pub fn human(plan: &Plan, opts: &HumanOptions) -> String {
    let p = Painter { color: opts.color };
    let mut out = String::new();
    if !plan.drift.is_empty() {
        drift_section(plan, opts, &p, &mut out);
    }
    let changed = changed_sorted(plan);
    if !changed.is_empty() {
        out.push_str("Resource actions are indicated with the following symbols:\n");
        for a in used_actions(plan) {
            out.push_str(&format!("{} {}\n", p.symbol(a), legend_text(a)));
        }
        out.push('\n');
        out.push_str("Rosca will perform the following actions:\n\n");
        type_table(plan, &p, &mut out);
        if opts.summary_only {
            instance_list(&changed, &p, &mut out);
        } else {
            destroy_list(&changed, &p, &mut out);
            for c in &changed {
                out.push_str(&resource_block(c, opts, &p));
                out.push('\n');
            }
        }
    }
    let outputs: Vec<_> = plan.outputs.iter().filter(|o| o.action != Action::NoOp).collect();
    if !outputs.is_empty() {
        out.push_str(&p.bold("Changes to Outputs:"));
        out.push('\n');
        let lines: Vec<(Mark, String, String)> = outputs
            .iter()
            .map(|o| {
                let (mark, value) = value_line(Some(&o.before), Some(&o.after), o.after_unknown, o.sensitive);
                (mark, fmt_key(&o.name), value)
            })
            .collect();
        let width = lines.iter().map(|l| l.1.chars().count()).max().unwrap_or(0);
        for (mark, name, value) in lines {
            if opts.summary_only {
                out.push_str(&format!("{} {name}\n", p.mark(mark)));
            } else {
                let pad = " ".repeat(width - name.chars().count());
                out.push_str(&format!("{} {name}{pad} = {value}\n", p.mark(mark)));
            }
        }
        out.push('\n');
    }
    footer(plan, &changed, &p, &mut out);
    out
}

fn footer(plan: &Plan, changed: &[&ResourceChange], p: &Painter, out: &mut String) {
    if plan.has_changes() {
        if changed.is_empty() {
            // Like Terraform: only outputs change, so no `Plan:` line.
            out.push_str(
                "You can apply this plan to save these new output values to the Rosca state, without changing any real \
                 infrastructure.\n",
            );
        } else {
            out.push_str(&p.bold(&plan_line(plan)));
            out.push('\n');
        }
        return;
    }
    match plan.mode {
        PlanMode::RefreshOnly if !plan.drift.is_empty() => out.push_str(
            "This is a refresh-only plan, so Rosca will not take any actions to undo these. If you were expecting these \
             changes then you can apply this plan to record the updated values in the Rosca state without changing any \
             real objects.\n",
        ),
        PlanMode::RefreshOnly => {
            out.push_str(&p.green_bold("No changes."));
            out.push_str(
                " Your infrastructure still matches the configuration.\n\nRosca has checked that the real objects still \
                 match the result of your most recent changes, and found no differences.\n",
            );
        }
        PlanMode::Destroy => {
            out.push_str(&p.green_bold("No changes."));
            out.push_str(
                " No objects need to be destroyed.\n\nEither you have not created any objects yet or the existing objects \
                 were already deleted outside of Rosca.\n",
            );
        }
        PlanMode::Normal => {
            out.push_str(&p.green_bold("No changes."));
            out.push_str(" Your infrastructure matches the configuration.\n\n");
            if !plan.drift.is_empty() {
                out.push_str(
                    "Your configuration already matches the changed infrastructure, which means that Rosca found no \
                     differences to undo.\n",
                );
            } else if plan.refreshed {
                out.push_str(
                    "Rosca has compared your real infrastructure against your configuration and found no differences, \
                     so no changes are needed.\n",
                );
            } else {
                out.push_str(
                    "Rosca has compared your configuration with the recorded state (without refreshing the real \
                     objects) and found no differences, so no changes are needed.\n",
                );
            }
        }
    }
}

fn drift_section(plan: &Plan, opts: &HumanOptions, p: &Painter, out: &mut String) {
    out.push_str(&p.bold("Note: Objects have changed outside of Rosca"));
    out.push_str("\n\nRosca detected the following changes made outside of Rosca since the last \"rosca apply\":\n\n");
    for d in &plan.drift {
        let (head, lines) = drift_lines(plan, d, opts.show_unchanged);
        out.push_str(&format!("  {}\n", p.bold(&head)));
        if !opts.summary_only {
            for l in &lines {
                out.push_str(&p.line(l));
            }
            out.push('\n');
        }
    }
    if opts.summary_only {
        out.push('\n');
    }
    // A refresh-only plan says what applying it does at the end.
    if plan.mode != PlanMode::RefreshOnly {
        out.push_str(
            "Unless you have made equivalent changes to your configuration, the following plan may include actions to \
             undo or respond to these changes.\n",
        );
        out.push_str(&format!("\n{}\n\n", "─".repeat(77)));
    }
}

/// The header and diff lines of one drift entry (shared with the Markdown renderer).
pub(crate) fn drift_lines(plan: &Plan, d: &Drift, show_unchanged: bool) -> (String, Vec<Line>) {
    let addr = clean(&d.address);
    if d.kind == "gone" {
        return (format!("# {addr} has been deleted outside of Rosca"), Vec::new());
    }
    let mask = drift_mask(plan, &d.address);
    let title = match plan.changes.iter().find(|c| c.address == d.address) {
        Some(c) => node_title(c),
        None => format!("node {}", Value::String(d.address.clone())),
    };
    let sides = Sides { before: &d.before, after: &d.after, after_unknown: &Value::Null, before_sensitive: &mask, after_sensitive: &mask };
    let head = if d.kind == "changed" {
        format!("# {addr} has changed outside of Rosca")
    } else {
        format!("# {addr} has changed outside of Rosca ({})", clean(&d.kind))
    };
    (head, block_lines(Mark::Change, &title, &sides, &[], show_unchanged))
}

/// The comment lines above a resource block: what happens and why.
pub(crate) fn resource_comments(c: &ResourceChange) -> Vec<String> {
    let mut v = vec![format!("# {} {}", clean(&c.address), action_verb(c.action))];
    for r in reasons(c) {
        v.push(format!("# ({r})"));
    }
    if !c.operations.is_empty() {
        v.push(format!("# re-runs: {}", clean(&c.operations.join(", "))));
    }
    v
}

/// The diff lines of a resource block.
pub(crate) fn resource_lines(c: &ResourceChange, show_unchanged: bool) -> Vec<Line> {
    let sides = Sides {
        before: &c.before,
        after: &c.after,
        after_unknown: &c.after_unknown,
        before_sensitive: &c.before_sensitive,
        after_sensitive: &c.after_sensitive,
    };
    // A delete shows what goes away; its `after` is null by definition.
    block_lines(Mark::Act(c.action), &node_title(c), &sides, &c.replace_paths, show_unchanged)
}

fn resource_block(c: &ResourceChange, opts: &HumanOptions, p: &Painter) -> String {
    let mut s = String::new();
    let comments = resource_comments(c);
    for (i, line) in comments.iter().enumerate() {
        let styled = if i == 0 { p.bold(line) } else { p.dim(line) };
        s.push_str(&format!("  {styled}\n"));
    }
    for l in resource_lines(c, opts.show_unchanged) {
        s.push_str(&p.line(&l));
    }
    s
}

fn type_table(plan: &Plan, p: &Painter, out: &mut String) {
    let rows = by_type_rows(plan);
    let ww = rows.iter().map(|r| action_word(r.0).len()).max().unwrap_or(0).max("ACTION".len());
    let tw = rows.iter().map(|r| clean(&r.1).chars().count()).max().unwrap_or(0).max("TYPE".len());
    let counts: Vec<String> = rows.iter().map(|r| r.2.to_string()).collect();
    let cw = counts.iter().map(String::len).max().unwrap_or(0).max("COUNT".len());
    out.push_str(&format!("    {}\n", p.dim(&format!("{:<ww$}  {:<tw$}  {:>cw$}", "ACTION", "TYPE", "COUNT"))));
    for ((a, t, _), n) in rows.iter().zip(&counts) {
        out.push_str(&format!("{} {:<ww$}  {:<tw$}  {:>cw$}\n", p.symbol(*a), action_word(*a), clean(t), n));
    }
    let unchanged = unchanged_count(plan);
    if unchanged > 0 {
        let s = if unchanged == 1 { "instance is" } else { "instances are" };
        out.push_str(&format!("    {}\n", p.dim(&format!("({unchanged} unchanged {s} not shown)"))));
    }
    out.push('\n');
}

fn destroy_list(changed: &[&ResourceChange], p: &Painter, out: &mut String) {
    let gone: Vec<&&ResourceChange> = changed.iter().filter(|c| c.action.deletes()).collect();
    if gone.is_empty() {
        return;
    }
    out.push_str(&p.bold(&format!("  To be destroyed or replaced ({}):", gone.len())));
    out.push('\n');
    let w = gone.iter().map(|c| clean(&c.address).chars().count()).max().unwrap_or(0);
    for c in gone {
        let addr = clean(&c.address);
        let line = match short_reason(c) {
            Some(r) => format!("{addr:<w$}  ({r})"),
            None => addr,
        };
        out.push_str(&format!("  {} {line}\n", p.symbol(c.action)));
    }
    out.push('\n');
}

fn instance_list(changed: &[&ResourceChange], p: &Painter, out: &mut String) {
    let w = changed.iter().map(|c| clean(&c.address).chars().count()).max().unwrap_or(0);
    for c in changed {
        let addr = clean(&c.address);
        out.push_str(&format!("{} {addr:<w$}  {}\n", p.symbol(c.action), clean(&c.type_name)));
    }
    out.push('\n');
}

/// Styling through `console`, forced on or entirely off.
struct Painter {
    color: bool,
}

impl Painter {
    fn style(&self, s: &str, style: Style) -> String {
        if self.color && !s.is_empty() {
            style.force_styling(true).apply_to(s).to_string()
        } else {
            s.to_string()
        }
    }

    fn bold(&self, s: &str) -> String {
        self.style(s, Style::new().bold())
    }

    fn dim(&self, s: &str) -> String {
        self.style(s, Style::new().dim())
    }

    fn green_bold(&self, s: &str) -> String {
        self.style(s, Style::new().green().bold())
    }

    /// The action symbol right-aligned in 3 columns, coloured like Terraform.
    fn symbol(&self, a: Action) -> String {
        let green = || Style::new().green();
        let red = || Style::new().red();
        match a {
            Action::Create => format!("  {}", self.style("+", green())),
            Action::Update => format!("  {}", self.style("~", Style::new().yellow())),
            Action::Delete => format!("  {}", self.style("-", red())),
            Action::Read => format!(" {}", self.style("<=", Style::new().cyan())),
            Action::DeleteThenCreate => format!("{}/{}", self.style("-", red()), self.style("+", green())),
            Action::CreateThenDelete => format!("{}/{}", self.style("+", green()), self.style("-", red())),
            Action::NoOp => "   ".to_string(),
        }
    }

    fn mark(&self, m: Mark) -> String {
        match m {
            Mark::Add => self.symbol(Action::Create),
            Mark::Remove => self.symbol(Action::Delete),
            Mark::Change => self.symbol(Action::Update),
            Mark::Keep => "   ".to_string(),
            Mark::Act(a) => self.symbol(a),
        }
    }

    fn line(&self, l: &Line) -> String {
        let text = if l.comment { self.dim(&l.text) } else { l.text.clone() };
        let s = format!("{}{} {text}", "    ".repeat(l.depth), self.mark(l.mark));
        format!("{}\n", s.trim_end())
    }
}
