//! The attribute diff of one instance as marked lines, shared by the human and Markdown
//! renderers: changed leaves `old -> new`, added `name = value`, removed `value -> null`,
//! unknown `(known after apply)`, sensitive `(sensitive value)` per leaf, replace-forcing paths
//! `# forces replacement`, unchanged content folded into a count.

use super::text::{any_true, fmt_key, fmt_value, is_true, sub, sub_idx, KNOWN_AFTER_APPLY, NULL, SENSITIVE, SENSITIVE_CHANGED};
use crate::plan::Action;
use serde_json::Value;

/// The change marker of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    Add,
    Remove,
    Change,
    /// Unchanged content, comments and closing brackets.
    Keep,
    /// A resource header: the action's own symbol.
    Act(Action),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub depth: usize,
    pub mark: Mark,
    pub text: String,
    /// A `# ...` comment (styled dim).
    pub comment: bool,
}

/// What to diff: both sides with their masks.
pub(crate) struct Sides<'a> {
    pub before: &'a Value,
    pub after: &'a Value,
    pub after_unknown: &'a Value,
    pub before_sensitive: &'a Value,
    pub after_sensitive: &'a Value,
}

/// The lines of a resource block: `header {`, the attribute diff, `}`.
pub(crate) fn block_lines(header_mark: Mark, header: &str, sides: &Sides<'_>, replace_paths: &[Vec<String>], show_unchanged: bool) -> Vec<Line> {
    let ctx = Ctx { replace_paths, show_unchanged };
    let mut out = vec![Line { depth: 0, mark: header_mark, text: format!("{header} {{"), comment: false }];
    let b = present(Some(sides.before));
    let a = present(Some(sides.after));
    // A node without any configuration (no properties, capabilities or operation inputs)
    // shows just its header.
    let nothing = |v: Option<&Value>| v.is_none_or(|v| matches!(v, Value::Object(m) if m.is_empty()));
    let root = if nothing(b) && nothing(a) && !is_true(sides.after_unknown) {
        None
    } else {
        Some(diff(&ctx, &mut Vec::new(), b, a, sides.after_unknown, sides.before_sensitive, sides.after_sensitive))
    };
    match root {
        Some(Node { kind: Kind::Block { children, hidden_attrs, hidden_blocks, .. }, .. }) => {
            emit_children(&children, hidden_attrs, hidden_blocks, 1, &mut out);
        }
        Some(node) => {
            // Not an object (unexpected shape): one pseudo attribute.
            let node = Node { key: "value".to_string(), ..node };
            if node.mark != Mark::Keep || show_unchanged {
                emit(&node, 1, 0, &mut out);
            } else {
                emit_hidden(1, 0, 1, 0, &mut out);
            }
        }
        None => {}
    }
    out.push(Line { depth: 0, mark: Mark::Keep, text: "}".to_string(), comment: false });
    out
}

/// Lines of one changed value (outputs): `name = old -> new` without a block around it.
pub(crate) fn value_line(before: Option<&Value>, after: Option<&Value>, unknown: bool, sensitive: bool) -> (Mark, String) {
    let s = if sensitive { &super::text::TRUE } else { &NULL };
    let u = if unknown { &super::text::TRUE } else { &NULL };
    let b = present(before);
    let a = present(after);
    let ctx = Ctx { replace_paths: &[], show_unchanged: true };
    let node = leaf(&ctx, &[], b, a, u, s, s);
    match node.kind {
        Kind::Leaf { value } => (node.mark, value),
        _ => (node.mark, String::new()),
    }
}

struct Ctx<'a> {
    replace_paths: &'a [Vec<String>],
    show_unchanged: bool,
}

struct Node {
    key: String,
    mark: Mark,
    forces: bool,
    kind: Kind,
}

enum Kind {
    Leaf { value: String },
    Block { eq_style: bool, children: Vec<Node>, hidden_attrs: usize, hidden_blocks: usize },
    List { items: Vec<(Mark, String)>, hidden: usize },
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn is_map(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_object)
}

fn nonempty_map(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Object(m)) if !m.is_empty())
}

/// Top-level sections and the capability / operation names under them read as blocks
/// (`properties {`); other maps are values (`tags = {`).
fn block_style(path: &[String]) -> bool {
    path.len() == 1 || (path.len() == 2 && matches!(path[0].as_str(), "capabilities" | "operations"))
}

