//! The conformance suite every `StateBackend` passes (issue 6): the same cases, run by each
//! backend's test file against a real store (`suite(&|| backend on one state)`).
//!
//! `make` returns a new, independent handle on the same state (a second process would hold the
//! same); the state starts empty.

#![allow(dead_code)]

use state::{lock_with_timeout, JournalEntry, LockError, LockInfo, OutputState, ResourceState, StateBackend, StateDoc, StateError};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type Make<'a> = &'a (dyn Fn() -> Box<dyn StateBackend> + Sync);

fn held(err: LockError) -> LockInfo {
    match err {
        LockError::Held(info) => *info,
        other => panic!("expected Held, got {other:?}"),
    }
}

fn doc(serial: u64, lineage: &str, addresses: &[String]) -> StateDoc {
    let mut d = StateDoc::new(lineage.to_string());
    d.serial = serial;
    for a in addresses {
        d.put(resource(a));
    }
    d
}

fn resource(address: &str) -> ResourceState {
    ResourceState {
        address: address.into(),
        node: address.split('[').next().unwrap_or(address).into(),
        index: None,
        type_name: "tosca.nodes.Compute".into(),
        provider: "local".into(),
        site: None,
        id: Some(format!("id-{address}")),
        status: state::ResourceStatus::Created,
        pending: None,
        config: serde_json::json!({"properties": {"name": address}}),
        attributes: Default::default(),
        outputs: Default::default(),
        sensitive: vec![],
        dependencies: vec![],
        private: serde_json::Value::Null,
    }
}

/// Every case, in order, on one state.
pub fn suite(make: Make<'_>) {
    empty_then_round_trip(make);
    locks_exclude_and_name_their_holder(make);
    force_unlock_checks_the_id(make);
    lock_timeout_waits_then_gives_the_holder(make);
    a_stale_writer_is_refused(make);
    appends_are_read_back_and_folded_by_write(make);
    an_append_after_another_writers_change_is_refused(make);
    concurrent_read_modify_write_loses_nothing(make);
}

pub fn empty_then_round_trip(make: Make<'_>) {
    let b = make();
    assert!(b.read().unwrap().is_none(), "a new state reads as none");
    let d = doc(1, "lineage-conf", &["a".into(), "b[0]".into()]);
    b.write(&d).unwrap();
    assert_eq!(b.read().unwrap().unwrap(), d);
    // Another handle sees the same bytes.
    assert_eq!(make().read().unwrap().unwrap().to_bytes(), d.to_bytes());
}

pub fn locks_exclude_and_name_their_holder(make: Make<'_>) {
    let (a, b) = (make(), make());
    let info = LockInfo::new("apply", a.location());
    a.lock(&info).unwrap();
    let mine = LockInfo::new("plan", b.location());
    assert_eq!(held(b.lock(&mine).unwrap_err()), info, "the contender learns who holds it");
    assert_eq!(b.lock_holder().unwrap(), Some(info.clone()));
    assert!(matches!(b.unlock(&mine.id), Err(LockError::NotHeld { .. })), "unlocking someone else's lock fails");
    a.unlock(&info.id).unwrap();
    assert_eq!(b.lock_holder().unwrap(), None);
    b.lock(&mine).unwrap();
    b.unlock(&mine.id).unwrap();
}

pub fn force_unlock_checks_the_id(make: Make<'_>) {
    let (a, b) = (make(), make());
    let info = LockInfo::new("apply", a.location());
    a.lock(&info).unwrap();
    assert!(b.force_unlock("not-the-id").is_err());
    assert_eq!(b.lock_holder().unwrap().map(|h| h.id), Some(info.id.clone()));
    match b.force_unlock(&info.id) {
        Ok(()) => {
            // Broken: the next locker gets it.
            let next = LockInfo::new("plan", b.location());
            b.lock(&next).unwrap();
            b.unlock(&next.id).unwrap();
        }
        // Backends whose locks belong to a live process (the OS lock of the local file) refuse
        // while that process runs, saying so.
        Err(LockError::Failed { message, .. }) => {
            assert!(message.contains("still running"), "{message}");
            a.unlock(&info.id).unwrap();
        }
        Err(e) => panic!("force-unlock: {e}"),
    }
}

