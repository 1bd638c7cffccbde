//! The plan/apply family of commands: argument structs and handlers. Each handler returns the
//! process exit code; `Failure` maps to 1 (invalid input, failed operation) or 2 (usage).

use crate::config::Config;
use crate::progress::Progress;
use crate::workflow::{self, Failure, PlanSettings, Prepared, StateArgs, Workspace};
use crate::TemplateArgs;
use planner::plan::{Plan, PlanMode};
use planner::render::{self, GraphFormat, HumanOptions, MarkdownOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Clone, Debug)]
pub struct PlanFlags {
    /// Limit to this instance or node (and what it depends on); repeatable.
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Replace this instance even if it is unchanged; repeatable.
    #[arg(long, value_name = "ADDR")]
    pub replace: Vec<String>,
    /// Read every resource through its provider before planning (drift detection).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub refresh: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

fn tokio_rt() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))
}

fn color() -> bool {
    crate::render::use_color()
}

fn human_opts(summary: bool) -> HumanOptions {
    HumanOptions { color: color(), summary_only: summary, ..HumanOptions::default() }
}

fn settings(flags: &PlanFlags, mode: PlanMode) -> PlanSettings {
    PlanSettings { mode, refresh: flags.refresh, replace: flags.replace.clone(), targets: flags.targets.clone() }
}

pub struct PlanCmd {
    pub args: TemplateArgs,
    pub flags: PlanFlags,
    pub state: StateArgs,
    pub out: Option<PathBuf>,
    pub detailed_exitcode: bool,
    pub format: PlanFormat,
    pub summary: bool,
    pub destroy: bool,
    pub refresh_only: bool,
    pub max_chars: usize,
}

pub fn plan(cmd: PlanCmd, config: Config) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(config, &cmd.state)?;
    let prepared = if cmd.destroy { None } else { Some(workflow::prepare(&cmd.args, &ws.config, &ws.workdir)?) };
    let rt = tokio_rt()?;
    let _lock = ws.lock("plan")?;
    let prior = ws.read_state()?;
    let mode = if cmd.destroy {
        PlanMode::Destroy
    } else if cmd.refresh_only {
        PlanMode::RefreshOnly
    } else {
        PlanMode::Normal
    };
    let (plan, _) = workflow::make_plan(&ws, prepared.as_ref(), &prior, &settings(&cmd.flags, mode), &rt)?;
    match cmd.format {
        PlanFormat::Human => print!("{}", render::human(&plan, &human_opts(cmd.summary))),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&render::json(&plan)).unwrap_or_default()),
        PlanFormat::Markdown => {
            let parts = render::markdown(&plan, &MarkdownOptions { max_chars: cmd.max_chars, ..MarkdownOptions::default() });
            let n = parts.len();
            for (i, p) in parts.iter().enumerate() {
                print!("{p}");
                if i + 1 < n {
                    // Parts are separate comments: a form feed separates them on stdout.
                    println!("\n\u{c}");
                }
            }
        }
    }
    if let Some(out) = &cmd.out {
        save_plan(&plan, out)?;
        if cmd.format == PlanFormat::Human {
            println!("\nSaved the plan to: {}\n\nTo perform exactly these actions, run:\n    rosca apply {}", out.display(), out.display());
        }
    }
    Ok(if cmd.detailed_exitcode && plan.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Saved plans hold input values (secrets included): only the owner may read them.
fn save_plan(plan: &Plan, path: &Path) -> Result<(), Failure> {
    let bytes = serde_json::to_vec_pretty(plan).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| Failure::Usage(format!("{}: cannot write the plan: {e}", path.display())))?;
    f.write_all(&bytes).and_then(|_| f.write_all(b"\n")).map_err(|e| Failure::Usage(format!("{}: cannot write the plan: {e}", path.display())))
}

