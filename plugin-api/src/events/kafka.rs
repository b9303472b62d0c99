//! DMS for Kafka trigger: `KAFKATriggerEvent`.

use serde::{Deserialize, Serialize};

use super::event_type;

/// A batch of Kafka messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaEvent {
    /// The Kafka instance.
    pub instance_id: String,
    /// Messages per topic.
    pub records: Vec<KafkaRecord>,
    /// `KAFKA`.
    pub trigger_type: String,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// When the batch was delivered, in seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
    /// Event format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_version: Option<String>,
}

/// Messages of one topic. fnhost's OPENSOURCEKAFKA trigger gives one
/// record per message, with its `id` (the `itemIdentifier` of a
/// partial-batch answer, [`BatchResponse`](super::BatchResponse)),
/// partition, offset and key beside `messages`; FunctionGraph's events
/// have none of these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaRecord {
    /// The messages, in order (text, or base64 when `data_encoding` is
    /// `base64`).
    #[serde(default)]
    pub messages: Vec<String>,
    /// The topic.
    pub topic_id: String,
    /// `topic/partition/offset` (fnhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The partition (fnhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// The offset (fnhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The key, as text or base64 (fnhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `text` or `base64` (fnhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_encoding: Option<String>,
    /// The headers, values as text or base64 (fnhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, Option<String>>>,
}

impl KafkaEvent {
    /// One record of `messages` on `topic` from `instance_id`.
    pub fn new(
        instance_id: impl Into<String>,
        topic: impl Into<String>,
        messages: Vec<String>,
    ) -> KafkaEvent {
        KafkaEvent {
            instance_id: instance_id.into(),
            records: vec![KafkaRecord {
                messages,
                topic_id: topic.into(),
                ..KafkaRecord::default()
            }],
            trigger_type: "KAFKA".into(),
            event_version: Some("v1.0".into()),
            ..KafkaEvent::default()
        }
    }
}

event_type!(KafkaEvent, "KafkaEvent", "kafka");
