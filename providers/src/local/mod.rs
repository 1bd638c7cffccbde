//! `local`, the embedded default provider (SPEC §6): realizes TOSCA nodes on this machine.
//!
//! - `tosca.nodes.Compute` → a sandbox directory `<workdir>/sandboxes/<address>-<8 hex>`
//!   (marked by a `.rosca-sandbox` file holding the id).
//! - `tosca.nodes.BlockStorage` / `tosca.nodes.Storage.BlockStorage` → a directory
//!   `<workdir>/volumes/<address>-<8 hex>` whose `.rosca-volume.json` records id and size.
//! - A node with lifecycle scripts → its `Standard` and relationship `Configure` operations run
//!   with `sh` in the sandbox of its host chain's root (or its own sandbox when it has no host),
//!   logs in `<sandbox>/.rosca-logs/<address>/<operation>.log`.
//! - Anything else → a "null" resource: an id and `tosca_id`/`tosca_name`, no IO at all.
//!
//! What `delete` needs (resolved `stop`/`delete` operations, directories) is kept in
//! `Realized.private`, so a node can be destroyed after it left the template. A create
//! interrupted before its result was recorded (a `pending` record: no id, no `private`) is
//! found by name: deleting it removes `<workdir>/sandboxes|volumes/<address>-<8 hex>`
//! directories carrying their marker, when the provider knows the workdir (`with_workdir`).

mod exec;
mod volume;

use crate::api::{
    ApplyRequest, BoxFuture, OperationSpec, Provider, ProviderError, ProviderSchema, Realized,
    RelationshipSpec, ResourceSchema,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use state::ResourceState;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const COMPUTE: &str = "tosca.nodes.Compute";
pub const BLOCK_STORAGE: [&str; 2] = ["tosca.nodes.BlockStorage", "tosca.nodes.Storage.BlockStorage"];
pub const ROOT: &str = "tosca.nodes.Root";

/// File inside a sandbox that marks it as made by this provider (holds the id).
pub const SANDBOX_MARKER: &str = ".rosca-sandbox";
/// Directory inside a sandbox holding per-instance, per-operation logs.
pub const LOG_DIR: &str = ".rosca-logs";

/// Standard operations in the order a create runs them (with relationship steps between).
const STANDARD_CREATE: [&str; 3] = ["create", "configure", "start"];
/// Operations whose resolved specs are kept in `private` for `delete`, in the order run.
const TEARDOWN: [&str; 2] = ["stop", "delete"];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Compute,
    BlockStorage,
    Software,
    #[default]
    Null,
}

/// `Realized.private` of this provider.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Private {
    kind: Kind,
    /// The directory this resource owns and removes on delete: a Compute's or hostless
    /// component's sandbox, a volume directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir: Option<PathBuf>,
    /// Where its scripts run: its host chain root's sandbox (or `dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cwd: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_dir: Option<PathBuf>,
    /// `stop` and `delete` with inputs resolved and timeout filled in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    operations: BTreeMap<String, OperationSpec>,
    /// Copies of those operations' scripts (in the log dir), used when the original artifact
    /// is gone by the time of the delete (a CSAR unpacked in a temporary directory).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    copies: BTreeMap<String, PathBuf>,
}

/// The embedded default provider. Stateless: everything it needs later is in the state.
pub struct LocalProvider {
    schema: ProviderSchema,
    /// The `workdir` of the requests, for deletes of interrupted creates.
    workdir: Option<PathBuf>,
}

impl Default for LocalProvider {
    fn default() -> Self {
        LocalProvider::new()
    }
}

impl LocalProvider {
    pub fn new() -> LocalProvider {
        LocalProvider { schema: local_schema(), workdir: None }
    }

    /// A provider whose requests use `workdir`: it can then clean up after a create that was
    /// interrupted (killed) before the state learnt what it made.
    pub fn with_workdir(workdir: impl Into<PathBuf>) -> LocalProvider {
        let workdir = workdir.into();
        let workdir = std::path::absolute(&workdir).unwrap_or(workdir);
        LocalProvider { schema: local_schema(), workdir: Some(workdir) }
    }
}