pub fn lock_timeout_waits_then_gives_the_holder(make: Make<'_>) {
    let (a, b) = (make(), make());
    let info = LockInfo::new("apply", a.location());
    a.lock(&info).unwrap();
    let start = Instant::now();
    let err = lock_with_timeout(b.as_ref(), &LockInfo::new("plan", b.location()), Duration::from_millis(800)).unwrap_err();
    assert_eq!(held(err), info);
    assert!(start.elapsed() >= Duration::from_millis(700), "it waited");
    let a: Arc<dyn StateBackend> = Arc::from(a);
    let releaser = {
        let a = a.clone();
        let id = info.id.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            a.unlock(&id).unwrap();
        })
    };
    let mine = LockInfo::new("plan", b.location());
    lock_with_timeout(b.as_ref(), &mine, Duration::from_secs(20)).unwrap();
    releaser.join().unwrap();
    b.unlock(&mine.id).unwrap();
}

pub fn a_stale_writer_is_refused(make: Make<'_>) {
    let (a, b) = (make(), make());
    let base = a.read().unwrap().unwrap();
    let seen_by_b = b.read().unwrap().unwrap();
    let mut newer = seen_by_b.clone();
    newer.serial += 1;
    newer.put(resource("written-by-b"));
    b.write(&newer).unwrap();
    let mut stale = base.clone();
    stale.serial += 1;
    stale.put(resource("written-by-a"));
    match a.write(&stale) {
        Err(StateError::Conflict { .. }) => {}
        other => panic!("a write from a stale read must be refused, got {other:?}"),
    }
    let now = make().read().unwrap().unwrap();
    assert!(now.resource("written-by-b").is_some() && now.resource("written-by-a").is_none(), "B's update survives");
    // After reading again, A writes.
    let mut fresh = a.read().unwrap().unwrap();
    fresh.serial += 1;
    fresh.remove("written-by-b");
    a.write(&fresh).unwrap();
}

/// What `StateWriter` does: the serial bumped once, then one entry at a time through `append`,
/// each read back by a fresh handle (another process) as soon as `append` returned; then a
/// full write folds the journal in, and appending goes on from there.
pub fn appends_are_read_back_and_folded_by_write(make: Make<'_>) {
    let a = make();
    let mut d = a.read().unwrap().expect("the suite starts from a written state");
    d.serial += 1;
    let mut entries: Vec<JournalEntry> = (0..4).map(|i| JournalEntry::Put(Box::new(resource(&format!("appended[{i}]"))))).collect();
    entries.push(JournalEntry::Remove { address: "appended[1]".into() });
    entries.push(JournalEntry::Outputs([("url".to_string(), OutputState { value: serde_json::json!("http://x"), sensitive: false })].into()));
    let mut pending = resource("appended[0]");
    pending.status = state::ResourceStatus::Pending;
    entries.push(JournalEntry::Put(Box::new(pending)));
    for (i, e) in entries.iter().enumerate() {
        d.apply(e);
        a.append(&d, e).unwrap();
        assert_eq!(make().read().unwrap().unwrap(), d, "after append {i} returned, another handle reads the change");
    }
    assert_eq!(a.read().unwrap().unwrap(), d, "the appending handle reads it too");
    // Appending goes on after that read, then a write folds everything in.
    let e = JournalEntry::Put(Box::new(resource("after-read")));
    d.apply(&e);
    a.append(&d, &e).unwrap();
    a.write(&d).unwrap();
    let b = make();
    assert_eq!(b.read().unwrap().unwrap().to_bytes(), d.to_bytes(), "write folds the journal in");
    // The next run: a new serial, appends on top of the folded state, then its final write.
    let mut next = b.read().unwrap().unwrap();
    next.serial += 1;
    for i in 0..3 {
        let e = JournalEntry::Put(Box::new(resource(&format!("next[{i}]"))));
        next.apply(&e);
        b.append(&next, &e).unwrap();
    }
    assert_eq!(make().read().unwrap().unwrap(), next);
    b.write(&next).unwrap();
    assert_eq!(make().read().unwrap().unwrap(), next);
}