/// A saved plan file, if `path` is one (JSON with the plan's binding), else `None`.
pub fn read_plan_file(path: &Path) -> Result<Option<Plan>, Failure> {
    let Ok(bytes) = std::fs::read(path) else { return Ok(None) };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Ok(None);
    }
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    if value.get("binding").is_none() || value.get("format_version").is_none() {
        return Ok(None);
    }
    let major = value["format_version"].as_str().unwrap_or("").split('.').next().unwrap_or("").to_string();
    if major != planner::plan::PLAN_FORMAT_VERSION.split('.').next().unwrap_or("") {
        return Err(Failure::Invalid(format!("{}: plan format version {} is not supported by this rosca (it reads {}.x); make the plan again with this version", path.display(), value["format_version"], planner::plan::PLAN_FORMAT_VERSION.split('.').next().unwrap_or(""))));
    }
    serde_json::from_value(value).map(Some).map_err(|e| Failure::Invalid(format!("{}: not a valid plan file: {e}", path.display())))
}

pub struct ApplyCmd {
    pub args: TemplateArgs,
    pub flags: PlanFlags,
    pub state: StateArgs,
    pub auto_approve: bool,
    pub parallelism: Option<usize>,
    pub destroy: bool,
}

pub fn apply(cmd: ApplyCmd, config: Config) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(config, &cmd.state)?;
    let parallelism = cmd.parallelism.or(ws.config.apply.parallelism).unwrap_or(10);
    let rt = tokio_rt()?;
    let saved = if cmd.destroy || cmd.args.template.is_empty() { None } else { read_plan_file(Path::new(&cmd.args.template))? };
    if let Some(plan) = saved {
        let _lock = ws.lock("apply")?;
        let prior = ws.read_state()?;
        if let Some(why) = workflow::stale_reason(&plan, &prior) {
            return Err(Failure::Invalid(why));
        }
        if plan.mode == PlanMode::Normal {
            let mut args = cmd.args.clone();
            args.template = plan.binding.template.clone();
            args.load.inputs.clear();
            args.load.input = plan.inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let prepared = workflow::prepare(&args, &ws.config, &ws.workdir).map_err(|e| match e {
                Failure::Invalid(m) | Failure::Usage(m) => Failure::Invalid(format!("the saved plan's template cannot be read any more: {m}")),
            })?;
            if prepared.digest != plan.binding.digest {
                return Err(Failure::Invalid(format!(
                    "Saved plan is stale: the template, its imports, its scripts or its inputs changed since the plan was made ({}). Run `rosca plan` again and apply the new plan.",
                    plan.binding.template
                )));
            }
        }
        let refreshed = prior.clone();
        return finish_apply(&ws, &plan, prior, &refreshed, parallelism, &rt);
    }
    let prepared: Option<Prepared> = if cmd.destroy && cmd.args.template.is_empty() {
        None
    } else if cmd.destroy {
        None
    } else {
        Some(workflow::prepare(&cmd.args, &ws.config, &ws.workdir)?)
    };
    let _lock = ws.lock(if cmd.destroy { "destroy" } else { "apply" })?;
    let prior = ws.read_state()?;
    let mode = if cmd.destroy { PlanMode::Destroy } else { PlanMode::Normal };
    let (plan, refreshed) = workflow::make_plan(&ws, prepared.as_ref(), &prior, &settings(&cmd.flags, mode), &rt)?;
    print!("{}", render::human(&plan, &human_opts(false)));
    if !plan.has_changes() {
        // Nothing to do; the state still learns what refresh found.
        if !plan.drift.is_empty() {
            return finish_apply(&ws, &plan, prior, &refreshed, parallelism, &rt);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !cmd.auto_approve {
        confirm(cmd.destroy)?;
    }
    finish_apply(&ws, &plan, prior, &refreshed, parallelism, &rt)
}

fn confirm(destroy: bool) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage("no terminal to ask for approval: run in a terminal, or pass --auto-approve to apply without asking".into()));
    }
    if destroy {
        println!("\nDo you really want to destroy all resources?\n  Rosca will destroy all the resources managed in this state, as shown above.\n  There is no undo. Only 'yes' will be accepted to confirm.\n");
    } else {
        println!("\nDo you want to perform these actions?\n  Rosca will perform the actions described above.\n  Only 'yes' will be accepted to approve.\n");
    }
    print!("  Enter a value: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::Usage(format!("cannot read the answer: {e}")))?;
    if line.trim() != "yes" {
        return Err(Failure::Invalid(if destroy { "Destroy cancelled." } else { "Apply cancelled." }.into()));
    }
    Ok(())
}

