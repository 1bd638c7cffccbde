//! The document is byte-stable: bytes → doc → bytes is the identity, and the order in which
//! resources, map keys or journal entries arrived does not show in the bytes.

use proptest::prelude::*;
use serde_json::{Map, Value};
use state::{JournalEntry, OutputState, PendingOp, ResourceState, ResourceStatus, StateDoc, TemplateRef};
use std::collections::BTreeMap;

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(("[a-z.]{1,8}", json()), 0..4).prop_map(|kv| kv.into_iter().collect())
}

fn resource() -> impl Strategy<Value = ResourceState> {
    (
        "[a-z_]{1,6}",
        prop::option::of(0u32..20),
        prop_oneof![Just(ResourceStatus::Created), Just(ResourceStatus::Pending), Just(ResourceStatus::Tainted)],
        prop::option::of("[a-z0-9-]{1,10}"),
        json(),
        object(),
        prop::collection::btree_map("Standard\\.[a-z]{1,6}", object(), 0..2),
        prop::collection::vec("[a-z.]{1,6}", 0..3),
        json(),
    )
        .prop_map(|(node, index, status, id, config, attributes, outputs, deps, private)| ResourceState {
            address: match index {
                Some(i) => format!("{node}[{i}]"),
                None => node.clone(),
            },
            node,
            index,
            type_name: "tosca.nodes.Compute".into(),
            provider: "local".into(),
            site: id.as_ref().map(|_| "site-a".to_string()),
            pending: (status == ResourceStatus::Pending)
                .then(|| PendingOp { action: "create".into(), started: "2026-01-01T00:00:00Z".into() }),
            id,
            status,
            config,
            attributes,
            outputs,
            sensitive: vec![],
            dependencies: deps,
            private,
        })
}

fn doc() -> impl Strategy<Value = (StateDoc, Vec<ResourceState>)> {
    (
        any::<u64>(),
        "[0-9a-f-]{0,36}",
        prop::option::of(("[a-z/.]{1,12}", "[0-9a-f]{8}")),
        prop::collection::btree_map("[a-z_]{1,6}", json(), 0..3),
        prop::collection::vec(resource(), 0..8),
        prop::collection::btree_map("[a-z_]{1,6}", (json(), any::<bool>()), 0..3),
    )
        .prop_map(|(serial, lineage, template, inputs, resources, outputs)| {
            let mut doc = StateDoc::new(lineage);
            doc.serial = serial;
            doc.template = template.map(|(path, digest)| TemplateRef { path, digest });
            doc.inputs = inputs;
            doc.outputs =
                outputs.into_iter().map(|(k, (value, sensitive))| (k, OutputState { value, sensitive })).collect();
            for r in &resources {
                doc.put(r.clone());
            }
            (doc, resources)
        })
}

/// `value` with every object's keys in reverse order (same content, other insertion order).
fn reversed(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.reverse();
            Value::Object(entries.into_iter().map(|(k, v)| (k, reversed(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(reversed).collect()),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bytes_round_trip((doc, _) in doc()) {
        let bytes = doc.to_bytes();
        let back = StateDoc::from_bytes(&bytes).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&back, &doc);
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn insertion_order_does_not_change_bytes((doc, resources) in doc(), seed in any::<u64>()) {
        let mut shuffled = resources.clone();
        // Deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut other = StateDoc::new(doc.lineage.clone());
        other.serial = doc.serial;
        other.template = doc.template.clone();
        other.inputs = doc.inputs.clone();
        other.outputs = doc.outputs.clone();
        // Later duplicates of an address win in `doc`; replay the same winners.
        let winners: BTreeMap<String, ResourceState> =
            resources.iter().map(|r| (r.address.clone(), r.clone())).collect();
        for r in shuffled {
            let mut r = winners[&r.address].clone();
            r.config = reversed(r.config);
            r.attributes = reversed(Value::Object(r.attributes)).as_object().cloned().unwrap_or_default();
            other.put(r);
        }
        prop_assert_eq!(other.to_bytes(), doc.to_bytes());
    }

    #[test]
    fn journal_entries_round_trip(r in resource()) {
        let entry = JournalEntry::Put(Box::new(r));
        let line = serde_json::to_vec(&entry).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: JournalEntry = serde_json::from_slice(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, entry);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = StateDoc::from_bytes(&bytes);
    }
}

#[test]
fn resources_sort_by_node_then_numeric_index() {
    let mut doc = StateDoc::new("L".into());
    for a in ["b", "a[10]", "a[2]", "a"] {
        let mut r: ResourceState = serde_json::from_value(serde_json::json!({
            "address": a, "node": "n", "type": "T", "provider": "p", "status": "created"
        }))
        .unwrap();
        r.address = a.into();
        doc.put(r);
    }
    let order: Vec<&str> = doc.resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(order, ["a", "a[2]", "a[10]", "b"]);
}

/// The example in docs/state.md is a real document, in its canonical bytes.
#[test]
fn docs_example_is_canonical() {
    let md = include_str!("../../docs/state.md");
    let start = md.find("```json\n").expect("json block") + "```json\n".len();
    let len = md[start..].find("```").expect("block end");
    let example = &md[start..start + len];
    let doc = StateDoc::from_bytes(example.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(doc.to_bytes()).unwrap(), example);
}

#[test]
fn an_output_named_op_survives_the_journal() {
    let mut outputs = BTreeMap::new();
    outputs.insert("op".to_string(), OutputState { value: Value::from(1), sensitive: false });
    let entry = JournalEntry::Outputs(outputs);
    let line = serde_json::to_string(&entry).unwrap();
    let back: Result<JournalEntry, _> = serde_json::from_str(&line);
    assert_eq!(back.ok(), Some(entry), "{line}");
}
