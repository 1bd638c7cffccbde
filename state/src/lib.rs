//! Deployment state documents and their backends (SPEC §5, docs/state.md).
//!
//! Plain data plus storage: no TOSCA, no planning. `doc` is the document and its journal
//! entries; `backend` the trait every store implements; `local` the default file backend;
//! `writer` the journaled, write-ahead persister the applier drives; `lock` the retry loop
//! and lock records.

pub mod backend;
pub mod doc;
pub mod encrypt;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "http")]
pub mod http;
pub mod local;
pub mod lock;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "s3")]
pub mod s3;
pub mod writer;

pub use backend::{LockError, LockInfo, StateBackend, StateError};
pub use doc::{
    JournalEntry, OutputState, PendingOp, ResourceState, ResourceStatus, StateDoc, TemplateRef,
    STATE_VERSION,
};
#[cfg(feature = "etcd")]
pub use etcd::EtcdBackend;
#[cfg(feature = "http")]
pub use http::{HttpAuth, HttpBackend};
pub use local::LocalBackend;
#[cfg(feature = "postgres")]
pub use postgres::PostgresBackend;
pub use lock::{lock_with_timeout, parse_duration, render_lock_info};
#[cfg(feature = "s3")]
pub use s3::{S3Backend, S3Config};
pub use encrypt::{EncryptedBackend, KeySource};
pub use writer::StateWriter;
