//! TOSCA intrinsic functions: parsed into an expression tree ([`Expr`]) with arity checks.
//! Name resolution and evaluation need the topology; they live in `topology::functions`.

use crate::diag::{codes, Diagnostic, Diagnostics};
use crate::syntax::Sp;
use crate::yaml::{Yaml, YamlValue};

/// Names of the intrinsic functions. A single-key mapping whose key is one of these is a call,
/// not a map value.
pub const NAMES: &[&str] = &[
    "get_input",
    "get_property",
    "get_attribute",
    "get_operation_output",
    "concat",
    "join",
    "token",
    "get_artifact",
    "get_nodes_of_type",
];

/// True when `y` is written as a function call.
pub fn is_call(y: &Yaml) -> bool {
    match y.as_map() {
        Some([(k, _)]) => k.as_str().is_some_and(|k| NAMES.contains(&k)),
        _ => false,
    }
}

/// Warns about single-key mappings that look like a misspelt function call (`get_propery`),
/// which would otherwise be taken silently as a map value.
pub fn lint(y: &Yaml, diags: &mut Diagnostics) {
    // Most values linted are scalars: nothing to walk, nothing to allocate.
    if !matches!(y.value, YamlValue::Map(_) | YamlValue::Seq(_)) {
        return;
    }
    // The stack is allocated only when there is something below the top to walk (a function
    // call, the usual case, has nothing).
    let mut stack = Vec::new();
    let mut top = Some(y);
    while let Some(y) = top.take().or_else(|| stack.pop()) {
        match &y.value {
            YamlValue::Map(entries) => {
                if let [(k, _)] = &entries[..] {
                    if let Some(key) = k.as_str() {
                        let get_ = key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("get_"));
                        let looks_like = (get_ || NAMES.iter().any(|n| n.eq_ignore_ascii_case(key))) && !NAMES.contains(&key);
                        if looks_like {
                            let lower = key.to_ascii_lowercase();
                            let help = match crate::diag::suggest(&lower, NAMES.iter().copied()) {
                                Some(s) => format!("did you mean `{s}`? as written it is a map value, not a function call"),
                                None => format!("functions are: {}", NAMES.join(", ")),
                            };
                            diags.push(Diagnostic::new(&codes::UNKNOWN_FUNCTION, k.span, format!("`{key}` is not a TOSCA function")).help(help));
                        }
                    }
                }
                if !is_call(y) {
                    stack.extend(entries.iter().map(|(_, v)| v));
                }
            }
            YamlValue::Seq(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
}

/// One step of a property/attribute path: a name, or an index into a list.
#[derive(Clone, Debug, PartialEq)]
pub enum PathSeg {
    Name(Sp<String>),
    Index(Sp<i64>),
}

/// A function argument: a literal or a nested call.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Lit(Yaml),
    Call(Box<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    GetInput { name: Sp<String>, path: Vec<PathSeg> },
    /// `entity` is SELF, SOURCE, TARGET, HOST or a node/relationship template name; the path may
    /// start with a capability or requirement name.
    GetProperty { entity: Sp<String>, path: Vec<PathSeg> },
    GetAttribute { entity: Sp<String>, path: Vec<PathSeg> },
    GetOperationOutput { entity: Sp<String>, interface: Sp<String>, operation: Sp<String>, output: Sp<String> },
    Concat(Vec<Arg>),
    Join { list: Vec<Arg>, delimiter: Option<Arg> },
    Token { string: Arg, chars: Sp<String>, index: Sp<i64> },
    GetArtifact { entity: Sp<String>, artifact: Sp<String>, location: Option<Sp<String>>, remove: Option<bool> },
    GetNodesOfType(Sp<String>),
}

/// A parsed call and where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub expr: Expr,
    pub span: Span,
    /// The call as written, for output and messages.
    pub source: Yaml,
}

use crate::source::Span;

impl Expr {
    pub fn name(&self) -> &'static str {
        match self {
            Expr::GetInput { .. } => "get_input",
            Expr::GetProperty { .. } => "get_property",
            Expr::GetAttribute { .. } => "get_attribute",
            Expr::GetOperationOutput { .. } => "get_operation_output",
            Expr::Concat(_) => "concat",
            Expr::Join { .. } => "join",
            Expr::Token { .. } => "token",
            Expr::GetArtifact { .. } => "get_artifact",
            Expr::GetNodesOfType(_) => "get_nodes_of_type",
        }
    }

    /// Nested calls among the arguments.
    pub fn children(&self) -> Vec<&Expr> {
        let args: Vec<&Arg> = match self {
            Expr::Concat(a) => a.iter().collect(),
            Expr::Join { list, delimiter } => list.iter().chain(delimiter.iter()).collect(),
            Expr::Token { string, .. } => vec![string],
            _ => Vec::new(),
        };
        args.into_iter()
            .filter_map(|a| match a {
                Arg::Call(e) => Some(e.as_ref()),
                Arg::Lit(_) => None,
            })
            .collect()
    }
}

