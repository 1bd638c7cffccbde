//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::{json, Value};
use state::{ResourceState, ResourceStatus};

pub fn res(address: &str, id: &str) -> ResourceState {
    let (node, index) = match state::doc::address_key(address) {
        (node, Some(i)) => (node.to_string(), u32::try_from(i).ok()),
        (node, None) => (node.to_string(), None),
    };
    ResourceState {
        address: address.into(),
        node,
        index,
        type_name: "tosca.nodes.Compute".into(),
        provider: "local".into(),
        site: None,
        id: Some(id.into()),
        status: ResourceStatus::Created,
        pending: None,
        config: json!({"properties": {"name": address}}),
        attributes: json!({"ip": "10.0.0.1"}).as_object().cloned().unwrap_or_default(),
        outputs: Default::default(),
        sensitive: vec![],
        dependencies: vec![],
        private: Value::Null,
    }
}

/// Names of the files in `dir`, sorted.
pub fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