fn diff(ctx: &Ctx<'_>, path: &mut Vec<String>, b: Option<&Value>, a: Option<&Value>, unk: &Value, bs: &Value, as_: &Value) -> Node {
    let forces = ctx.replace_paths.iter().any(|p| p == path);
    let key = path.last().map(|k| fmt_key(k)).unwrap_or_default();
    let literal = |v: Option<&Value>| v.is_some_and(|v| super::text::literal(v).is_some());
    if !is_true(unk) && is_map(b) && is_map(a) && (nonempty_map(b) || nonempty_map(a)) && !literal(b) && !literal(a) {
        return block(ctx, path, key, forces, b, a, unk, bs, as_);
    }
    let long_list = !is_true(unk)
        && !is_true(bs)
        && !is_true(as_)
        && matches!((b, a), (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None))
        && (long(b, bs) || long(a, as_));
    if long_list {
        return list(ctx, key, forces, b, a, unk, bs, as_);
    }
    let mut node = leaf(ctx, path, b, a, unk, bs, as_);
    node.key = key;
    node
}

const INLINE_LIST_MAX: usize = 80;

fn long(v: Option<&Value>, sens: &Value) -> bool {
    match v {
        Some(Value::Array(items)) => {
            items.iter().any(|x| x.is_object() || x.is_array()) || fmt_value(v.unwrap_or(&NULL), &NULL, sens).len() > INLINE_LIST_MAX
        }
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn block(ctx: &Ctx<'_>, path: &mut Vec<String>, key: String, forces: bool, b: Option<&Value>, a: Option<&Value>, unk: &Value, bs: &Value, as_: &Value) -> Node {
    let empty = serde_json::Map::new();
    let bm = b.and_then(Value::as_object).unwrap_or(&empty);
    let am = a.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = am.keys().collect();
    keys.extend(bm.keys().filter(|k| !am.contains_key(*k)));
    if let Value::Object(um) = unk {
        keys.extend(um.keys().filter(|k| !am.contains_key(*k) && !bm.contains_key(*k)));
    }
    let mut children = Vec::new();
    let (mut hidden_attrs, mut hidden_blocks) = (0, 0);
    let mut changed = false;
    for k in keys {
        let cb = present(bm.get(k));
        let ca = if a.is_some() { present(am.get(k)) } else { None };
        let cu = if a.is_some() { sub(unk, k) } else { &NULL };
        if cb.is_none() && ca.is_none() && !is_true(cu) {
            continue;
        }
        path.push(k.clone());
        let child = diff(ctx, path, cb, ca, cu, sub(bs, k), sub(as_, k));
        path.pop();
        if child.mark == Mark::Keep {
            if !ctx.show_unchanged {
                match child.kind {
                    Kind::Block { .. } => hidden_blocks += 1,
                    _ => hidden_attrs += 1,
                }
                continue;
            }
        } else {
            changed = true;
        }
        children.push(child);
    }
    let mark = match (b, a) {
        (None, _) => Mark::Add,
        (_, None) => Mark::Remove,
        _ if changed || forces => Mark::Change,
        _ => Mark::Keep,
    };
    Node { key, mark, forces, kind: Kind::Block { eq_style: !block_style(path), children, hidden_attrs, hidden_blocks } }
}

fn leaf(ctx: &Ctx<'_>, path: &[String], b: Option<&Value>, a: Option<&Value>, unk: &Value, bs: &Value, as_: &Value) -> Node {
    let key = path.last().map(|k| fmt_key(k)).unwrap_or_default();
    let forces = ctx.replace_paths.iter().any(|p| p == path);
    let (mark, value) = match (b, a) {
        (Some(b), _) if is_true(unk) => (Mark::Change, format!("{} -> {KNOWN_AFTER_APPLY}", fmt_value(b, &NULL, bs))),
        (None, _) if is_true(unk) => (Mark::Add, KNOWN_AFTER_APPLY.to_string()),
        (None, Some(a)) => (Mark::Add, fmt_value(a, unk, as_)),
        (Some(b), None) => (Mark::Remove, format!("{} -> null", fmt_value(b, &NULL, bs))),
        (Some(b), Some(a)) if b == a && !any_true(unk) => (Mark::Keep, fmt_value(a, unk, as_)),
        (Some(b), Some(a)) => {
            let old = fmt_value(b, &NULL, bs);
            let new = fmt_value(a, unk, as_);
            if (is_true(bs) && is_true(as_)) || (old == new && old.contains(SENSITIVE)) {
                (Mark::Change, SENSITIVE_CHANGED.to_string())
            } else {
                (Mark::Change, format!("{old} -> {new}"))
            }
        }
        (None, None) => (Mark::Keep, "null".to_string()),
    };
    Node { key, mark, forces, kind: Kind::Leaf { value } }
}

#[allow(clippy::too_many_arguments)]
fn list(ctx: &Ctx<'_>, key: String, forces: bool, b: Option<&Value>, a: Option<&Value>, unk: &Value, bs: &Value, as_: &Value) -> Node {
    let empty = Vec::new();
    let bl = b.and_then(Value::as_array).unwrap_or(&empty);
    let al = a.and_then(Value::as_array).unwrap_or(&empty);
    let fb = |i: usize| fmt_value(&bl[i], &NULL, sub_idx(bs, i));
    let fa = |j: usize| fmt_value(&al[j], sub_idx(unk, j), sub_idx(as_, j));
    let mut items = Vec::new();
    let mut hidden = 0;
    let mut changed = false;
    for op in lcs(bl, al, unk) {
        match op {
            Op::Same(j) => {
                if ctx.show_unchanged || b.is_none() || a.is_none() {
                    items.push((Mark::Keep, fa(j)));
                } else {
                    hidden += 1;
                }
            }
            Op::Del(i) => {
                changed = true;
                items.push((Mark::Remove, fb(i)));
            }
            Op::Ins(j) => {
                changed = true;
                items.push((Mark::Add, fa(j)));
            }
        }
    }
    let mark = match (b, a) {
        (None, _) => Mark::Add,
        (_, None) => Mark::Remove,
        _ if changed => Mark::Change,
        _ => Mark::Keep,
    };
    if mark == Mark::Add || mark == Mark::Remove {
        for it in &mut items {
            it.0 = mark;
        }
    }
    Node { key, mark, forces, kind: Kind::List { items, hidden } }
}

enum Op {
    Same(usize),
    Del(usize),
    Ins(usize),
}

/// Element edit script (longest common subsequence; whole replacement past a size bound).
fn lcs(b: &[Value], a: &[Value], unk: &Value) -> Vec<Op> {
    let eq = |i: usize, j: usize| b[i] == a[j] && !any_true(sub_idx(unk, j));
    let (n, m) = (b.len(), a.len());
    if n.saturating_mul(m) > 250_000 {
        let mut ops: Vec<Op> = (0..n).map(Op::Del).collect();
        ops.extend((0..m).map(Op::Ins));
        return ops;
    }
    let mut t = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i][j] = if eq(i, j) { t[i + 1][j + 1] + 1 } else { t[i + 1][j].max(t[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n && j < m {
        if eq(i, j) {
            ops.push(Op::Same(j));
            i += 1;
            j += 1;
        } else if t[i + 1][j] >= t[i][j + 1] {
            ops.push(Op::Del(i));
            i += 1;
        } else {
            ops.push(Op::Ins(j));
            j += 1;
        }
    }
    ops.extend((i..n).map(Op::Del));
    ops.extend((j..m).map(Op::Ins));
    ops
}

const FORCES: &str = " # forces replacement";

fn emit_children(children: &[Node], hidden_attrs: usize, hidden_blocks: usize, depth: usize, out: &mut Vec<Line>) {
    let width = children.iter().filter(|c| !matches!(c.kind, Kind::Block { eq_style: false, .. })).map(|c| c.key.chars().count()).max().unwrap_or(0);
    for c in children {
        emit(c, depth, width, out);
    }
    emit_hidden(depth, hidden_attrs, 0, hidden_blocks, out);
}

fn emit_hidden(depth: usize, attrs: usize, elems: usize, blocks: usize, out: &mut Vec<Line>) {
    let mut say = |n: usize, one: &str, many: &str| {
        if n > 0 {
            let what = if n == 1 { one } else { many };
            out.push(Line { depth, mark: Mark::Keep, text: format!("# ({n} unchanged {what} hidden)"), comment: true });
        }
    };
    say(attrs, "attribute", "attributes");
    say(elems, "element", "elements");
    say(blocks, "block", "blocks");
}

fn emit(node: &Node, depth: usize, width: usize, out: &mut Vec<Line>) {
    let forces = if node.forces { FORCES } else { "" };
    match &node.kind {
        Kind::Leaf { value } => {
            let pad = width.saturating_sub(node.key.chars().count());
            out.push(Line { depth, mark: node.mark, text: format!("{}{} = {value}{forces}", node.key, " ".repeat(pad)), comment: false });
        }
        Kind::Block { eq_style, children, hidden_attrs, hidden_blocks } => {
            let open = if *eq_style {
                let pad = width.saturating_sub(node.key.chars().count());
                format!("{}{} = {{{forces}", node.key, " ".repeat(pad))
            } else {
                format!("{} {{{forces}", node.key)
            };
            out.push(Line { depth, mark: node.mark, text: open, comment: false });
            emit_children(children, *hidden_attrs, *hidden_blocks, depth + 1, out);
            out.push(Line { depth, mark: Mark::Keep, text: "}".to_string(), comment: false });
        }
        Kind::List { items, hidden } => {
            let pad = width.saturating_sub(node.key.chars().count());
            out.push(Line { depth, mark: node.mark, text: format!("{}{} = [{forces}", node.key, " ".repeat(pad)), comment: false });
            for (m, v) in items {
                out.push(Line { depth: depth + 1, mark: *m, text: format!("{v},"), comment: false });
            }
            emit_hidden(depth + 1, 0, *hidden, 0, out);
            out.push(Line { depth, mark: Mark::Keep, text: "]".to_string(), comment: false });
        }
    }
}
