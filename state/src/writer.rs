//! `StateWriter`: the state as an apply changes it, persisted change by change (write-ahead)
//! through `StateBackend::append`, and compacted by one full write at the end.

use crate::backend::{StateBackend, StateError};
use crate::doc::{JournalEntry, OutputState, ResourceState, StateDoc, TemplateRef};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Cheap to clone: clones share one document, so the applier can hand one to every task.
#[derive(Clone)]
pub struct StateWriter {
    shared: Arc<Shared>,
}

struct Shared {
    backend: Arc<dyn StateBackend>,
    state: Mutex<Inner>,
}

struct Inner {
    doc: StateDoc,
    /// Whether this writer changed the document (then the serial was bumped once, and
    /// `finish` writes it).
    changed: bool,
}

impl StateWriter {
    pub fn new(backend: Arc<dyn StateBackend>, doc: StateDoc) -> StateWriter {
        StateWriter { shared: Arc::new(Shared { backend, state: Mutex::new(Inner { doc, changed: false }) }) }
    }

    /// Records a resource (insert or replace by address). Returns once the change is persisted,
    /// so a `pending` record put before a provider call is on disk before the call starts.
    pub fn put(&self, resource: ResourceState) -> Result<(), StateError> {
        self.record(JournalEntry::Put(Box::new(resource)))
    }

    pub fn remove(&self, address: &str) -> Result<(), StateError> {
        self.record(JournalEntry::Remove { address: address.to_string() })
    }

    pub fn set_outputs(&self, outputs: BTreeMap<String, OutputState>) -> Result<(), StateError> {
        self.record(JournalEntry::Outputs(outputs))
    }

    pub fn set_template(
        &self,
        template: Option<TemplateRef>,
        inputs: BTreeMap<String, Value>,
        sensitive_inputs: Vec<String>,
    ) -> Result<(), StateError> {
        self.record(JournalEntry::Template { template, inputs, sensitive_inputs })
    }

    /// Applies `entry` to the document and persists it before returning. An entry that changes
    /// nothing is skipped (so a run without changes keeps its serial). If persisting fails the
    /// change stays in memory (it is what happened) and the error tells the caller to stop.
    pub fn record(&self, entry: JournalEntry) -> Result<(), StateError> {
        let mut inner = self.inner();
        if is_noop(&inner.doc, &entry) {
            return Ok(());
        }
        if !inner.changed {
            inner.changed = true;
            let doc = &mut inner.doc;
            doc.serial = doc.serial.saturating_add(1);
            if doc.lineage.is_empty() {
                doc.lineage = uuid::Uuid::new_v4().to_string();
            }
            doc.rosca_version = env!("CARGO_PKG_VERSION").to_string();
        }
        inner.doc.apply(&entry);
        self.shared.backend.append(&inner.doc, &entry)
    }

    /// The document as it is now (a full copy: O(state size); to look at a few resources per
    /// step, use `with_doc` or `resource`, else N steps copy N times).
    pub fn snapshot(&self) -> StateDoc {
        self.inner().doc.clone()
    }

    /// Runs `f` on the current document without copying it. `f` runs under the writer's lock:
    /// keep it short, and do not call the writer from inside it (that would deadlock).
    pub fn with_doc<R>(&self, f: impl FnOnce(&StateDoc) -> R) -> R {
        f(&self.inner().doc)
    }

    /// One resource as it is now.
    pub fn resource(&self, address: &str) -> Option<ResourceState> {
        self.inner().doc.resource(address).cloned()
    }

    /// Whether anything changed (and so the serial moved).
    pub fn changed(&self) -> bool {
        self.inner().changed
    }

    /// Writes the full document once (folding the journal in) if anything changed, and returns
    /// it. Calling it again rewrites the same document; later changes start a new journal.
    pub fn finish(&self) -> Result<StateDoc, StateError> {
        let inner = self.inner();
        if inner.changed {
            self.shared.backend.write(&inner.doc)?;
        }
        Ok(inner.doc.clone())
    }

