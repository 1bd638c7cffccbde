//! The state document (SPEC §5, docs/state.md): plain data, serialized byte-stable.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Version of the state document's schema. A reader refuses a higher major version.
pub const STATE_VERSION: u32 = 1;

/// One deployment's (or workspace's) state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    pub version: u32,
    /// Bumped on every content change; a saved plan binds to it.
    pub serial: u64,
    /// A UUID made on the first write; a saved plan binds to it.
    pub lineage: String,
    pub rosca_version: String,
    /// The template last applied: its path as given and the digest of template, imports,
    /// artifacts and inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
    /// Input values last applied (sensitive ones included: the state is a secret-bearing
    /// document, like Terraform's; names in `sensitive_inputs` are never printed).
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive_inputs: Vec<String>,
    /// Sorted by address (node name, then numeric index).
    #[serde(default)]
    pub resources: Vec<ResourceState>,
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputState>,
    /// The whole document, encrypted (`state::encrypt`): then everything above but `version`,
    /// `serial`, `lineage` and `rosca_version` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
}

/// An encrypted state document (AES-256-GCM; base64 fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// `AES-256-GCM`.
    pub scheme: String,
    /// `none` (a raw 256-bit key) or `pbkdf2-sha256-<iterations>` (a passphrase).
    pub kdf: String,
    pub salt: String,
    /// First 8 bytes of SHA-256 of the key, hex: which key sealed it.
    pub key_id: String,
    pub nonce: String,
    pub data: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub path: String,
    pub digest: String,
}

