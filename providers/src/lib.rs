//! Providers that realize TOSCA node types on backends (SPEC §6).
//!
//! `api` is the contract the applier drives (schema, request, trait); `local` is the embedded
//! default provider that realizes nodes on this machine.

pub mod api;
#[cfg(feature = "hpc")]
pub mod hpc;
pub mod local;
#[cfg(feature = "openstack")]
pub mod openstack;
pub mod retry;
pub mod units;

pub use api::{
    ApplyRequest, BoxFuture, HostRef, OperationSpec, Provider, ProviderError, ProviderSchema,
    Realized, RelationshipSpec, Resolver, ResourceSchema, StatusLine,
};
pub use local::LocalProvider;
