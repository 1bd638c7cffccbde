//! Store rows → wire bodies, with links built from the request's base URL (or none, for
//! callback bodies, as upstream).

use crate::store::{DeploymentRow, ResourceRow};
use crate::wire::{self, Deployment, Link, NodeState, Owner, Resource, Status, Task};

pub fn deployment(row: &DeploymentRow, base: Option<&str>) -> Deployment {
    let links = base.map(|b| {
        let me = format!("{b}/deployments/{}", row.id);
        vec![Link::new("self", me.clone()), Link::new("resources", format!("{me}/resources?type={{type}}")), Link::new("template", format!("{me}/template"))]
    });
    Deployment {
        uuid: row.id.clone(),
        creation_time: wire::format_time(row.created_at),
        update_time: wire::format_time(row.updated_at),
        physical_id: row.physical_id.clone(),
        status: Status::parse(&row.status).unwrap_or(Status::Unknown),
        status_reason: row.status_reason.clone(),
        outputs: row.outputs.clone(),
        task: if row.task == "DEPLOYER" { Task::Deployer } else { Task::None },
        callback: row.callback.clone(),
        user_group: row.user_group.clone(),
        cloud_provider_name: row.cloud_provider_name.clone(),
        cloud_provider_endpoint: row.options.get("cloudProviderEndpoint").cloned(),
        created_by: match (&row.owner_issuer, &row.owner_subject) {
            (Some(issuer), Some(subject)) => Some(Owner { issuer: issuer.clone(), subject: subject.clone() }),
            _ => None,
        },
        links,
    }
}

pub fn resource(row: &ResourceRow, base: &str) -> Resource {
    let dep = format!("{base}/deployments/{}", row.deployment_id);
    Resource {
        uuid: row.id.clone(),
        creation_time: wire::format_time(row.created_at),
        update_time: wire::format_time(row.updated_at),
        physical_id: row.physical_id.clone(),
        state: NodeState::parse(&row.state),
        tosca_node_type: row.node_type.clone(),
        tosca_node_name: row.node_name.clone(),
        required_by: Vec::new(),
        metadata: row.metadata.clone(),
        links: vec![Link::new("deployment", dep.clone()), Link::new("self", format!("{dep}/resources/{}", row.id))],
    }
}