/// One realized (or being realized) node instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// `node` or `node[index]`.
    pub address: String,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(rename = "type")]
    pub type_name: String,
    /// Provider that realized it (`local`, `openstack`, ...).
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Physical id reported by the provider; absent while a create is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: ResourceStatus,
    /// What was being attempted when `status` is `pending` (write-ahead record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingOp>,
    /// The configuration applied: `{"properties": {...}, "capabilities": {...}}`.
    #[serde(default)]
    pub config: Value,
    /// Attributes reported by the provider and by operation outputs.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Outputs of lifecycle operations, `Standard.create` → name → value (for
    /// `get_operation_output`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Map<String, Value>>,
    /// Paths (dotted, into `config` and `attributes`) whose values are sensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
    /// Addresses this instance depends on (requirements and hosting), for destroy order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Provider-private data needed later (e.g. to run `stop`/`delete` after the node left
    /// the template). Opaque to everyone else.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub private: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    Created,
    /// A provider call was started and its result is not known: the next plan must read it.
    Pending,
    /// Created but its lifecycle failed part-way: the next plan replaces it.
    Tainted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOp {
    /// `create`, `update`, `delete`.
    pub action: String,
    /// RFC 3339 time the call started.
    pub started: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputState {
    pub value: Value,
    #[serde(default)]
    pub sensitive: bool,
}

impl StateDoc {
    /// An empty state of a new lineage.
    pub fn new(lineage: String) -> StateDoc {
        StateDoc {
            version: STATE_VERSION,
            serial: 0,
            lineage,
            rosca_version: env!("CARGO_PKG_VERSION").to_string(),
            template: None,
            inputs: BTreeMap::new(),
            sensitive_inputs: Vec::new(),
            resources: Vec::new(),
            outputs: BTreeMap::new(),
            sealed: None,
        }
    }

    pub fn resource(&self, address: &str) -> Option<&ResourceState> {
        self.find(address).ok().map(|i| &self.resources[i])
    }

    /// Index of `address` in the sorted resources, or where it would go.
    fn find(&self, address: &str) -> Result<usize, usize> {
        let key = address_key(address);
        self.resources
            .binary_search_by(|r| address_key(&r.address).cmp(&key))
    }

    /// Inserts or replaces the resource at its address, keeping the order.
    pub fn put(&mut self, resource: ResourceState) {
        match self.find(&resource.address) {
            Ok(i) => self.resources[i] = resource,
            Err(i) => self.resources.insert(i, resource),
        }
    }

    pub fn remove(&mut self, address: &str) -> Option<ResourceState> {
        self.find(address).ok().map(|i| self.resources.remove(i))
    }

    /// Applies one journal entry.
    pub fn apply(&mut self, entry: &JournalEntry) {
        match entry {
            JournalEntry::Put(r) => self.put((**r).clone()),
            JournalEntry::Remove { address } => {
                self.remove(address);
            }
            JournalEntry::Outputs(o) => self.outputs = o.clone(),
            JournalEntry::Template { template, inputs, sensitive_inputs } => {
                self.template = template.clone();
                self.inputs = inputs.clone();
                self.sensitive_inputs = sensitive_inputs.clone();
            }
        }
    }

    /// The document as written: JSON, 2-space indented, object keys sorted at every level, a
    /// final newline. Equal documents give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let value = canonical(serde_json::to_value(self).unwrap_or(Value::Null));
        let mut out = serde_json::to_vec_pretty(&value).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a state document, refusing an unknown major version.
    pub fn from_bytes(bytes: &[u8]) -> Result<StateDoc, String> {
        let doc: StateDoc = serde_json::from_slice(bytes).map_err(|e| {
            format!("not a Rosca state document: {e} (line {}, column {})", e.line(), e.column())
        })?;
        if doc.version > STATE_VERSION {
            return Err(format!(
                "state version {} is newer than this rosca understands ({STATE_VERSION}); upgrade rosca",
                doc.version
            ));
        }
        Ok(doc)
    }
}

/// What a redacted document shows instead of a sensitive value.
pub const MASK: &str = "(sensitive value)";

impl StateDoc {
    /// A copy fit to show: sensitive inputs, sensitive config paths and sensitive outputs
    /// masked, provider-private data dropped. The state itself keeps the values.
    pub fn redacted(&self) -> StateDoc {
        let mut doc = self.clone();
        for name in &doc.sensitive_inputs {
            if let Some(v) = doc.inputs.get_mut(name) {
                *v = MASK.into();
            }
        }
        for r in doc.resources.iter_mut() {
            *r = r.redacted();
        }
        for o in doc.outputs.values_mut().filter(|o| o.sensitive) {
            o.value = MASK.into();
        }
        doc
    }
}

impl ResourceState {
    /// The resource with its sensitive config paths masked and no provider-private data.
    pub fn redacted(&self) -> ResourceState {
        let mut r = self.clone();
        for path in &self.sensitive {
            let segs: Vec<&str> = path.split('.').collect();
            mask_path(&mut r.config, &segs);
        }
        r.private = Value::Null;
        r
    }
}

fn mask_path(v: &mut Value, segs: &[&str]) {
    let Some((first, rest)) = segs.split_first() else {
        *v = MASK.into();
        return;
    };
    if let Some(next) = v.get_mut(*first) {
        mask_path(next, rest);
    }
}

/// Sort key of an address: node name, then numeric index (so `a[2]` < `a[10]`).
pub fn address_key(address: &str) -> (&str, Option<u64>) {
    match address.strip_suffix(']').and_then(|s| s.rsplit_once('[')) {
        Some((node, idx)) => match idx.parse() {
            Ok(i) => (node, Some(i)),
            Err(_) => (address, None),
        },
        None => (address, None),
    }
}

/// `value` with every object's keys sorted (byte-stable output whatever the insertion order).
pub fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// One change to a state, as appended to a journal between full writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalEntry {
    Put(Box<ResourceState>),
    Remove { address: String },
    /// Written as `{"op":"outputs","outputs":{...}}`: with the map's entries inlined beside
    /// `op`, an output named `op` would clash with the tag.
    Outputs(#[serde(with = "outputs_field")] BTreeMap<String, OutputState>),
    Template {
        template: Option<TemplateRef>,
        inputs: BTreeMap<String, Value>,
        sensitive_inputs: Vec<String>,
    },
}

/// (De)serializes the outputs of `JournalEntry::Outputs` under an `outputs` key.
mod outputs_field {
    use super::OutputState;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Out<'a> {
        outputs: &'a BTreeMap<String, OutputState>,
    }
    #[derive(Deserialize)]
    struct In {
        outputs: BTreeMap<String, OutputState>,
    }

    pub fn serialize<S: Serializer>(outputs: &BTreeMap<String, OutputState>, s: S) -> Result<S::Ok, S::Error> {
        Out { outputs }.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, OutputState>, D::Error> {
        In::deserialize(d).map(|i| i.outputs)
    }
}