fn local_schema() -> ProviderSchema {
    let res = |node_type: &str, attributes: &[&str]| ResourceSchema {
        node_type: node_type.to_string(),
        force_replace: Vec::new(),
        update_all: true,
        update_in_place: Vec::new(),
        update_notes: Vec::new(),
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
    };
    let compute = ["tosca_id", "tosca_name", "state", "private_address", "public_address", "sandbox"];
    let volume = ["tosca_id", "tosca_name", "state", "size", "volume_id", "path"];
    ProviderSchema {
        name: "local".to_string(),
        resources: vec![
            res(COMPUTE, &compute),
            res(BLOCK_STORAGE[0], &volume),
            res(BLOCK_STORAGE[1], &volume),
            res(ROOT, &["tosca_id", "tosca_name", "state"]),
        ],
    }
}

impl Provider for LocalProvider {
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }

    fn create<'a>(&'a self, req: &'a ApplyRequest) -> BoxFuture<'a, Result<Realized, ProviderError>> {
        Box::pin(create(req))
    }

    fn update<'a>(
        &'a self,
        prior: &'a ResourceState,
        req: &'a ApplyRequest,
        operations: &'a [String],
    ) -> BoxFuture<'a, Result<Realized, ProviderError>> {
        Box::pin(update(prior, req, operations))
    }

    fn read<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<Option<Realized>, ProviderError>> {
        Box::pin(async move { read(prior) })
    }

    fn delete<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(delete(prior, self.workdir.as_deref()))
    }
}

fn classify(types: &[String]) -> Kind {
    for t in types {
        if t == COMPUTE {
            return Kind::Compute;
        }
        if BLOCK_STORAGE.contains(&t.as_str()) {
            return Kind::BlockStorage;
        }
    }
    Kind::Software
}

/// Whether the request has any script to run.
fn has_lifecycle(req: &ApplyRequest) -> bool {
    req.operations.values().any(|o| o.implementation.is_some())
        || req.relationships.iter().any(|r| r.operations.values().any(|o| o.implementation.is_some()))
}

fn new_id() -> String {
    format!("local-{}", uuid::Uuid::new_v4().simple())
}

/// An address as a file name: `web[0]` → `web-0`; nothing but `[A-Za-z0-9_.-]`, no leading dot.
pub fn safe_name(address: &str) -> String {
    let mut s: String = address
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '-' })
        .collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.starts_with('.') || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

/// The part of an id that makes a directory name unique.
fn short(id: &str) -> &str {
    let hex = id.strip_prefix("local-").unwrap_or(id);
    hex.get(..8).unwrap_or(hex)
}

fn base_attributes(attrs: &mut Map<String, Value>, id: &str, node: &str) {
    attrs.insert("tosca_id".into(), Value::String(id.to_string()));
    attrs.insert("tosca_name".into(), Value::String(node.to_string()));
}

/// The fast path: no process, no file.
fn null_realized(req: &ApplyRequest, id: String, mut attributes: Map<String, Value>) -> Realized {
    base_attributes(&mut attributes, &id, &req.node);
    Realized { id, attributes, outputs: BTreeMap::new(), private: json!({"kind": "null"}), observed: None, tainted: None }
}

fn err(message: String) -> ProviderError {
    ProviderError::new(message)
}

fn partial_err(message: String, realized: Realized) -> ProviderError {
    ProviderError { message, retryable: false, partial: Some(Box::new(realized)) }
}

fn make_sandbox(dir: &Path, id: &str) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create sandbox {}: {e}", dir.display()))?;
    let marker = dir.join(SANDBOX_MARKER);
    if !marker.exists() {
        fs::write(&marker, format!("{id}\n")).map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    }
    Ok(())
}

