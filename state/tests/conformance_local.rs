//! The conformance suite on the local backend (a file in a temporary directory).

mod conformance;

use state::{LocalBackend, StateBackend};

#[test]
fn local_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conformance.state.json");
    conformance::suite(&|| Box::new(LocalBackend::new(path.clone())) as Box<dyn StateBackend>);
    assert_eq!(LocalBackend::new(path.clone()).list().unwrap(), vec!["conformance".to_string()]);
}
