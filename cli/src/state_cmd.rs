//! `rosca state list|show|pull|push|rm|mv|force-unlock`: inspect and repair the state without
//! touching real resources.

use crate::config::Config;
use crate::workflow::{Failure, StateArgs, Workspace};
use serde_json::Value;
use state::{ResourceState, StateDoc, StateWriter};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum StateCommand {
    /// List the addresses in the state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one instance (sensitive values masked).
    Show {
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the raw state document (it may contain secrets).
    Pull,
    /// Replace the state with a document from FILE (or `-` for stdin).
    Push {
        file: String,
        /// Accept a different lineage or an older serial.
        #[arg(long)]
        force: bool,
    },
    /// Forget instances without destroying them.
    Rm {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Rename an instance in the state (e.g. after renaming its node template).
    Mv { from: String, to: String },
    /// List the states (workspaces) the backend holds.
    Workspaces,
    /// Re-encrypt the state with the current key of [backend.encryption] (opening it with the
    /// old key, or reading it plain when allow_plaintext is set).
    Rekey,
    /// Copy the state to another backend (a TOML file with a `[backend]` table), with both
    /// locked; refuses a target that already has a state unless --force.
    Migrate {
        /// A TOML file whose `[backend]` table is the target.
        #[arg(long)]
        to: PathBuf,
        /// Replace a state the target already has.
        #[arg(long)]
        force: bool,
    },
    /// Release a lock left by a run that died.
    ForceUnlock {
        lock_id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
}

/// The state as JSON with sensitive values masked (`StateDoc::redacted`).
pub fn redacted_json(doc: &StateDoc) -> Value {
    serde_json::to_value(doc.redacted()).unwrap_or(Value::Null)
}

/// Human description of one instance.
pub fn describe(r: &ResourceState) -> String {
    let r = r.redacted();
    let mut out = format!("# {} ({}, provider {}){}\n", r.address, r.type_name, r.provider, match r.status {
        state::ResourceStatus::Created => String::new(),
        state::ResourceStatus::Tainted => " [tainted]".into(),
        state::ResourceStatus::Pending => format!(" [pending {}]", r.pending.as_ref().map(|p| p.action.as_str()).unwrap_or("")),
    });
    if let Some(id) = &r.id {
        out.push_str(&format!("    id = {id}\n"));
    }
    if let Some(Value::Object(props)) = r.config.get("properties") {
        for (k, v) in props {
            out.push_str(&format!("    {k} = {v}\n"));
        }
    }
    for (k, v) in &r.attributes {
        out.push_str(&format!("    {k} = {v}\n"));
    }
    out.push('\n');
    out
}

pub fn run(cmd: StateCommand, state_args: StateArgs, config: Config) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(config, &state_args)?;
    match cmd {
        StateCommand::List { json } => {
            let doc = ws.read_state()?;
            if json {
                let list: Vec<Value> = doc.resources.iter().map(|r| serde_json::json!({"address": r.address, "type": r.type_name, "provider": r.provider, "status": r.status})).collect();
                println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
            } else {
                for r in &doc.resources {
                    println!("{}", r.address);
                }
            }
        }
        StateCommand::Show { address, json } => {
            let doc = ws.read_state()?;
            let r = doc.resource(&address).ok_or_else(|| not_found(&doc, &address))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.redacted()).unwrap_or_default());
            } else {
                print!("{}", describe(r));
            }
        }
        StateCommand::Pull => {
            let doc = ws.read_state()?;
            std::io::stdout().write_all(&doc.to_bytes()).map_err(|e| Failure::Usage(e.to_string()))?;
        }
        StateCommand::Push { file, force } => {
            let bytes = if file == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(|e| Failure::Usage(format!("stdin: {e}")))?;
                b
            } else {
                std::fs::read(PathBuf::from(&file)).map_err(|e| Failure::Usage(format!("{file}: {e}")))?
            };
            let new = StateDoc::from_bytes(&bytes).map_err(|e| Failure::Invalid(format!("{file}: {e}")))?;
            let _lock = ws.lock("state-push")?;
            let cur = ws.read_state()?;
            if !force && !cur.lineage.is_empty() && new.lineage != cur.lineage {
                return Err(Failure::Invalid(format!("{file}: lineage {} differs from the current state's {}: it is another deployment's state. Use --force to replace it anyway.", new.lineage, cur.lineage)));
            }
            if !force && new.serial < cur.serial {
                return Err(Failure::Invalid(format!("{file}: serial {} is older than the current state's {}: pushing it would lose changes. Use --force to replace it anyway.", new.serial, cur.serial)));
            }
            // As Terraform: a saved plan binds to (lineage, serial), so other content under the
            // same serial would let a plan made for one state apply to another.
            if !force && !cur.lineage.is_empty() && new.serial == cur.serial && new.to_bytes() != cur.to_bytes() {
                return Err(Failure::Invalid(format!("{file}: has the same serial {} as the current state but other content: bump its serial to replace the state, or use --force to replace it anyway.", new.serial)));
            }
            ws.backend.write(&new).map_err(|e| Failure::Invalid(e.to_string()))?;
            println!("State replaced ({} resources, serial {}).", new.resources.len(), new.serial);
        }
        StateCommand::Rm { addresses } => {
            let _lock = ws.lock("state-rm")?;
            let doc = ws.read_state()?;
            for a in &addresses {
                if doc.resource(a).is_none() {
                    return Err(not_found(&doc, a));
                }
            }
            let writer = StateWriter::new(ws.backend.clone(), doc);
            for a in &addresses {
                writer.remove(a).map_err(|e| Failure::Invalid(e.to_string()))?;
                println!("Removed {a} from the state (the resource itself was not destroyed).");
            }
            writer.finish().map_err(|e| Failure::Invalid(e.to_string()))?;
        }
        StateCommand::Mv { from, to } => {
            let _lock = ws.lock("state-mv")?;
            let doc = ws.read_state()?;
            let r = doc.resource(&from).ok_or_else(|| not_found(&doc, &from))?.clone();
            if doc.resource(&to).is_some() {
                return Err(Failure::Invalid(format!("{to} is already in the state; remove it first with `rosca state rm {to}`")));
            }
            let (node, index) = split_address(&to).ok_or_else(|| Failure::Usage(format!("`{to}` is not an address (NODE or NODE[INDEX])")))?;
            let mut moved = r;
            moved.address = to.clone();
            moved.node = node;
            moved.index = index;
            let writer = StateWriter::new(ws.backend.clone(), doc);
            writer.remove(&from).and_then(|_| writer.put(moved)).and_then(|_| writer.finish().map(|_| ())).map_err(|e| Failure::Invalid(e.to_string()))?;
            println!("Moved {from} to {to}.");
        }
        StateCommand::Workspaces => {
            for name in ws.backend.list().map_err(|e| Failure::Invalid(e.to_string()))? {
                println!("{name}");
            }
        }
        StateCommand::Migrate { to, force } => migrate(&ws, &to, force)?,
        StateCommand::Rekey => {
            if ws.config.backend.encryption.is_none() {
                return Err(Failure::Usage("rekey needs [backend.encryption] in rosca.toml (the new key, and the old one as old_key_env / old_key_file / old_passphrase_env)".into()));
            }
            let _lock = ws.lock("state-rekey")?;
            let doc = ws.backend.read().map_err(|e| Failure::Invalid(e.to_string()))?.ok_or_else(|| Failure::Invalid("there is no state to re-encrypt".into()))?;
            ws.backend.write(&doc).map_err(|e| Failure::Invalid(e.to_string()))?;
            println!("The state is now encrypted with the current key ({} resources, serial {}).", doc.resources.len(), doc.serial);
        }
        StateCommand::ForceUnlock { lock_id, force } => {
            if !force {
                if !std::io::stdin().is_terminal() {
                    return Err(Failure::Usage("force-unlock asks for confirmation: run it in a terminal or pass --force".into()));
                }
                if let Ok(Some(h)) = ws.backend.lock_holder() {
                    println!("{}", state::render_lock_info(&h));
                }
                print!("Do you really want to force-unlock {lock_id}? Rosca will remove the lock on the state, which could cause corruption if another run is still using it.\n  Only 'yes' will be accepted to confirm.\n\n  Enter a value: ");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                if line.trim() != "yes" {
                    return Err(Failure::Invalid("force-unlock cancelled".into()));
                }
            }
            ws.backend.force_unlock(&lock_id).map_err(|e| Failure::Invalid(e.to_string()))?;
            println!("The state has been unlocked (lock {lock_id}).");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies the state to the backend of `to`, both locked for the copy.
fn migrate(ws: &Workspace, to: &std::path::Path, force: bool) -> Result<(), Failure> {
    let target_config = crate::config::Config::load(Some(to)).map_err(Failure::Usage)?;
    let target = crate::backend::open(&target_config, None).map_err(Failure::Usage)?;
    if target.location() == ws.backend.location() {
        return Err(Failure::Usage(format!("{}: the target is the state itself ({})", to.display(), target.location())));
    }
    let _source_lock = ws.lock("state-migrate")?;
    let info = state::LockInfo::new("state-migrate", target.location());
    state::lock_with_timeout(target.as_ref(), &info, ws.lock_timeout).map_err(|e| match e {
        state::LockError::Held(h) => Failure::Invalid(format!("the target state is locked by another operation:\n{}", state::render_lock_info(&h))),
        other => Failure::Invalid(other.to_string()),
    })?;
    let result = (|| {
        let doc = ws.backend.read().map_err(|e| Failure::Invalid(e.to_string()))?.ok_or_else(|| {
            Failure::Invalid(format!("{} holds no state: nothing to migrate", ws.backend.location()))
        })?;
        if let Some(existing) = target.read().map_err(|e| Failure::Invalid(e.to_string()))? {
            if !force && (existing.serial > 0 || !existing.resources.is_empty()) {
                return Err(Failure::Invalid(format!(
                    "{} already holds a state ({} resources, serial {}, lineage {}); pass --force to replace it",
                    target.location(),
                    existing.resources.len(),
                    existing.serial,
                    existing.lineage
                )));
            }
        }
        target.write(&doc).map_err(|e| Failure::Invalid(e.to_string()))?;
        println!("Migrated the state ({} resources, serial {}) from {} to {}.", doc.resources.len(), doc.serial, ws.backend.location(), target.location());
        println!("Point [backend] of rosca.toml at the new backend before the next run.");
        Ok(())
    })();
    let _ = target.unlock(&info.id);
    result
}

fn not_found(doc: &StateDoc, address: &str) -> Failure {
    let known: Vec<&str> = doc.resources.iter().map(|r| r.address.as_str()).take(10).collect();
    Failure::Invalid(format!("no instance `{address}` in the state (it has: {})", if known.is_empty() { "nothing".to_string() } else { known.join(", ") }))
}

fn split_address(a: &str) -> Option<(String, Option<u32>)> {
    match a.strip_suffix(']').and_then(|s| s.rsplit_once('[')) {
        Some((n, i)) => Some((n.to_string(), Some(i.parse().ok()?))),
        None if !a.is_empty() && !a.contains(['[', ']']) => Some((a.to_string(), None)),
        None => None,
    }
}