fn finish_apply(ws: &Workspace, plan: &Plan, prior: state::StateDoc, refreshed: &state::StateDoc, parallelism: usize, rt: &tokio::runtime::Runtime) -> Result<ExitCode, Failure> {
    let steps = plan.changes.iter().map(|c| c.action.json_actions().len()).filter(|_| true).sum::<usize>()
        - plan.changes.iter().filter(|c| c.action == planner::Action::NoOp || c.action == planner::Action::Read).count();
    let progress = Arc::new(Progress::new(steps, std::io::stderr().is_terminal()));
    if plan.has_changes() {
        println!();
    }
    let (report, doc) = workflow::run_apply(ws, plan, prior, refreshed, parallelism, rt, progress.clone())?;
    progress.finish();
    let summary = format!("Resources: {} added, {} changed, {} destroyed.", report.added, report.changed, report.destroyed);
    if report.ok() {
        let verb = if plan.mode == PlanMode::Destroy { "Destroy" } else { "Apply" };
        println!("\n{verb} complete! {summary}");
        print_outputs(&doc);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("\nApply failed. {summary}");
    if !report.done.is_empty() {
        eprintln!("  Succeeded: {}", report.done.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>().join(", "));
    }
    // Provider messages usually start with the address already: do not say it twice.
    let message = |a: &str, m: &str| -> String { m.strip_prefix(a).and_then(|r| r.strip_prefix(": ")).unwrap_or(m).to_string() };
    for (a, _, m) in &report.failed {
        eprintln!("  Failed:    {a}: {}", message(a, m).lines().next().unwrap_or(""));
    }
    if !report.skipped.is_empty() {
        eprintln!("  Skipped:   {} (a dependency failed)", report.skipped.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>().join(", "));
    }
    if let Some(e) = &report.state_error {
        eprintln!("  State:     {e}");
    }
    eprintln!("\nThe state records what was done. Fix the cause and run `rosca apply` again to finish; failed instances are replaced (tainted).");
    for (a, _, m) in &report.failed {
        eprintln!("\nError: {a}: {}", message(a, m));
    }
    Ok(ExitCode::from(1))
}

pub fn print_outputs(doc: &state::StateDoc) {
    if doc.outputs.is_empty() {
        return;
    }
    println!("\nOutputs:\n");
    for (name, o) in &doc.outputs {
        let v = if o.sensitive { "<sensitive>".to_string() } else { serde_json::to_string(&o.value).unwrap_or_default() };
        println!("{name} = {v}");
    }
}

pub fn refresh(args: TemplateArgs, state_args: StateArgs, config: Config) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(config, &state_args)?;
    let rt = tokio_rt()?;
    let _lock = ws.lock("refresh")?;
    let prior = ws.read_state()?;
    let _ = args;
    let registry = ws.registry()?;
    let (doc, drift, warnings) = rt.block_on(workflow::refresh(&prior, &registry, ws.config.apply.parallelism.unwrap_or(10)));
    for w in warnings {
        eprintln!("warning: {w}");
    }
    if drift.is_empty() {
        println!("No changes outside Rosca: the state matches what the providers report.");
        return Ok(ExitCode::SUCCESS);
    }
    let writer = state::StateWriter::new(ws.backend.clone(), prior);
    for d in &drift {
        match doc.resource(&d.address) {
            Some(r) => writer.put(r.clone()),
            None => writer.remove(&d.address),
        }
        .map_err(|e| Failure::Invalid(e.to_string()))?;
        println!("{}: {}", d.address, if d.kind == "gone" { "gone (removed from state)" } else { "changed outside Rosca (attributes updated)" });
    }
    writer.finish().map_err(|e| Failure::Invalid(e.to_string()))?;
    println!("\nState updated: {} resource(s) changed outside Rosca.", drift.len());
    Ok(ExitCode::SUCCESS)
}

