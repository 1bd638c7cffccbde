//! `rosca`: the command-line front-end. Thin: parses arguments and config, calls the library
//! crates, renders their results. Exit codes: 0 ok, 1 invalid input, 2 usage or IO error.

mod config;
mod render;

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

#[derive(clap::Args, Clone)]
struct TemplateArgs {
    /// Service template: a YAML file, a CSAR (.zip/.csar) or a CSAR directory; `-` reads stdin.
    template: String,
    /// YAML file of input values (a mapping of input names to values).
    #[arg(long)]
    inputs: Vec<PathBuf>,
    /// An input value, NAME=VALUE; VALUE is read as YAML (`-i port=80`, `-i 'tags=[a, b]'`).
    #[arg(short = 'i', long = "input", value_name = "NAME=VALUE")]
    input: Vec<String>,
    /// Resolve a URL import from a local file: URL=PATH (a URL prefix ending in '/' maps to a directory).
    #[arg(long = "import-map", value_name = "URL=PATH")]
    import_map: Vec<String>,
    /// Never fetch URL imports: resolve them from the import map or the cache only.
    #[arg(long)]
    offline: bool,
    /// Cache directory for fetched imports.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Treat required inputs without a value as errors (by default they are warnings: the
    /// template is valid, a deployment needs them).
    #[arg(long)]
    require_inputs: bool,
    /// Largest template file accepted, in bytes (default 16 MiB).
    #[arg(long)]
    max_file_size: Option<usize>,
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
    /// Print the catalogue of diagnostic codes as Markdown (docs/diagnostics.md).
    Codes,
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
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Validate { args, format } => {
            let compiled = compile(&args, &config)?;
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
        Command::Codes => {
            print!("{}", render::codes_markdown());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn compile(args: &TemplateArgs, config: &config::Config) -> Result<tosca::Compiled, String> {
    let mut options = LoadOptions { allow_fetch: !(args.offline || config.tosca.offline), ..LoadOptions::default() };
    if let Some(m) = args.max_file_size.or(config.tosca.max_file_size) {
        options.limits.max_file_size = m;
    }
    options.cache_dir = args.cache_dir.clone().or(config.tosca.cache_dir.clone());
    for (url, path) in &config.tosca.import_map {
        options.import_map.push((url.clone(), config.resolve(path)));
    }
    for m in &args.import_map {
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
    let mut inputs = tosca::Inputs { required: args.require_inputs, ..tosca::Inputs::new() };
    for path in &args.inputs {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read inputs file: {e}", path.display()))?;
        let file = sources.add(path.display().to_string(), text.clone());
        match tosca::yaml::parse(file, &text, &options.limits) {
            Ok(doc) => tosca::inputs_from_yaml(&doc, &mut inputs, &mut diags),
            Err(d) => diags.push(d),
        }
    }
    for (n, arg) in args.input.iter().enumerate() {
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
    Ok(tosca::compile(&entry, &options, &inputs, diags, sources))
}
