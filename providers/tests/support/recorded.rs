//! What the applier would record for an instance a provider just realized, for tests that hand
//! it back to `read`, `update` or `delete`.

use providers::{ApplyRequest, Realized};
use state::{ResourceState, ResourceStatus};

pub fn recorded(req: &ApplyRequest, r: &Realized, provider: &str) -> ResourceState {
    ResourceState {
        address: req.address.clone(),
        node: req.node.clone(),
        index: req.index,
        type_name: req.types[0].clone(),
        provider: provider.into(),
        site: None,
        id: Some(r.id.clone()),
        status: ResourceStatus::Created,
        pending: None,
        config: req.config.clone(),
        attributes: r.attributes.clone(),
        outputs: r.outputs.clone(),
        sensitive: Vec::new(),
        dependencies: Vec::new(),
        private: r.private.clone(),
    }
}