pub fn show(planfile: Option<PathBuf>, json: bool, state_args: StateArgs, config: Config) -> Result<ExitCode, Failure> {
    if let Some(p) = planfile {
        let plan = read_plan_file(&p)?.ok_or_else(|| Failure::Invalid(format!("{}: not a Rosca plan file (make one with `rosca plan --out FILE`)", p.display())))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&render::json(&plan)).unwrap_or_default());
        } else {
            print!("{}", render::human(&plan, &human_opts(false)));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ws = Workspace::open(config, &state_args)?;
    let doc = ws.read_state()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&crate::state_cmd::redacted_json(&doc)).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    if doc.resources.is_empty() {
        println!("The state is empty: nothing has been applied (or everything was destroyed).");
        return Ok(ExitCode::SUCCESS);
    }
    for r in &doc.resources {
        print!("{}", crate::state_cmd::describe(r));
    }
    print_outputs(&doc);
    Ok(ExitCode::SUCCESS)
}

pub fn graph(args: Option<TemplateArgs>, plan_file: Option<PathBuf>, format: GraphFormat, state_args: StateArgs, config: Config) -> Result<ExitCode, Failure> {
    let plan = match (plan_file, args) {
        (Some(p), _) => read_plan_file(&p)?.ok_or_else(|| Failure::Invalid(format!("{}: not a Rosca plan file", p.display())))?,
        (None, Some(args)) => {
            let ws = Workspace::open(config, &state_args)?;
            let prepared = workflow::prepare(&args, &ws.config, &ws.workdir)?;
            let rt = tokio_rt()?;
            let prior = ws.read_state()?;
            let flags = PlanFlags { targets: vec![], replace: vec![], refresh: false };
            workflow::make_plan(&ws, Some(&prepared), &prior, &settings(&flags, PlanMode::Normal), &rt)?.0
        }
        (None, None) => return Err(Failure::Usage("give a TEMPLATE or --plan FILE".into())),
    };
    print!("{}", render::graph(&plan, format));
    Ok(ExitCode::SUCCESS)
}

pub fn output(name: Option<String>, json: bool, state_args: StateArgs, config: Config) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(config, &state_args)?;
    let doc = ws.read_state()?;
    match name {
        Some(n) => {
            let o = doc.outputs.get(&n).ok_or_else(|| Failure::Invalid(format!("no output named `{n}` in the state (outputs: {})", doc.outputs.keys().cloned().collect::<Vec<_>>().join(", "))))?;
            // Asked for by name: the value itself, sensitive or not (like `terraform output NAME`).
            match (&o.value, json) {
                (serde_json::Value::String(s), false) => println!("{s}"),
                (v, _) => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
            }
        }
        None if json => {
            let m: serde_json::Map<String, serde_json::Value> = doc
                .outputs
                .iter()
                .map(|(k, o)| (k.clone(), serde_json::json!({"value": if o.sensitive { serde_json::Value::Null } else { o.value.clone() }, "sensitive": o.sensitive})))
                .collect();
            println!("{}", serde_json::to_string_pretty(&m).unwrap_or_default());
        }
        None => {
            if doc.outputs.is_empty() {
                println!("No outputs in the state.");
            }
            for (k, o) in &doc.outputs {
                let v = if o.sensitive { "<sensitive>".to_string() } else { serde_json::to_string(&o.value).unwrap_or_default() };
                println!("{k} = {v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