/// Parses a call written as `{name: args}`. Returns `None` (after reporting) when malformed.
pub fn parse(y: &Yaml, diags: &mut Diagnostics) -> Option<Call> {
    let [(k, args)] = y.as_map()? else { return None };
    let name = k.as_str()?;
    let expr = parse_expr(name, args, y.span, diags)?;
    Some(Call { expr, span: y.span, source: y.clone() })
}

fn arity(diags: &mut Diagnostics, span: Span, name: &str, want: &str, got: usize) -> Option<Expr> {
    diags.push(
        Diagnostic::new(&codes::FUNCTION_ARITY, span, format!("{name} takes {want}, found {got} argument{}", if got == 1 { "" } else { "s" }))
            .help(signature(name)),
    );
    None
}

fn signature(name: &str) -> String {
    let s = match name {
        "get_input" => "get_input: INPUT_NAME or [INPUT_NAME, NESTED_NAME_OR_INDEX, ...]",
        "get_property" => "get_property: [SELF|SOURCE|TARGET|HOST|NODE_NAME, [CAPABILITY_OR_REQUIREMENT,] PROPERTY, NESTED_NAME_OR_INDEX...]",
        "get_attribute" => "get_attribute: [SELF|SOURCE|TARGET|HOST|NODE_NAME, [CAPABILITY_OR_REQUIREMENT,] ATTRIBUTE, NESTED_NAME_OR_INDEX...]",
        "get_operation_output" => "get_operation_output: [SELF|SOURCE|TARGET|NODE_NAME, INTERFACE, OPERATION, OUTPUT]",
        "concat" => "concat: [STRING_OR_CALL, ...]",
        "join" => "join: [[STRING_OR_CALL, ...], DELIMITER]",
        "token" => "token: [STRING_OR_CALL, SEPARATOR_CHARS, INDEX]",
        "get_artifact" => "get_artifact: [SELF|SOURCE|TARGET|HOST|NODE_NAME, ARTIFACT_NAME, [LOCATION, [REMOVE]]]",
        "get_nodes_of_type" => "get_nodes_of_type: NODE_TYPE",
        _ => "",
    };
    format!("signature: {s}")
}

fn bad_arg(diags: &mut Diagnostics, y: &Yaml, name: &str, what: &str) -> Option<Expr> {
    diags.push(
        Diagnostic::new(&codes::FUNCTION_ARGUMENT, y.span, format!("{name}: {what}, found {}", y.kind_name())).help(signature(name)),
    );
    None
}

fn str_arg(diags: &mut Diagnostics, y: &Yaml, name: &str, what: &str) -> Option<Sp<String>> {
    match &y.value {
        YamlValue::Str(s) if !s.is_empty() => Some(Sp::new(s.as_str().to_owned(), y.span)),
        _ => {
            bad_arg(diags, y, name, &format!("{what} must be a name"));
            None
        }
    }
}

fn path(diags: &mut Diagnostics, items: &[Yaml], name: &str) -> Option<Vec<PathSeg>> {
    let mut out = Vec::new();
    for y in items {
        match &y.value {
            YamlValue::Str(s) => out.push(PathSeg::Name(Sp::new(s.as_str().to_owned(), y.span))),
            YamlValue::Int(i) => out.push(PathSeg::Index(Sp::new(*i, y.span))),
            _ => {
                bad_arg(diags, y, name, "path elements must be names or list indexes");
                return None;
            }
        }
    }
    Some(out)
}

fn arg(y: &Yaml, diags: &mut Diagnostics) -> Option<Arg> {
    if is_call(y) {
        parse(y, diags).map(|c| Arg::Call(Box::new(c.expr)))
    } else {
        Some(Arg::Lit(y.clone()))
    }
}

