//! Simple Message Notification (SMN) trigger: `SMNTriggerEvent`.

use serde::{Deserialize, Serialize};

use super::event_type;

/// SMN notifications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SmnEvent {
    /// The notifications.
    pub record: Vec<SmnRecord>,
}

/// One notification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SmnRecord {
    /// Event version (`1.0`).
    pub event_version: String,
    /// The subscription's URN.
    pub event_subscription_urn: String,
    /// `smn`.
    pub event_source: String,
    /// The message.
    pub smn: SmnBody,
}

/// An SMN message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SmnBody {
    /// The topic's URN.
    pub topic_urn: String,
    /// When it was published (RFC 3339).
    pub timestamp: String,
    /// Message attributes: an object, or a placeholder string such as `"None"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_attributes: Option<serde_json::Value>,
    /// The message content.
    pub message: String,
    /// `notification`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Message id.
    pub message_id: String,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl SmnEvent {
    /// One notification of `message` with `subject` on `topic_urn`.
    pub fn new(
        topic_urn: impl Into<String>,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> SmnEvent {
        SmnEvent {
            record: vec![SmnRecord {
                event_version: "1.0".into(),
                event_source: "smn".into(),
                smn: SmnBody {
                    topic_urn: topic_urn.into(),
                    message: message.into(),
                    subject: Some(subject.into()),
                    kind: "notification".into(),
                    ..SmnBody::default()
                },
                ..SmnRecord::default()
            }],
        }
    }
}

event_type!(SmnEvent, "SmnEvent", "smn");