/// Compare-and-swap holds for appends: once another writer changed the state (a full write, or
/// appends of its own), an append from the older view is refused with `Conflict` and the other
/// writer's changes survive; so is a full write from a view that missed another's appends.
pub fn an_append_after_another_writers_change_is_refused(make: Make<'_>) {
    let (a, b) = (make(), make());
    let mut mine = a.read().unwrap().unwrap();
    mine.serial += 1;
    let e = JournalEntry::Put(Box::new(resource("a-first")));
    mine.apply(&e);
    a.append(&mine, &e).unwrap();
    // B reads A's change and writes over it in full.
    let mut theirs = b.read().unwrap().unwrap();
    theirs.serial += 1;
    theirs.put(resource("written-by-b"));
    b.write(&theirs).unwrap();
    let e = JournalEntry::Put(Box::new(resource("a-late")));
    mine.apply(&e);
    match a.append(&mine, &e) {
        Err(StateError::Conflict { .. }) => {}
        other => panic!("an append after another writer's write must be refused, got {other:?}"),
    }
    let now = make().read().unwrap().unwrap();
    assert_eq!(now, theirs, "B's write survives and A's late change is not in it");

    // C and D both read; C appends; D's append and D's write from the older view are refused.
    let (c, d) = (make(), make());
    let mut seen_by_c = c.read().unwrap().unwrap();
    let seen_by_d = d.read().unwrap().unwrap();
    seen_by_c.serial += 1;
    for i in 0..2 {
        let e = JournalEntry::Put(Box::new(resource(&format!("c[{i}]"))));
        seen_by_c.apply(&e);
        c.append(&seen_by_c, &e).unwrap();
    }
    let mut late = seen_by_d.clone();
    late.serial += 1;
    let e = JournalEntry::Put(Box::new(resource("d-late")));
    late.apply(&e);
    match d.append(&late, &e) {
        Err(StateError::Conflict { .. }) => {}
        other => panic!("an append from a view older than another's appends must be refused, got {other:?}"),
    }
    match d.write(&late) {
        Err(StateError::Conflict { .. }) => {}
        other => panic!("a write from a view older than another's appends must be refused, got {other:?}"),
    }
    assert_eq!(make().read().unwrap().unwrap(), seen_by_c, "C's appends survive");
    // D's writes refused, C goes on appending.
    let e = JournalEntry::Remove { address: "c[0]".into() };
    seen_by_c.apply(&e);
    c.append(&seen_by_c, &e).unwrap();
    c.write(&seen_by_c).unwrap();
    assert_eq!(make().read().unwrap().unwrap(), seen_by_c);
}

/// 20 writers at once, each: lock (waiting), read, add its resource, bump the serial, write,
/// unlock. Nothing is lost and the serial counts every write.
pub fn concurrent_read_modify_write_loses_nothing(make: Make<'_>) {
    let start = make().read().unwrap().unwrap();
    let writers = 20u64;
    std::thread::scope(|s| {
        for i in 0..writers {
            s.spawn(move || {
                let b = make();
                let info = LockInfo::new("apply", b.location());
                lock_with_timeout(b.as_ref(), &info, Duration::from_secs(120)).unwrap();
                let mut d = b.read().unwrap().unwrap();
                d.serial += 1;
                d.put(resource(&format!("writer[{i}]")));
                b.write(&d).unwrap();
                b.unlock(&info.id).unwrap();
            });
        }
    });
    let end = make().read().unwrap().unwrap();
    assert_eq!(end.serial, start.serial + writers, "one serial per write");
    for i in 0..writers {
        assert!(end.resource(&format!("writer[{i}]")).is_some(), "writer {i}'s update was lost");
    }
}

/// A child process (this test binary, running only `test`) that takes a lock and prints
/// `LOCKED <id>` (libtest may put `test NAME ... ` before it on that line). Killed with
/// SIGKILL when `kill` is called or when this is dropped, whatever happens to the test.
pub struct LockChild {
    child: std::process::Child,
    pub id: String,
}

impl LockChild {
    pub fn spawn(test: &str, env: &[(&str, String)], env_remove: &[&str]) -> LockChild {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        for k in env_remove {
            cmd.env_remove(k);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut me = LockChild { child, id: String::new() };
        me.id = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split_once("LOCKED ").map(|(_, id)| id.trim().to_string()))
            .expect("child did not lock");
        me
    }

    /// SIGKILL: no unlock, no drop runs in the child.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for LockChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
