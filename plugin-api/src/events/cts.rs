//! Cloud Trace Service (CTS) trigger: `CTSTriggerEvent`.

use serde::{Deserialize, Serialize};

use super::event_type;

/// An audited operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CtsEvent {
    /// The trace.
    pub cts: CtsBody,
}

/// A CTS trace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CtsBody {
    /// When the operation happened (ms since the epoch).
    pub time: i64,
    /// Who did it.
    pub user: CtsUser,
    /// The request (usually an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
    /// The response (usually an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
    /// The HTTP status of the operation.
    pub code: i64,
    /// Service (`vpc`, `ecs`, ...).
    pub service_type: String,
    /// Resource type.
    pub resource_type: String,
    /// Resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Operation name.
    pub trace_name: String,
    /// `ConsoleAction`, `ApiCall`, `SystemAction`.
    pub trace_type: String,
    /// When CTS recorded it (ms since the epoch).
    pub record_time: i64,
    /// Trace id.
    pub trace_id: String,
    /// `normal`, `warning`, `incident`.
    pub trace_status: String,
}

/// The user of a CTS trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtsUser {
    /// User name.
    pub name: String,
    /// User id.
    pub id: String,
    /// The user's domain (account).
    pub domain: CtsDomain,
}

/// A CTS user's domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtsDomain {
    /// Domain name.
    pub name: String,
    /// Domain id.
    pub id: String,
}

event_type!(CtsEvent, "CtsEvent", "cts");
