//! `rosca`: the command-line front-end. Thin: parses arguments and config, calls the library
//! crates, renders their results. Exit codes: 0 ok, 1 invalid input, 2 usage or IO error.

mod backend;
mod commands;
mod config;
mod progress;
mod render;
mod serve;
mod state_cmd;
mod workflow;

// jemalloc instead of glibc's malloc: the front-end allocates and frees millions of small
// values (10k-node `rosca validate`: 0.62 -> 0.49 s of CPU, docs/benchmarks.md); mimalloc was
// as fast only when tuned to return memory early, and then no faster than this.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// Freed pages go back to the system after 1 s instead of jemalloc's default 10 s: the peak
// RSS of that run stays at 192 MB (glibc: 182) rather than 200.
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8] = b"dirty_decay_ms:1000\0";

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use tosca::loader::{Entry, LoadOptions};
use tosca::{Diagnostics, Sources};

#[derive(Parser)]
#[command(name = "rosca", version, about = "Plan/apply orchestrator for TOSCA topologies")]
struct Cli {
    /// Configuration file (default: ./rosca.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Debug)]
pub struct TemplateArgs {
    /// Service template: a YAML file, a CSAR (.zip/.csar) or a CSAR directory; `-` reads stdin.
    pub template: String,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How a template and its inputs are read.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LoadArgs {
    /// YAML file of input values (a mapping of input names to values).
    #[arg(long)]
    pub inputs: Vec<PathBuf>,
    /// An input value, NAME=VALUE; VALUE is read as YAML (`-i port=80`, `-i 'tags=[a, b]'`).
    #[arg(short = 'i', long = "input", value_name = "NAME=VALUE")]
    pub input: Vec<String>,
    /// Resolve a URL import from a local file: URL=PATH (a URL prefix ending in '/' maps to a directory).
    #[arg(long = "import-map", value_name = "URL=PATH")]
    pub import_map: Vec<String>,
    /// Never fetch URL imports: resolve them from the import map or the cache only.
    #[arg(long)]
    pub offline: bool,
    /// Cache directory for fetched imports.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Treat required inputs without a value as errors (by default they are warnings: the
    /// template is valid, a deployment needs them).
    #[arg(long)]
    pub require_inputs: bool,
    /// Largest template file accepted, in bytes (default 16 MiB).
    #[arg(long)]
    pub max_file_size: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a template: exit 0 when valid (warnings allowed), 1 when invalid, 2 on usage/IO errors.
    Validate {
        #[command(flatten)]
        args: TemplateArgs,
        #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
        format: DiagFormat,
    },
    /// Print the normalized topology Rosca understood from a template (docs/topology.md).
    Topology {
        #[command(flatten)]
        args: TemplateArgs,
        #[arg(long, value_enum, default_value_t = TopoFormat::Json)]
        format: TopoFormat,
    },
    /// Show what apply would change: refresh, diff against state, print the plan.
    /// Exit 0 ok (with --detailed-exitcode: 0 no changes, 2 changes), 1 error.
    Plan {
        #[command(flatten)]
        args: TemplateArgs,
        #[command(flatten)]
        flags: commands::PlanFlags,
        #[command(flatten)]
        state: workflow::StateArgs,
        /// Save the plan to FILE for `rosca apply FILE` (Terraform's `-out`).
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        #[arg(long, value_enum, default_value_t = commands::PlanFormat::Human)]
        format: commands::PlanFormat,
        /// Same as --format json.
        #[arg(long)]
        json: bool,
        /// Concise: the summary table and one line per changed instance.
        #[arg(long)]
        summary: bool,
        /// Plan to destroy everything in the state.
        #[arg(long)]
        destroy: bool,
        /// Only record changes made outside Rosca; propose no actions.
        #[arg(long)]
        refresh_only: bool,
        /// Largest Markdown part (a PR comment), in characters.
        #[arg(long, default_value_t = 65_000)]
        max_chars: usize,
    },
    /// Apply a template (plans, shows, asks) or a saved plan file (applies exactly it).
    Apply {
        /// Template (or CSAR), or a plan file saved by `rosca plan --out`.
        template: Option<String>,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        flags: commands::PlanFlags,
        #[command(flatten)]
        state: workflow::StateArgs,
        /// Do not ask for approval.
        #[arg(long)]
        auto_approve: bool,
        /// Most actions running at once (default 10, or [apply] parallelism).
        #[arg(long)]
        parallelism: Option<usize>,
    },
    /// Destroy everything in the state (plans, shows, asks).
    Destroy {
        /// Ignored except for CSAR extraction; destroy works from the state alone.
        template: Option<String>,
        #[command(flatten)]
        flags: commands::PlanFlags,
        #[command(flatten)]
        state: workflow::StateArgs,
        #[arg(long)]
        auto_approve: bool,
        #[arg(long)]
        parallelism: Option<usize>,
    },
    /// Update the state with what the providers report (changes made outside Rosca).
    Refresh {
        #[command(flatten)]
        state: workflow::StateArgs,
    },
    /// Show a saved plan, or the state.
    Show {
        planfile: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: workflow::StateArgs,
    },
    /// Print outputs from the state (NAME: that value alone).
    Output {
        name: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: workflow::StateArgs,
    },
    /// Print the action graph of a plan as DOT or Mermaid.
    Graph {
        template: Option<String>,
        #[command(flatten)]
        load: LoadArgs,
        /// Graph this saved plan instead of planning the template.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = GraphKind::Dot)]
        format: GraphKind,
        #[command(flatten)]
        state: workflow::StateArgs,
    },
    /// Inspect and repair the state.
    State {
        #[command(subcommand)]
        command: state_cmd::StateCommand,
        #[command(flatten)]
        state: workflow::StateArgs,
    },
    /// Serve the REST API (INDIGO PaaS Orchestrator compatible) with its job workers.
    Serve(serve::ServeArgs),
    /// Print the catalogue of diagnostic codes as Markdown (docs/diagnostics.md).
    Codes,
    /// Print a shell completion script (`rosca completions bash > /etc/bash_completion.d/rosca`).
    Completions {
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum GraphKind {
    Dot,
    Mermaid,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum DiagFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum TopoFormat {
    Json,
    Yaml,
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(terraform_style_args(std::env::args_os()));
    if !matches!(cli.command, Command::Serve(_)) {
        // `rosca plan | head` must end quietly like any Unix tool, not panic on EPIPE. The
        // server keeps Rust's default (ignored), so a client hanging up cannot kill it.
        // SAFETY: called once at start, before any other thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Terraform users type `-out=FILE`, `-auto-approve`, `-target=x`: accept the single-dash
/// spelling of every long option of at least three letters.
fn terraform_style_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const LONG: &[&str] = &[
        "out", "auto-approve", "target", "replace", "refresh", "detailed-exitcode", "lock-timeout", "lock", "timeout", "parallelism", "destroy", "refresh-only", "json", "state", "inputs", "input",
    ];
    args.map(|a| {
        let Some(s) = a.to_str() else { return a };
        if let Some(rest) = s.strip_prefix('-').filter(|r| !r.starts_with('-')) {
            let name = rest.split('=').next().unwrap_or("");
            if LONG.contains(&name) {
                return format!("-{s}").into();
            }
        }
        a
    })
    .collect()
}

fn exit_of(r: Result<ExitCode, workflow::Failure>) -> Result<ExitCode, String> {
    match r {
        Ok(c) => Ok(c),
        Err(workflow::Failure::Invalid(m)) => {
            eprintln!("error: {m}");
            Ok(ExitCode::from(1))
        }
        Err(workflow::Failure::Usage(m)) => Err(m),
    }
}

fn template_args(template: Option<String>, load: LoadArgs) -> TemplateArgs {
    TemplateArgs { template: template.unwrap_or_default(), load }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Validate { args, format } => {
            // Only diagnostics are printed: the output model is not built.
            let compiled = compile_with(&args, &config, tosca::check)?;
            let errors = compiled.has_errors();
            match format {
                DiagFormat::Human => {
                    eprint!("{}", render::human(&compiled.sources, &compiled.diagnostics, render::use_color()));
                    let (e, w) = render::counts(&compiled.diagnostics);
                    if errors {
                        eprintln!("{}: invalid ({e} error{}, {w} warning{})", args.template, plural(e), plural(w));
                    } else {
                        println!("{}: valid ({w} warning{})", args.template, plural(w));
                    }
                }
                DiagFormat::Json => {
                    let out = render::json(&compiled.sources, &compiled.diagnostics, !errors);
                    println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
                }
            }
            // The process ends here: freeing a large template's trees would only cost time.
            std::mem::forget(compiled);
            Ok(if errors { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Topology { args, format } => {
            let compiled = compile(&args, &config)?;
            if compiled.has_errors() {
                eprint!("{}", render::human(&compiled.sources, &compiled.diagnostics, render::use_color()));
                eprintln!("{}: invalid; fix the errors above to see its topology", args.template);
                return Ok(ExitCode::from(1));
            }
            let topology = compiled.topology.redacted();
            let text = match format {
                TopoFormat::Json => serde_json::to_string_pretty(&topology).map_err(|e| e.to_string())? + "\n",
                TopoFormat::Yaml => {
                    let json = serde_json::to_value(&topology).map_err(|e| e.to_string())?;
                    serde_saphyr::to_string(&json).map_err(|e| e.to_string())?
                }
            };
            print!("{text}");
            std::mem::forget((compiled, topology));
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { args, flags, state, out, detailed_exitcode, format, json, summary, destroy, refresh_only, max_chars } => {
            let format = if json { commands::PlanFormat::Json } else { format };
            exit_of(commands::plan(commands::PlanCmd { args, flags, state, out, detailed_exitcode, format, summary, destroy, refresh_only, max_chars }, config))
        }
        Command::Apply { template, load, flags, state, auto_approve, parallelism } => {
            let template = template.or_else(|| state_template(&config, &state));
            let Some(template) = template else {
                return Err("give a TEMPLATE or a saved PLANFILE (no template was applied in this state yet)".into());
            };
            exit_of(commands::apply(commands::ApplyCmd { args: template_args(Some(template), load), flags, state, auto_approve, parallelism, destroy: false }, config))
        }
        Command::Destroy { template, flags, state, auto_approve, parallelism } => {
            exit_of(commands::apply(commands::ApplyCmd { args: template_args(template, LoadArgs::default()), flags, state, auto_approve, parallelism, destroy: true }, config))
        }
        Command::Refresh { state } => exit_of(commands::refresh(template_args(None, LoadArgs::default()), state, config)),
        Command::Show { planfile, json, state } => exit_of(commands::show(planfile, json, state, config)),
        Command::Output { name, json, state } => exit_of(commands::output(name, json, state, config)),
        Command::Graph { template, load, plan, format, state } => {
            let format = match format {
                GraphKind::Dot => planner::render::GraphFormat::Dot,
                GraphKind::Mermaid => planner::render::GraphFormat::Mermaid,
            };
            exit_of(commands::graph(template.map(|t| template_args(Some(t), load)), plan, format, state, config))
        }
        Command::State { command, state } => exit_of(state_cmd::run(command, state, config)),
        Command::Serve(args) => serve::run(args, config),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rosca", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Codes => {
            print!("{}", render::codes_markdown());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The template recorded in the state by the last apply, if any.
fn state_template(config: &config::Config, state: &workflow::StateArgs) -> Option<String> {
    let ws = workflow::Workspace::open(config.clone(), state).ok()?;
    ws.read_state().ok()?.template.map(|t| t.path)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn compile(args: &TemplateArgs, config: &config::Config) -> Result<tosca::Compiled, String> {
    compile_with(args, config, tosca::compile)
}

/// [`compile`] through `tosca::compile` or `tosca::check` (same diagnostics, no output model).
fn compile_with(args: &TemplateArgs, config: &config::Config, run: fn(&Entry, &LoadOptions, &tosca::Inputs, Diagnostics, Sources) -> tosca::Compiled) -> Result<tosca::Compiled, String> {
    let mut options = LoadOptions { allow_fetch: !(args.load.offline || config.tosca.offline), ..LoadOptions::default() };
    if let Some(m) = args.load.max_file_size.or(config.tosca.max_file_size) {
        options.limits.max_file_size = m;
    }
    options.cache_dir = args.load.cache_dir.clone().or(config.tosca.cache_dir.clone());
    for (url, path) in &config.tosca.import_map {
        options.import_map.push((url.clone(), config.resolve(path)));
    }
    for m in &args.load.import_map {
        options.import_map.push(tosca::loader::parse_import_map_entry(m)?);
    }
    let entry = if args.template == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(options.limits.max_file_size as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the template from stdin: {e}"))?;
        Entry::Text { name: "<stdin>".into(), text }
    } else {
        let p = PathBuf::from(&args.template);
        if !p.exists() {
            return Err(format!("{}: no such file or directory (give a template file, a CSAR, or - for stdin)", args.template));
        }
        Entry::Path(p)
    };
    let mut sources = Sources::new();
    let mut diags = Diagnostics::new();
    let mut inputs = tosca::Inputs { required: args.load.require_inputs, ..tosca::Inputs::new() };
    for path in &args.load.inputs {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read inputs file: {e}", path.display()))?;
        let file = sources.add(path.display().to_string(), text.clone());
        match tosca::yaml::parse(file, &text, &options.limits) {
            Ok(doc) => tosca::inputs_from_yaml(&doc, &mut inputs, &mut diags),
            Err(d) => diags.push(d),
        }
    }
    for (n, arg) in args.load.input.iter().enumerate() {
        let file = sources.add(format!("<-i #{}>", n + 1), arg.clone());
        let Some((name, value)) = arg.split_once('=') else {
            diags.report(&tosca::diag::codes::BAD_INPUT_ARG, tosca::Span::file_start(file), format!("`{arg}` is not NAME=VALUE"));
            continue;
        };
        let value_file = sources.add(format!("<-i {name}>"), value.to_string());
        let y = match tosca::yaml::parse(value_file, value, &options.limits) {
            Ok(y) => y,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let name_span = tosca::Span { file, offset: 0, len: name.len() as u32, line: 1, col: 1 };
        inputs.push(tosca::syntax::Sp::new(name.trim().to_string(), name_span), y);
    }
    Ok(run(&entry, &options, &inputs, diags, sources))
}