fn path_value(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

/// Makes (or re-makes, on update) what the node's kind needs on disk, sets the kind's
/// attributes and returns the directory its scripts run in. Validation comes before any IO.
fn place(
    req: &ApplyRequest,
    id: &str,
    private: &mut Private,
    attrs: &mut Map<String, Value>,
) -> Result<PathBuf, String> {
    let workdir = std::path::absolute(&req.workdir)
        .map_err(|e| format!("working directory {}: {e}", req.workdir.display()))?;
    let own = |private: &Private, sub: &str| {
        private
            .dir
            .clone()
            .unwrap_or_else(|| workdir.join(sub).join(format!("{}-{}", safe_name(&req.address), short(id))))
    };
    match private.kind {
        Kind::Compute => {
            let dir = own(private, "sandboxes");
            make_sandbox(&dir, id)?;
            attrs.insert("private_address".into(), json!("127.0.0.1"));
            attrs.insert("public_address".into(), json!("127.0.0.1"));
            attrs.insert("sandbox".into(), path_value(&dir));
            attrs.insert("state".into(), json!("started"));
            private.dir = Some(dir.clone());
            Ok(dir)
        }
        Kind::BlockStorage => {
            let size = volume::size_of(&req.config)?;
            let dir = own(private, "volumes");
            fs::create_dir_all(&dir).map_err(|e| format!("cannot create volume {}: {e}", dir.display()))?;
            volume::write_record(&dir, &volume::Record { id: id.to_string(), size })
                .map_err(|e| format!("cannot record volume size in {}: {e}", dir.display()))?;
            attrs.insert("size".into(), size.map_or(Value::Null, Value::from));
            attrs.insert("volume_id".into(), json!(id));
            attrs.insert("path".into(), path_value(&dir));
            attrs.insert("state".into(), json!("available"));
            private.dir = Some(dir.clone());
            Ok(dir)
        }
        Kind::Software | Kind::Null => match req.hosts.last() {
            Some(root) => {
                let sandbox = root.attributes.get("sandbox").and_then(Value::as_str).ok_or_else(|| {
                    format!(
                        "its host `{}` has no local sandbox (attribute `sandbox`): the local provider runs \
                         scripts only on hosts it realized",
                        root.address
                    )
                })?;
                Ok(PathBuf::from(sandbox))
            }
            None => {
                let dir = own(private, "sandboxes");
                make_sandbox(&dir, id)?;
                attrs.insert("sandbox".into(), path_value(&dir));
                private.dir = Some(dir.clone());
                Ok(dir)
            }
        },
    }
}

/// Which relationship operations run on the target's side (in its host's sandbox).
fn target_side(op: &str) -> bool {
    matches!(op, "pre_configure_target" | "post_configure_target" | "add_source" | "remove_source")
}

fn target_cwd(rel: &RelationshipSpec) -> Option<PathBuf> {
    rel.target_host
        .as_ref()
        .and_then(|h| h.attributes.get("sandbox"))
        .or_else(|| rel.target_attributes.get("sandbox"))
        .and_then(Value::as_str)
        .map(PathBuf::from)
}

/// An input value as an environment variable: strings as they are, null as empty, anything
/// else as compact JSON.
fn env_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Who runs an operation, for its environment, log and error messages.
struct Ctx<'a> {
    address: &'a str,
    node: &'a str,
    id: &'a str,
    log_dir: &'a Path,
}

struct Op<'a> {
    /// `Standard.create`, `Configure.pre_configure_source`.
    key: &'a str,
    /// File name (without extension) of its log and outputs.
    log_name: &'a str,
    script: &'a Path,
    inputs: &'a Map<String, Value>,
    timeout: Duration,
    cwd: &'a Path,
    extra_env: Vec<(String, String)>,
}