    /// A poisoned mutex means a task panicked while holding it; every change is applied and
    /// persisted in one step, so the document is still consistent.
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn is_noop(doc: &StateDoc, entry: &JournalEntry) -> bool {
    match entry {
        JournalEntry::Put(r) => doc.resource(&r.address) == Some(&**r),
        JournalEntry::Remove { address } => doc.resource(address).is_none(),
        JournalEntry::Outputs(o) => &doc.outputs == o,
        JournalEntry::Template { template, inputs, sensitive_inputs } => {
            &doc.template == template && &doc.inputs == inputs && &doc.sensitive_inputs == sensitive_inputs
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::{LockError, LockInfo};
    use crate::doc::ResourceStatus;
    use crate::local::LocalBackend;

    pub(crate) fn res(address: &str, id: &str) -> ResourceState {
        ResourceState {
            address: address.into(),
            node: address.split('[').next().unwrap_or(address).into(),
            index: None,
            type_name: "tosca.nodes.Root".into(),
            provider: "local".into(),
            site: None,
            id: Some(id.into()),
            status: ResourceStatus::Created,
            pending: None,
            config: Value::Null,
            attributes: Default::default(),
            outputs: Default::default(),
            sensitive: vec![],
            dependencies: vec![],
            private: Value::Null,
        }
    }

    /// Counts calls, keeps nothing.
    #[derive(Default)]
    struct Counting {
        appends: Mutex<Vec<(u64, JournalEntry)>>,
        writes: Mutex<Vec<StateDoc>>,
    }

    impl StateBackend for Counting {
        fn location(&self) -> String {
            "mem".into()
        }
        fn read(&self) -> Result<Option<StateDoc>, StateError> {
            Ok(None)
        }
        fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
            self.writes.lock().unwrap().push(doc.clone());
            Ok(())
        }
        fn append(&self, doc: &StateDoc, entry: &JournalEntry) -> Result<(), StateError> {
            self.appends.lock().unwrap().push((doc.serial, entry.clone()));
            Ok(())
        }
        fn lock(&self, _: &LockInfo) -> Result<(), LockError> {
            Ok(())
        }
        fn unlock(&self, _: &str) -> Result<(), LockError> {
            Ok(())
        }
        fn lock_holder(&self) -> Result<Option<LockInfo>, LockError> {
            Ok(None)
        }
        fn force_unlock(&self, _: &str) -> Result<(), LockError> {
            Ok(())
        }
        fn list(&self) -> Result<Vec<String>, StateError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn serial_bumps_once_and_lineage_is_made() {
        let backend = Arc::new(Counting::default());
        let mut start = StateDoc::new(String::new());
        start.serial = 7;
        let w = StateWriter::new(backend.clone(), start);
        w.put(res("a", "1")).unwrap();
        w.put(res("b", "2")).unwrap();
        w.remove("a").unwrap();
        let doc = w.finish().unwrap();
        assert_eq!(doc.serial, 8);
        assert!(uuid::Uuid::parse_str(&doc.lineage).is_ok());
        let serials: Vec<u64> = backend.appends.lock().unwrap().iter().map(|a| a.0).collect();
        assert_eq!(serials, [8, 8, 8]);
        assert_eq!(backend.writes.lock().unwrap().len(), 1);
    }

    #[test]
    fn no_change_keeps_serial_and_skips_write() {
        let backend = Arc::new(Counting::default());
        let mut start = StateDoc::new("L".into());
        start.serial = 3;
        start.put(res("a", "1"));
        let w = StateWriter::new(backend.clone(), start.clone());
        w.put(res("a", "1")).unwrap();
        w.remove("absent").unwrap();
        w.set_outputs(BTreeMap::new()).unwrap();
        assert!(!w.changed());
        assert_eq!(w.finish().unwrap(), start);
        assert!(backend.appends.lock().unwrap().is_empty());
        assert!(backend.writes.lock().unwrap().is_empty());
    }

    #[test]
    fn clones_share_the_document_across_threads() {
        let backend = Arc::new(Counting::default());
        let w = StateWriter::new(backend.clone(), StateDoc::new("L".into()));
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        w.put(res(&format!("n{t}[{i}]"), "x")).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(w.snapshot().resources.len(), 400);
        assert_eq!(w.with_doc(|d| d.resources.len()), 400);
        assert_eq!(w.resource("n3[7]").and_then(|r| r.id), Some("x".to_string()));
        assert!(w.resource("n9[0]").is_none());
        assert_eq!(backend.appends.lock().unwrap().len(), 400);
    }

    /// 10,000 changes through the local backend append to the journal and never rewrite the
    /// snapshot: O(N) in all, not N full writes. Checked by the snapshot file staying the same
    /// inode, size and mtime until `finish`.
    #[test]
    fn appends_do_not_rewrite_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rosca.state.json");
        let backend = Arc::new(LocalBackend::new(path.clone()));
        backend.write(&StateDoc::new("L".into())).unwrap();
        let meta = || {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&path).unwrap();
            (m.ino(), m.len(), m.modified().unwrap())
        };
        let before = meta();
        let start = backend.read().unwrap().unwrap();
        let w = StateWriter::new(backend.clone(), start);
        for i in 0..10_000 {
            w.put(res(&format!("n[{i}]"), &i.to_string())).unwrap();
        }
        assert_eq!(meta(), before, "an append rewrote the snapshot");
        let journal_lines = std::fs::read_to_string(backend.journal_path()).unwrap().lines().count();
        assert_eq!(journal_lines, 10_001);
        assert_eq!(backend.read().unwrap().unwrap(), w.snapshot());
        let done = w.finish().unwrap();
        assert_ne!(meta(), before);
        assert!(!backend.journal_path().exists());
        assert_eq!(backend.read().unwrap().unwrap(), done);
        assert_eq!(done.serial, 1);
    }
}
