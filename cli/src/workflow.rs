//! The plan/apply workflow behind `plan`, `apply`, `destroy`, `refresh` and `graph`: compile
//! the template, open and lock the state, refresh, plan, and apply through the providers.

use crate::config::Config;
use crate::{compile, render, TemplateArgs};
use planner::plan::{Drift, Plan, PlanMode};
use planner::{PlanRequest, Registry};
use providers::Provider;
use sha2::{Digest, Sha256};
use state::{LockInfo, StateBackend, StateDoc, StateWriter};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Options shared by every command that reads or writes state.
#[derive(clap::Args, Clone, Debug)]
pub struct StateArgs {
    /// State file (default: `[backend] path` of rosca.toml, else ./rosca.state.json).
    #[arg(long, global = true)]
    pub state: Option<PathBuf>,
    /// How long to wait for the state lock (`0s`, `10s`, `2m`).
    #[arg(long, global = true, default_value = "0s", value_name = "DURATION")]
    pub lock_timeout: String,
    /// Do not take the state lock (dangerous when others may write the state).
    #[arg(long = "lock", global = true, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub lock: bool,
    /// Longest time one action may take while applying: a script, a server to boot, a batch job
    /// to finish (`30m`, `2h`; default `[apply] timeout` of rosca.toml, else 10m).
    #[arg(long, global = true, value_name = "DURATION")]
    pub timeout: Option<String>,
}

pub struct Workspace {
    pub config: Config,
    pub backend: Arc<dyn StateBackend>,
    pub lock_timeout: Duration,
    pub locking: bool,
    /// `--timeout`, over `[apply] timeout`.
    pub action_timeout: Option<Duration>,
    /// Where providers keep what they create (`.rosca/`).
    pub workdir: PathBuf,
}

/// Held while a command works on the state; released on drop.
pub struct Locked {
    backend: Arc<dyn StateBackend>,
    id: Option<String>,
}

impl Drop for Locked {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            if let Err(e) = self.backend.unlock(&id) {
                eprintln!("warning: could not release the state lock {id}: {e}; run `rosca state force-unlock {id}` if it stays");
            }
        }
    }
}

impl Workspace {
    /// Errors are usage errors (exit 2): a bad `--lock-timeout`, an unavailable backend.
    pub fn open(config: Config, args: &StateArgs) -> Result<Workspace, Failure> {
        Workspace::open_inner(config, args).map_err(Failure::Usage)
    }

    fn open_inner(config: Config, args: &StateArgs) -> Result<Workspace, String> {
        let backend = crate::backend::open(&config, args.state.clone())?;
        let lock_timeout = state::parse_duration(&args.lock_timeout).map_err(|e| format!("--lock-timeout: {e}"))?;
        let workdir = config.apply.workdir.as_ref().map(|p| config.resolve(p)).unwrap_or_else(|| PathBuf::from(".rosca"));
        let workdir = std::path::absolute(&workdir).unwrap_or(workdir);
        let action_timeout = args.timeout.as_deref().map(state::parse_duration).transpose().map_err(|e| format!("--timeout: {e}"))?;
        Ok(Workspace { backend, lock_timeout, locking: args.lock, action_timeout, workdir, config })
    }