/// Runs one operation whose inputs are resolved. Errors name the address, operation, script,
/// exit status and log, and quote the log's last lines, never an input value.
async fn run_op(ctx: &Ctx<'_>, op: Op<'_>) -> Result<Map<String, Value>, String> {
    let Ctx { address, node, id, log_dir } = *ctx;
    let key = op.key;
    let script = op.script;
    if !script.is_file() {
        return Err(format!("{address}: {key}: implementation artifact {} not found", script.display()));
    }
    if !op.cwd.is_dir() {
        return Err(format!("{address}: {key}: sandbox {} does not exist", op.cwd.display()));
    }
    let (log, outputs) = exec::log_paths(log_dir, op.log_name);
    let mut env = Vec::with_capacity(op.inputs.len() + op.extra_env.len() + 6);
    for (name, value) in op.inputs {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!("{address}: {key}: input `{name}` cannot be passed as an environment variable"));
        }
        let value = env_value(value);
        if value.contains('\0') {
            return Err(format!("{address}: {key}: input `{name}` contains a NUL character"));
        }
        env.push((name.clone(), value));
    }
    env.extend(op.extra_env);
    for (k, v) in [
        ("ROSCA_OUTPUTS", outputs.to_string_lossy().into_owned()),
        ("ROSCA_NODE", node.to_string()),
        ("ROSCA_ADDRESS", address.to_string()),
        ("ROSCA_ID", id.to_string()),
        ("ROSCA_OPERATION", key.to_string()),
        ("ROSCA_SANDBOX", op.cwd.to_string_lossy().into_owned()),
    ] {
        env.push((k.to_string(), v));
    }
    let run = exec::Script { script, cwd: op.cwd, env, log: &log, outputs: &outputs, timeout: op.timeout };
    exec::run(&run).await.map_err(|e| {
        let mut msg = format!(
            "{address}: {key} failed: `sh {}` {}\n  log: {}",
            script.display(),
            e.what,
            log.display()
        );
        if !e.tail.is_empty() {
            msg.push_str("\n  last lines of the log:");
            for line in e.tail.lines() {
                msg.push_str("\n    | ");
                msg.push_str(line);
            }
        }
        msg
    })
}

/// One create or update in progress: attributes and outputs grow as operations run.
struct Lifecycle<'a> {
    req: &'a ApplyRequest,
    id: String,
    cwd: PathBuf,
    log_dir: PathBuf,
    attributes: Map<String, Value>,
    outputs: BTreeMap<String, Map<String, Value>>,
}