fn parse_expr(name: &str, args: &Yaml, span: Span, diags: &mut Diagnostics) -> Option<Expr> {
    let list: Vec<Yaml> = match &args.value {
        YamlValue::Seq(items) => items.to_vec(),
        _ => vec![args.clone()],
    };
    let n = list.len();
    match name {
        "get_input" => {
            if n == 0 {
                return arity(diags, span, name, "an input name", 0);
            }
            let input = str_arg(diags, &list[0], name, "the input name")?;
            Some(Expr::GetInput { name: input, path: path(diags, &list[1..], name)? })
        }
        "get_property" | "get_attribute" => {
            if n < 2 {
                return arity(diags, span, name, "at least 2 arguments (entity, name)", n);
            }
            let entity = str_arg(diags, &list[0], name, "the entity")?;
            let p = path(diags, &list[1..], name)?;
            if !matches!(p.first(), Some(PathSeg::Name(_))) {
                return bad_arg(diags, &list[1], name, "the second argument must be a property, capability or requirement name");
            }
            Some(if name == "get_property" { Expr::GetProperty { entity, path: p } } else { Expr::GetAttribute { entity, path: p } })
        }
        "get_operation_output" => {
            if n != 4 {
                return arity(diags, span, name, "4 arguments (entity, interface, operation, output)", n);
            }
            Some(Expr::GetOperationOutput {
                entity: str_arg(diags, &list[0], name, "the entity")?,
                interface: str_arg(diags, &list[1], name, "the interface")?,
                operation: str_arg(diags, &list[2], name, "the operation")?,
                output: str_arg(diags, &list[3], name, "the output")?,
            })
        }
        "concat" => {
            if args.as_seq().is_none() || n == 0 {
                return arity(diags, span, name, "a list of at least one argument", if args.as_seq().is_none() { 1 } else { 0 });
            }
            let mut out = Vec::new();
            for y in &list {
                out.push(arg(y, diags)?);
            }
            Some(Expr::Concat(out))
        }
        "join" => {
            if args.as_seq().is_none() || !(1..=2).contains(&n) {
                return arity(diags, span, name, "1 or 2 arguments ([list], delimiter)", n);
            }
            let Some(items) = list[0].as_seq() else { return bad_arg(diags, &list[0], name, "the first argument must be a list") };
            let mut out = Vec::new();
            for y in items {
                out.push(arg(y, diags)?);
            }
            let delimiter = match list.get(1) {
                Some(d) => Some(arg(d, diags)?),
                None => None,
            };
            Some(Expr::Join { list: out, delimiter })
        }
        "token" => {
            if args.as_seq().is_none() || n != 3 {
                return arity(diags, span, name, "3 arguments (string, separators, index)", n);
            }
            let string = arg(&list[0], diags)?;
            let chars = match &list[1].value {
                YamlValue::Str(s) if !s.is_empty() => Sp::new(s.as_str().to_owned(), list[1].span),
                _ => return bad_arg(diags, &list[1], name, "the separators must be a non-empty string"),
            };
            let index = match list[2].as_i64() {
                Some(i) if i >= 0 => Sp::new(i, list[2].span),
                _ => return bad_arg(diags, &list[2], name, "the index must be a non-negative integer"),
            };
            Some(Expr::Token { string, chars, index })
        }
        "get_artifact" => {
            if !(2..=4).contains(&n) {
                return arity(diags, span, name, "2 to 4 arguments (entity, artifact, [location, [remove]])", n);
            }
            let location = match list.get(2) {
                Some(l) => Some(str_arg(diags, l, name, "the location")?),
                None => None,
            };
            let remove = match list.get(3) {
                Some(r) => match r.as_bool() {
                    Some(b) => Some(b),
                    None => return bad_arg(diags, r, name, "remove must be true or false"),
                },
                None => None,
            };
            Some(Expr::GetArtifact {
                entity: str_arg(diags, &list[0], name, "the entity")?,
                artifact: str_arg(diags, &list[1], name, "the artifact name")?,
                location,
                remove,
            })
        }
        "get_nodes_of_type" => {
            if n != 1 {
                return arity(diags, span, name, "1 argument (a node type)", n);
            }
            Some(Expr::GetNodesOfType(str_arg(diags, &list[0], name, "the node type")?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    fn call(src: &str) -> (Option<Call>, Vec<&'static str>) {
        let y = crate::yaml::parse(FileId(0), src, &Default::default()).unwrap();
        let mut d = Diagnostics::new();
        let c = parse(&y, &mut d);
        (c, d.iter().map(|d| d.code).collect())
    }

    #[test]
    fn parses_nested_calls() {
        let (c, d) = call("concat: ['http://', {get_attribute: [HOST, public_address, 0]}, ':', {get_property: [SELF, port]}]");
        assert!(d.is_empty());
        let Expr::Concat(args) = c.unwrap().expr else { panic!() };
        assert_eq!(args.len(), 4);
        assert!(matches!(&args[1], Arg::Call(e) if matches!(e.as_ref(), Expr::GetAttribute { path, .. } if path.len() == 2)));
    }

    #[test]
    fn arity_errors() {
        assert_eq!(call("get_property: [SELF]").1, vec!["E0602"]);
        assert_eq!(call("get_operation_output: [SELF, Standard, create]").1, vec!["E0602"]);
        assert_eq!(call("token: [a, ':']").1, vec!["E0602"]);
        assert_eq!(call("token: [a, ':', -1]").1, vec!["E0607"]);
        assert_eq!(call("get_input: []").1, vec!["E0602"]);
        assert!(call("get_input: x").1.is_empty());
        assert!(call("join: [[a, b], ',']").1.is_empty());
    }
}