    pub fn lock(&self, operation: &str) -> Result<Locked, String> {
        if !self.locking {
            return Ok(Locked { backend: self.backend.clone(), id: None });
        }
        let info = LockInfo::new(operation, self.backend.location());
        match state::lock_with_timeout(self.backend.as_ref(), &info, self.lock_timeout) {
            Ok(()) => Ok(Locked { backend: self.backend.clone(), id: Some(info.id) }),
            Err(state::LockError::Held(holder)) => Err(format!(
                "Error acquiring the state lock: the state is locked by another operation.\n\n{}\n\nRosca acquires a lock on the state so that two runs cannot write it at once. Wait for the other run to finish, retry with a longer --lock-timeout, or, if that run is gone, release the lock with `rosca state force-unlock {}`.",
                state::render_lock_info(&holder),
                holder.id
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn read_state(&self) -> Result<StateDoc, String> {
        Ok(self.backend.read().map_err(|e| e.to_string())?.unwrap_or_else(|| StateDoc::new(String::new())))
    }

    pub fn registry(&self) -> Result<Registry, String> {
        let mut r = Registry::new(self.config.providers.default.clone().unwrap_or_else(|| "local".into()));
        r.add("local", Arc::new(providers::local::LocalProvider::with_workdir(&self.workdir)) as Arc<dyn Provider>);
        let sites = self.config.sites()?;
        for (name, site) in &sites {
            r.add(name.clone(), site.clone());
        }
        for (ty, p) in &self.config.providers.types {
            if r.get(p).is_none() {
                return Err(format!("rosca.toml [providers.types]: `{ty}` maps to provider `{p}`, which is not available (available: {})", r.names().collect::<Vec<_>>().join(", ")));
            }
        }
        for (ty, p) in self.config.type_mappings(&sites) {
            r.map_type(ty, p);
        }
        Ok(r)
    }
}

/// A compiled template ready to plan: topology, where its artifacts live, and its digest.
pub struct Prepared {
    pub topology: tosca::topology::Topology,
    pub base_dir: PathBuf,
    pub template: String,
    pub digest: String,
}

/// Compiles the template; errors (with their rendered diagnostics) stop here.
pub fn prepare(args: &TemplateArgs, config: &Config, workdir: &Path) -> Result<Prepared, Failure> {
    let mut args = args.clone();
    let mut base_dir = template_dir(&args.template);
    if is_zip(&args.template) {
        let dir = extract_csar(Path::new(&args.template), workdir).map_err(Failure::Usage)?;
        args.template = dir.display().to_string();
        base_dir = dir;
    }
    let compiled = compile(&args, config).map_err(Failure::Usage)?;
    if compiled.has_errors() {
        eprint!("{}", render::human(&compiled.sources, &compiled.diagnostics, render::use_color()));
        return Err(Failure::Invalid(format!("{}: the template is invalid; fix the errors above", args.template)));
    }
    let warnings = compiled.diagnostics.iter().filter(|d| !d.is_error()).count();
    if warnings > 0 {
        eprint!("{}", render::human(&compiled.sources, &compiled.diagnostics, render::use_color()));
    }
    let mut h = Sha256::new();
    // The template's files, not the sources that carry input values (`-i` arguments, --inputs
    // files): those are hashed below as values, so a saved plan (which re-reads its inputs as
    // `-i` arguments) and a plan given the same values another way agree.
    let input_files: Vec<String> = args.load.inputs.iter().map(|p| p.display().to_string()).collect();
    for (_, f) in compiled.sources.iter().filter(|(_, f)| !f.name.starts_with("<-i ") && !input_files.contains(&f.name)) {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    let (inputs, _) = planner::planning::inputs_of(&compiled.topology);
    h.update(serde_json::to_vec(&inputs).unwrap_or_default());
    hash_artifacts(&compiled.topology, &base_dir, &mut h);
    let digest = format!("sha256:{:x}", h.finalize());
    let template = args.template.clone();
    Ok(Prepared { topology: compiled.topology, base_dir, template, digest })
}

/// Scripts are part of what a plan was made from: a changed script makes a saved plan stale.
fn hash_artifacts(topo: &tosca::topology::Topology, base_dir: &Path, h: &mut Sha256) {
    let mut files = std::collections::BTreeSet::new();
    for node in topo.nodes.values() {
        for iface in node.interfaces.values() {
            for op in iface.operations.values() {
                if let Some(i) = &op.implementation {
                    files.insert(node.artifacts.get(i).map(|a| a.file.clone()).unwrap_or_else(|| i.clone()));
                }
            }
        }
        for a in node.artifacts.values() {
            files.insert(a.file.clone());
        }
    }
    for f in files {
        h.update(f.as_bytes());
        if let Ok(bytes) = std::fs::read(base_dir.join(&f)) {
            h.update(&bytes);
        }
    }
}

fn template_dir(template: &str) -> PathBuf {
    let p = Path::new(template);
    let dir = if p.is_dir() { p.to_path_buf() } else { p.parent().map(Path::to_path_buf).unwrap_or_default() };
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    std::path::absolute(&dir).unwrap_or(dir)
}

fn is_zip(template: &str) -> bool {
    let p = Path::new(template);
    p.is_file() && std::fs::File::open(p).ok().and_then(|mut f| {
        use std::io::Read;
        let mut magic = [0u8; 4];
        f.read_exact(&mut magic).ok().map(|_| magic == *b"PK\x03\x04")
    }) == Some(true)
}

/// Unpacks a CSAR archive under the workdir (keyed by its digest), so its scripts can run.
fn extract_csar(path: &Path, workdir: &Path) -> Result<PathBuf, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let digest = format!("{:x}", Sha256::digest(&bytes));
    let dir = workdir.join("csar").join(&digest[..16]);
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("{}: not a readable CSAR archive: {e}", path.display()))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(name) = file.enclosed_name() else {
            return Err(format!("{}: entry `{}` escapes the archive; refusing to unpack it", path.display(), file.name()));
        };
        let out = dir.join(name);
        if file.is_dir() {
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let mut w = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        std::io::copy(&mut (&mut file).take(1 << 30), &mut w).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    std::fs::write(dir.join(".complete"), b"").map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}
use std::io::Read as _;

/// How a command failed: exit 1 for invalid input and failed operations, 2 for usage errors.
#[derive(Debug)]
pub enum Failure {
    Invalid(String),
    Usage(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Invalid(s)
    }
}

/// Reads every resource through its provider, in parallel; returns the refreshed document
/// and what changed outside Rosca.
pub async fn refresh(prior: &StateDoc, registry: &Registry, parallelism: usize) -> (StateDoc, Vec<Drift>, Vec<String>) {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallelism.max(1)));
    let mut set = tokio::task::JoinSet::new();
    // The tasks share one copy of the document (which becomes the refreshed one) instead of
    // a copy of their resource each.
    let shared = Arc::new(prior.clone());
    for (i, r) in prior.resources.iter().enumerate() {
        if r.status != state::ResourceStatus::Created {
            continue;
        }
        let Some(p) = registry.get(&r.provider).cloned() else { continue };
        let doc = shared.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let _g = sem.acquire_owned().await;
            (i, p.read(&doc.resources[i]).await)
        });
    }
    let mut results = BTreeMap::new();
    while let Some(j) = set.join_next().await {
        if let Ok((i, res)) = j {
            results.insert(i, res);
        }
    }
    drop(set);
    let mut doc = Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone());
    let mut drift = Vec::new();
    let mut warnings = Vec::new();
    let mut gone: HashSet<&str> = HashSet::new();
    for (i, res) in results {
        let r = &prior.resources[i];
        match res {
            Ok(None) => {
                drift.push(Drift { address: r.address.clone(), kind: "gone".into(), before: serde_json::Value::Object(r.attributes.clone()), after: serde_json::Value::Null });
                gone.insert(&r.address);
            }
            Ok(Some(realized)) => {
                // Most resources have not changed: compare before copying anything.
                if realized.observed.is_none() && realized.tainted.is_none() && realized.attributes.iter().all(|(k, v)| r.attributes.get(k) == Some(v)) {
                    continue;
                }
                let mut updated = r.clone();
                for (k, v) in realized.attributes {
                    updated.attributes.insert(k, v);
                }
                if let Some(observed) = realized.observed {
                    overlay(&mut updated.config, observed);
                    updated.private = realized.private;
                }
                if let Some(reason) = &realized.tainted {
                    updated.status = state::ResourceStatus::Tainted;
                    warnings.push(format!("{}: {reason}; it is tainted and will be replaced", r.address));
                }
                if updated.attributes != r.attributes || updated.config != r.config || updated.status != r.status {
                    let side = |res: &state::ResourceState| {
                        let mut m = res.attributes.clone();
                        if updated.config != r.config {
                            m.insert("config".into(), res.config.clone());
                        }
                        serde_json::Value::Object(m)
                    };
                    drift.push(Drift { address: r.address.clone(), kind: "changed".into(), before: side(r), after: side(&updated) });
                    doc.put(updated);
                }
            }
            Err(e) => warnings.push(format!("{}: refresh failed: {e}; planning with the recorded state", r.address)),
        }
    }
    // One pass for every resource found gone (a removal each would be quadratic).
    if !gone.is_empty() {
        doc.resources.retain(|r| !gone.contains(r.address.as_str()));
    }
    (doc, drift, warnings)
}