impl Lifecycle<'_> {
    async fn standard(&mut self, op: &str) -> Result<(), String> {
        let req = self.req;
        let Some(spec) = req.operations.get(op) else { return Ok(()) };
        let key = format!("Standard.{op}");
        let cwd = self.cwd.clone();
        self.exec(&key, &key, spec, &cwd, Vec::new()).await
    }

    /// The given relationship operations of every relationship, relationship by relationship.
    async fn relationships(&mut self, ops: &[&str]) -> Result<(), String> {
        let req = self.req;
        for rel in &req.relationships {
            for op in ops {
                let Some(spec) = rel.operations.get(*op) else { continue };
                if spec.implementation.is_none() {
                    continue;
                }
                let cwd = if target_side(op) {
                    target_cwd(rel).ok_or_else(|| {
                        format!(
                            "{}: Configure.{op} of requirement `{}`: target `{}` has no local sandbox to run in",
                            req.address, rel.requirement, rel.target
                        )
                    })?
                } else {
                    self.cwd.clone()
                };
                let key = format!("Configure.{op}");
                let log_name = format!("{key}.{}.{}", safe_name(&rel.requirement), safe_name(&rel.target));
                let env = vec![
                    ("ROSCA_REQUIREMENT".to_string(), rel.requirement.clone()),
                    ("ROSCA_RELATIONSHIP".to_string(), rel.type_name.clone()),
                    ("ROSCA_SOURCE".to_string(), req.address.clone()),
                    ("ROSCA_TARGET".to_string(), rel.target.clone()),
                ];
                self.exec(&key, &log_name, spec, &cwd, env).await?;
            }
        }
        Ok(())
    }

    async fn exec(
        &mut self,
        key: &str,
        log_name: &str,
        spec: &OperationSpec,
        cwd: &Path,
        extra_env: Vec<(String, String)>,
    ) -> Result<(), String> {
        let Some(script) = &spec.implementation else { return Ok(()) };
        let inputs = self.resolve_inputs(key, spec)?;
        let timeout = spec.timeout.map(Duration::from_secs).unwrap_or(self.req.timeout);
        let ctx = Ctx { address: &self.req.address, node: &self.req.node, id: &self.id, log_dir: &self.log_dir };
        let op = Op { key, log_name, script, inputs: &inputs, timeout, cwd, extra_env };
        let outputs = run_op(&ctx, op).await?;
        for (k, v) in &outputs {
            self.attributes.insert(k.clone(), v.clone());
        }
        self.outputs.entry(key.to_string()).or_default().extend(outputs);
        Ok(())
    }

    fn resolve_inputs(&self, key: &str, spec: &OperationSpec) -> Result<Map<String, Value>, String> {
        let mut inputs = Map::new();
        for (name, value) in &spec.inputs {
            let v = self.req.resolver.resolve(value, &self.attributes, &self.outputs).map_err(|e| {
                format!("{}: {key}: input `{name}` could not be resolved: {e}", self.req.address)
            })?;
            inputs.insert(name.clone(), v);
        }
        Ok(inputs)
    }

    /// Everything of a create after the `create` operation.
    async fn after_create(&mut self) -> Result<(), String> {
        self.relationships(&["pre_configure_source", "pre_configure_target"]).await?;
        self.standard(STANDARD_CREATE[1]).await?;
        self.relationships(&["post_configure_source", "post_configure_target"]).await?;
        self.standard(STANDARD_CREATE[2]).await?;
        self.relationships(&["add_target", "add_source"]).await
    }

    /// `stop` and `delete` resolved against the attributes known now, for `private`. When not
    /// `strict` (a create that failed anyway), an input that cannot be resolved is kept as is.
    fn teardown(&self, private: &mut Private, strict: bool) -> Result<(), String> {
        private.operations.clear();
        private.copies.clear();
        let default_secs = self.req.timeout.as_secs_f64().ceil().max(1.0) as u64;
        for op in TEARDOWN {
            let Some(spec) = self.req.operations.get(op) else { continue };
            let Some(script) = &spec.implementation else { continue };
            let key = format!("Standard.{op}");
            let inputs = match self.resolve_inputs(&key, spec) {
                Ok(inputs) => inputs,
                Err(e) if strict => return Err(e),
                Err(_) => spec.inputs.clone(),
            };
            let resolved = OperationSpec {
                implementation: Some(script.clone()),
                inputs,
                timeout: Some(spec.timeout.unwrap_or(default_secs)),
                dependencies: spec.dependencies.clone(),
            };
            private.operations.insert(op.to_string(), resolved);
            let copy = self.log_dir.join("scripts").join(format!("{key}.sh"));
            let copied = fs::create_dir_all(self.log_dir.join("scripts")).and_then(|_| fs::copy(script, &copy));
            if copied.is_ok() {
                private.copies.insert(op.to_string(), copy);
            }
        }
        Ok(())
    }

    fn realized(self, private: &Private) -> Realized {
        Realized {
            id: self.id,
            attributes: self.attributes,
            outputs: self.outputs,
            observed: None, tainted: None,
            private: serde_json::to_value(private).unwrap_or(Value::Null),
        }
    }
}

async fn create(req: &ApplyRequest) -> Result<Realized, ProviderError> {
    let kind = classify(&req.types);
    if kind == Kind::Software && !has_lifecycle(req) {
        return Ok(null_realized(req, new_id(), Map::new()));
    }
    let id = new_id();
    let mut private = Private { kind, ..Private::default() };
    let mut attrs = Map::new();
    base_attributes(&mut attrs, &id, &req.node);
    let cwd = place(req, &id, &mut private, &mut attrs).map_err(|e| err(format!("{}: {e}", req.address)))?;
    let log_dir = cwd.join(LOG_DIR).join(safe_name(&req.address));
    private.cwd = Some(cwd.clone());
    private.log_dir = Some(log_dir.clone());

    let mut lc = Lifecycle { req, id, cwd, log_dir, attributes: attrs, outputs: BTreeMap::new() };
    // Once something exists (a directory we made, or a `create` that succeeded), a failure
    // leaves a tainted resource in the state instead of nothing.
    let mut created = private.dir.is_some();
    let result = match lc.standard(STANDARD_CREATE[0]).await {
        Ok(()) => {
            created = true;
            lc.after_create().await
        }
        Err(e) => Err(e),
    };
    let result = result.and_then(|()| lc.teardown(&mut private, true));
    match result {
        Ok(()) => {
            lc.attributes.insert("state".into(), json!(if kind == Kind::BlockStorage { "available" } else { "started" }));
            Ok(lc.realized(&private))
        }
        Err(message) if created => {
            let _ = lc.teardown(&mut private, false);
            lc.attributes.insert("state".into(), json!("error"));
            Err(partial_err(message, lc.realized(&private)))
        }
        Err(message) => Err(err(message)),
    }
}

