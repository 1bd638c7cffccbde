//! The INDIGO PaaS Orchestrator wire format (docs: ../shared/reference/indigo-api.md §0-§2):
//! bodies, enums, dates, links, pages and errors, exactly as upstream serializes them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Deployment `status` (upstream `enums/Status.java`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    CreateInProgress,
    CreateComplete,
    CreateFailed,
    UpdateInProgress,
    UpdateComplete,
    UpdateFailed,
    DeleteInProgress,
    DeleteComplete,
    DeleteFailed,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::CreateInProgress => "CREATE_IN_PROGRESS",
            Status::CreateComplete => "CREATE_COMPLETE",
            Status::CreateFailed => "CREATE_FAILED",
            Status::UpdateInProgress => "UPDATE_IN_PROGRESS",
            Status::UpdateComplete => "UPDATE_COMPLETE",
            Status::UpdateFailed => "UPDATE_FAILED",
            Status::DeleteInProgress => "DELETE_IN_PROGRESS",
            Status::DeleteComplete => "DELETE_COMPLETE",
            Status::DeleteFailed => "DELETE_FAILED",
            Status::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }

    /// States a PUT may start from.
    pub fn updatable(self) -> bool {
        matches!(self, Status::CreateComplete | Status::UpdateComplete | Status::UpdateFailed)
    }
}

/// Resource `state` (TOSCA normative node states, upstream `enums/NodeStates.java`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    Initial,
    Creating,
    Created,
    Configuring,
    Configured,
    Starting,
    Started,
    Stopping,
    Stopped,
    Deleting,
    Error,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Initial => "INITIAL",
            NodeState::Creating => "CREATING",
            NodeState::Created => "CREATED",
            NodeState::Configuring => "CONFIGURING",
            NodeState::Configured => "CONFIGURED",
            NodeState::Starting => "STARTING",
            NodeState::Started => "STARTED",
            NodeState::Stopping => "STOPPING",
            NodeState::Stopped => "STOPPED",
            NodeState::Deleting => "DELETING",
            NodeState::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> NodeState {
        serde_json::from_value(Value::String(s.to_string())).unwrap_or(NodeState::Error)
    }
}

/// `task` (upstream only ever writes NONE and DEPLOYER).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Task {
    None,
    Deployer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Link {
    pub rel: String,
    pub href: String,
}

impl Link {
    pub fn new(rel: &str, href: String) -> Link {
        Link { rel: rel.to_string(), href }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Owner {
    pub issuer: String,
    pub subject: String,
}

/// A deployment as served (`resource/DeploymentResource.java`); null fields are omitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub uuid: String,
    /// `yyyy-MM-dd'T'HH:mmZ`, UTC (`2023-10-27T13:24+0000`).
    pub creation_time: String,
    pub update_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[schema(value_type = Object)]
    pub outputs: Map<String, Value>,
    pub task: Task,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_provider_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub cloud_provider_endpoint: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Owner>,
    /// Absent in callback bodies (built outside a request, as upstream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Link>>,
}

/// A resource (one node instance; `resource/BaseResource.java`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub uuid: String,
    pub creation_time: String,
    pub update_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    pub state: NodeState,
    pub tosca_node_type: String,
    pub tosca_node_name: String,
    pub required_by: Vec<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub links: Vec<Link>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    pub size: u64,
    pub total_elements: u64,
    pub total_pages: u64,
    pub number: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub links: Vec<Link>,
    pub content: Vec<T>,
    pub page: PageMeta,
}

/// Every error (`dto/common/Error.java`): HTTP status, reason phrase, message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: u16,
    pub title: String,
    pub message: String,
}

/// `POST`/`PUT /deployments` body. Lenient like upstream's Jackson: unknown fields ignored,
/// numbers and booleans accepted as strings (orchent sends `"keepLastAttempt":"true"`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRequest {
    pub template: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
    pub callback: Option<String>,
    #[serde(default, deserialize_with = "lenient_u32")]
    #[schema(value_type = Option<i32>)]
    pub timeout_mins: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    #[schema(value_type = Option<i32>)]
    pub provider_timeout_mins: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    #[schema(value_type = Option<i32>)]
    pub max_providers_retry: Option<u32>,
    #[serde(default, deserialize_with = "lenient_bool")]
    #[schema(value_type = Option<bool>)]
    pub keep_last_attempt: Option<bool>,
    pub user_group: Option<String>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ActionRequest {
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    pub status: Option<String>,
}

fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().and_then(|v| u32::try_from(v).ok()).map(Some).ok_or_else(|| D::Error::custom(format!("{n} is not a non-negative integer"))),
        Some(Value::String(s)) => s.trim().parse::<u32>().map(Some).map_err(|_| D::Error::custom(format!("\"{s}\" is not a non-negative integer"))),
        Some(other) => Err(D::Error::custom(format!("{other} is not an integer"))),
    }
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(D::Error::custom(format!("\"{s}\" is not a boolean"))),
        },
        Some(other) => Err(D::Error::custom(format!("{other} is not a boolean"))),
    }
}

/// Upstream's date format: `yyyy-MM-dd'T'HH:mmZ` in UTC, e.g. `2023-10-27T13:24+0000`.
pub fn format_time(unix_millis: i64) -> String {
    let secs = u64::try_from(unix_millis.div_euclid(1000)).unwrap_or(0);
    let full = planner::time::rfc3339(secs); // YYYY-MM-DDTHH:MM:SSZ
    format!("{}+0000", &full[..16])
}

/// A new time-ordered UUID (v7: sorts by creation time, like upstream's sequential UUIDs).
pub fn new_uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_minute_precision_and_a_colonless_offset() {
        assert_eq!(format_time(1_698_413_070_000), "2023-10-27T13:24+0000");
    }

    #[test]
    fn requests_are_lenient_like_jackson() {
        let r: DeploymentRequest = serde_json::from_str(r#"{"template":"x","keepLastAttempt":"true","maxProvidersRetry":"2","unknown":1}"#).unwrap();
        assert_eq!(r.keep_last_attempt, Some(true));
        assert_eq!(r.max_providers_retry, Some(2));
    }

    #[test]
    fn null_fields_are_omitted() {
        let d = Deployment {
            uuid: "u".into(),
            creation_time: "t".into(),
            update_time: "t".into(),
            physical_id: None,
            status: Status::CreateInProgress,
            status_reason: None,
            outputs: Map::new(),
            task: Task::None,
            callback: None,
            user_group: None,
            cloud_provider_name: None,
            cloud_provider_endpoint: None,
            created_by: None,
            links: None,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v, serde_json::json!({"uuid":"u","creationTime":"t","updateTime":"t","status":"CREATE_IN_PROGRESS","outputs":{},"task":"NONE"}));
    }
}