/// Writes the leaves of `patch` over `base`, object by object.
fn overlay(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                overlay(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

pub struct PlanSettings {
    pub mode: PlanMode,
    pub refresh: bool,
    pub replace: Vec<String>,
    pub targets: Vec<String>,
}

/// Refresh (optionally) and plan. Returns the plan and the refreshed state.
pub fn make_plan(ws: &Workspace, prepared: Option<&Prepared>, prior: &StateDoc, settings: &PlanSettings, rt: &tokio::runtime::Runtime) -> Result<(Plan, StateDoc), Failure> {
    let registry = ws.registry()?;
    let (refreshed, drift) = if settings.refresh && !prior.resources.is_empty() {
        let (doc, drift, warnings) = rt.block_on(refresh(prior, &registry, ws.config.apply.parallelism.unwrap_or(10)));
        for w in warnings {
            eprintln!("warning: {w}");
        }
        (doc, drift)
    } else {
        (prior.clone(), Vec::new())
    };
    let empty = tosca::topology::Topology::default();
    let (topology, base_dir, template, digest) = match prepared {
        Some(p) => (&p.topology, p.base_dir.clone(), p.template.clone(), p.digest.clone()),
        None => (&empty, PathBuf::from("."), prior.template.as_ref().map(|t| t.path.clone()).unwrap_or_default(), prior.template.as_ref().map(|t| t.digest.clone()).unwrap_or_default()),
    };
    let req = PlanRequest {
        topology,
        prior: &refreshed,
        registry: &registry,
        mode: settings.mode,
        replace: settings.replace.clone(),
        targets: settings.targets.clone(),
        base_dir,
        template,
        digest,
        refreshed: settings.refresh,
        drift,
        created: planner::time::now(),
    };
    let mut plan = planner::plan(&req).map_err(|e| Failure::Invalid(e.to_string()))?;
    // A saved plan binds to the state as read, before refresh.
    plan.binding.lineage = prior.lineage.clone();
    plan.binding.serial = prior.serial;
    Ok((plan, refreshed))
}

/// Why a saved plan cannot be applied to this state, if it cannot.
pub fn stale_reason(plan: &Plan, current: &StateDoc) -> Option<String> {
    if !plan.binding.lineage.is_empty() && plan.binding.lineage != current.lineage {
        return Some(format!(
            "Saved plan does not match the given state: it was made for state lineage {}, this state has lineage {}. Make a new plan against this state.",
            plan.binding.lineage,
            if current.lineage.is_empty() { "(none: the state is empty)" } else { &current.lineage }
        ));
    }
    if plan.binding.serial != current.serial || (plan.binding.lineage.is_empty() && !current.lineage.is_empty()) {
        return Some(format!(
            "Saved plan is stale: the state was changed by another operation after the plan was made (plan made at serial {}, state is now at serial {}). Run `rosca plan` again and apply the new plan.",
            plan.binding.serial, current.serial
        ));
    }
    None
}

/// Asks every provider the plan changes something with whether it can work (credentials,
/// endpoints), so a wrong password stops the apply before anything is created.
fn preflight(plan: &Plan, registry: &Registry, rt: &tokio::runtime::Runtime) -> Result<(), Failure> {
    let used: std::collections::BTreeSet<&str> =
        plan.changes.iter().filter(|c| c.action != planner::Action::NoOp).map(|c| c.provider.as_str()).collect();
    for name in used {
        if let Some(p) = registry.get(name) {
            rt.block_on(p.preflight()).map_err(|e| Failure::Invalid(format!("{}; nothing was changed", e.message)))?;
        }
    }
    Ok(())
}

/// Applies `plan` with state persisted through a writer; returns the report and final state.
pub fn run_apply(ws: &Workspace, plan: &Plan, prior: StateDoc, refreshed: &StateDoc, parallelism: usize, rt: &tokio::runtime::Runtime, observer: Arc<dyn planner::Observer>) -> Result<(planner::ApplyReport, StateDoc), Failure> {
    let registry = ws.registry()?;
    preflight(plan, &registry, rt)?;
    let writer = StateWriter::new(ws.backend.clone(), prior.clone());
    // What refresh found is recorded first, so the state matches reality before any change.
    for d in &plan.drift {
        let res = match refreshed.resource(&d.address) {
            Some(r) => writer.put(r.clone()),
            None => writer.remove(&d.address),
        };
        res.map_err(|e| Failure::Invalid(e.to_string()))?;
    }
    let opts = planner::ApplyOptions {
        parallelism,
        provider_limits: ws.config.apply.provider_limits.clone().into_iter().collect(),
        workdir: ws.workdir.clone(),
        timeout: match ws.action_timeout {
            Some(t) => t,
            None => ws.config.apply.timeout.as_deref().map(state::parse_duration).transpose().map_err(|e| Failure::Usage(format!("rosca.toml [apply] timeout: {e}")))?.unwrap_or(Duration::from_secs(600)),
        },
        progress_every: Duration::from_secs(10),
    };
    let report = rt.block_on(planner::apply(plan, &registry, writer.clone(), &opts, observer));
    let doc = writer.finish().map_err(|e| Failure::Invalid(format!("{e}; the changes so far are in the state journal and the next command replays it")))?;
    Ok((report, doc))
}