fn private_of(prior: &ResourceState) -> Result<Private, ProviderError> {
    match &prior.private {
        Value::Null => Ok(Private::default()),
        v => serde_json::from_value(v.clone())
            .map_err(|e| err(format!("{}: provider data in the state is unreadable: {e}", prior.address))),
    }
}

/// Whether an operation name is one of the relationship `Configure` operations.
fn relationship_op(op: &str) -> bool {
    matches!(
        op,
        "pre_configure_source"
            | "pre_configure_target"
            | "post_configure_source"
            | "post_configure_target"
            | "add_target"
            | "add_source"
            | "remove_target"
            | "remove_source"
            | "target_changed"
    )
}

async fn update(prior: &ResourceState, req: &ApplyRequest, operations: &[String]) -> Result<Realized, ProviderError> {
    let kind = classify(&req.types);
    let mut private = private_of(prior)?;
    let id = prior.id.clone().unwrap_or_else(new_id);
    let mut attrs = prior.attributes.clone();
    if kind == Kind::Software && !has_lifecycle(req) && private.cwd.is_none() {
        let mut r = null_realized(req, id, attrs);
        r.outputs = prior.outputs.clone();
        return Ok(r);
    }
    private.kind = kind;
    base_attributes(&mut attrs, &id, &req.node);
    let cwd = place(req, &id, &mut private, &mut attrs).map_err(|e| err(format!("{}: {e}", req.address)))?;
    let log_dir = cwd.join(LOG_DIR).join(safe_name(&req.address));
    private.cwd = Some(cwd.clone());
    private.log_dir = Some(log_dir.clone());

    let mut lc = Lifecycle { req, id, cwd, log_dir, attributes: attrs, outputs: prior.outputs.clone() };
    let mut result = Ok(());
    for op in operations {
        let op = op.as_str();
        result = if req.operations.contains_key(op) {
            lc.outputs.remove(&format!("Standard.{op}"));
            lc.standard(op).await
        } else if relationship_op(op) {
            lc.outputs.remove(&format!("Configure.{op}"));
            lc.relationships(&[op]).await
        } else {
            Ok(())
        };
        if result.is_err() {
            break;
        }
    }
    match result.and_then(|()| lc.teardown(&mut private, true)) {
        Ok(()) => Ok(lc.realized(&private)),
        Err(message) => {
            let _ = lc.teardown(&mut private, false);
            lc.attributes.insert("state".into(), json!("error"));
            Err(partial_err(message, lc.realized(&private)))
        }
    }
}

fn read(prior: &ResourceState) -> Result<Option<Realized>, ProviderError> {
    let Some(id) = prior.id.clone() else { return Ok(None) };
    let private = private_of(prior)?;
    let mut realized = Realized {
        id,
        attributes: prior.attributes.clone(),
        outputs: prior.outputs.clone(),
        observed: None, tainted: None,
        private: prior.private.clone(),
    };
    let exists = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.is_dir());
    match private.kind {
        Kind::Null => Ok(Some(realized)),
        Kind::Compute => match &private.dir {
            Some(dir) if dir.join(SANDBOX_MARKER).is_file() => {
                let a = &mut realized.attributes;
                a.insert("private_address".into(), json!("127.0.0.1"));
                a.insert("public_address".into(), json!("127.0.0.1"));
                a.insert("sandbox".into(), path_value(dir));
                Ok(Some(realized))
            }
            _ => Ok(None),
        },
        Kind::BlockStorage => match private.dir.as_deref().and_then(|d| volume::read_record(d).map(|r| (d, r))) {
            Some((dir, record)) => {
                let a = &mut realized.attributes;
                a.insert("size".into(), record.size.map_or(Value::Null, Value::from));
                a.insert("path".into(), path_value(dir));
                Ok(Some(realized))
            }
            None => Ok(None),
        },
        Kind::Software => {
            let alive = if private.dir.is_some() { exists(&private.dir) } else { exists(&private.cwd) };
            Ok(alive.then_some(realized))
        }
    }
}

async fn delete(prior: &ResourceState, workdir: Option<&Path>) -> Result<(), ProviderError> {
    if prior.private.is_null() && prior.id.is_none() {
        // A create interrupted before its result was recorded: what it made is known by name only.
        if let Some(workdir) = workdir {
            remove_interrupted(workdir, &prior.address).map_err(|e| err(format!("{}: {e}", prior.address)))?;
        }
        return Ok(());
    }
    let private = private_of(prior)?;
    if private.kind == Kind::Null {
        return Ok(());
    }
    // Scripts run only while the sandbox they ran in exists: when it is gone, so is what they
    // would stop.
    if let (Some(cwd), Some(log_dir)) = (&private.cwd, &private.log_dir) {
        if cwd.is_dir() {
            let id = prior.id.as_deref().unwrap_or("");
            let ctx = Ctx { address: &prior.address, node: &prior.node, id, log_dir };
            for op in TEARDOWN {
                let Some(spec) = private.operations.get(op) else { continue };
                let Some(original) = &spec.implementation else { continue };
                let script = match private.copies.get(op) {
                    Some(copy) if !original.is_file() && copy.is_file() => copy,
                    _ => original,
                };
                let key = format!("Standard.{op}");
                let timeout = Duration::from_secs(spec.timeout.unwrap_or(60).max(1));
                let op = Op { key: &key, log_name: &key, script, inputs: &spec.inputs, timeout, cwd, extra_env: Vec::new() };
                run_op(&ctx, op).await.map_err(err)?;
            }
        }
    }
    if let Some(dir) = &private.dir {
        let marker = if private.kind == Kind::BlockStorage { volume::RECORD } else { SANDBOX_MARKER };
        remove_owned(dir, marker).map_err(|e| err(format!("{}: {e}", prior.address)))?;
    }
    Ok(())
}

/// Removes the directories an interrupted create of `address` may have made: those named
/// `<safe address>-<8 hex>` under `sandboxes/` and `volumes/` that carry their marker.
fn remove_interrupted(workdir: &Path, address: &str) -> Result<(), String> {
    let prefix = format!("{}-", safe_name(address));
    for (sub, marker) in [("sandboxes", SANDBOX_MARKER), ("volumes", volume::RECORD)] {
        let Ok(entries) = fs::read_dir(workdir.join(sub)) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let dir = entry.path();
            if dir.join(marker).is_file() {
                remove_owned(&dir, marker)?;
            }
        }
    }
    Ok(())
}

/// Removes a directory this provider made; refuses one without its marker file (a state
/// edited by hand must not turn a delete into `rm -rf` of something else).
fn remove_owned(dir: &Path, marker: &str) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.join(marker).is_file() {
        return Err(format!("refusing to remove {}: it has no {marker}, so it was not made by rosca", dir.display()));
    }
    // What a script left running there (a server whose create was interrupted before its
    // `stop` was recorded, or whose `stop` did not stop it) goes with the sandbox.
    kill_processes_in(dir);
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("cannot remove {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// Kills (SIGKILL) every process that a lifecycle script started in `dir`: its working
/// directory is `dir` or below, and it inherited `ROSCA_SANDBOX` naming `dir` (so a user's shell
/// that merely `cd`s there is left alone). Linux only (`/proc`); elsewhere nothing is done.
fn kill_processes_in(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let Ok(entries) = fs::read_dir("/proc") else { return };
    let me = std::process::id();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(cwd) = fs::read_link(e.path().join("cwd")) else { continue };
        if !cwd.starts_with(&dir) {
            continue;
        }
        let Ok(environ) = fs::read(e.path().join("environ")) else { continue };
        let ours = environ.split(|b| *b == 0).filter_map(|kv| kv.strip_prefix(b"ROSCA_SANDBOX=")).any(|v| {
            let v = Path::new(std::ffi::OsStr::from_bytes(v));
            v.canonicalize().map(|v| v.starts_with(&dir)).unwrap_or(false)
        });
        if ours {
            if let Ok(pid) = i32::try_from(pid) {
                // SAFETY: kill(2) with a pid read from /proc; at worst the process is gone.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_sandbox_kills_what_still_runs_in_it() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("box");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(SANDBOX_MARKER), "x").unwrap();
        let mut started = std::process::Command::new("sleep").arg("60").current_dir(&dir).env("ROSCA_SANDBOX", &dir).spawn().unwrap();
        // A process that only has its working directory there (a user's shell) stays.
        let mut visitor = std::process::Command::new("sleep").arg("60").current_dir(&dir).env_remove("ROSCA_SANDBOX").spawn().unwrap();
        remove_owned(&dir, SANDBOX_MARKER).unwrap();
        let status = started.wait().unwrap();
        assert!(!status.success(), "the background process was not killed");
        assert!(visitor.try_wait().unwrap().is_none(), "a process rosca did not start was killed");
        let _ = visitor.kill();
        let _ = visitor.wait();
        assert!(!dir.exists());
    }

    #[test]
    fn safe_names() {
        assert_eq!(safe_name("web[0]"), "web-0");
        assert_eq!(safe_name("db"), "db");
        assert_eq!(safe_name("../x"), "_..-x");
        assert_eq!(safe_name(""), "_");
    }

    #[test]
    fn delete_of_an_interrupted_create_removes_its_marked_directories_only() {
        let work = tempfile::tempdir().unwrap();
        let sandboxes = work.path().join("sandboxes");
        let mk = |name: &str, marker: bool| {
            let d = sandboxes.join(name);
            fs::create_dir_all(&d).unwrap();
            if marker {
                fs::write(d.join(SANDBOX_MARKER), "x\n").unwrap();
            }
            d
        };
        let orphan = mk("worker-1-0123abcd", true);
        let unmarked = mk("worker-1-89abcdef", false);
        let other_index = mk("worker-10-0123abcd", true);
        let other_node = mk("worker-1-x-0123abcd", true);
        let pending = ResourceState {
            address: "worker[1]".into(),
            node: "worker".into(),
            index: Some(1),
            type_name: COMPUTE.into(),
            provider: "local".into(),
            site: None,
            id: None,
            status: state::ResourceStatus::Pending,
            pending: None,
            config: Value::Object(Map::new()),
            attributes: Map::new(),
            outputs: BTreeMap::new(),
            sensitive: Vec::new(),
            dependencies: Vec::new(),
            private: Value::Null,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // Without a workdir there is nothing to look in.
        rt.block_on(LocalProvider::new().delete(&pending)).unwrap();
        assert!(orphan.is_dir());
        rt.block_on(LocalProvider::with_workdir(work.path()).delete(&pending)).unwrap();
        assert!(!orphan.exists());
        assert!(unmarked.is_dir() && other_index.is_dir() && other_node.is_dir());
    }

    #[test]
    fn schema_order() {
        let s = local_schema();
        assert_eq!(s.resources.last().unwrap().node_type, ROOT);
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(s.resource_for(&t(&["my.Server", COMPUTE, ROOT])).unwrap().node_type, COMPUTE);
        assert_eq!(s.resource_for(&t(&["my.App", ROOT])).unwrap().node_type, ROOT);
    }
}
