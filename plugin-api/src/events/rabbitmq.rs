//! RabbitMQ trigger (`RABBITMQ`): a batch of messages of one queue, in the
//! shape of FunctionGraph's DMS events (`records[].messages[]`,
//! `topic_id`). fnhost gives one record per message, so each carries its
//! `id` (the `itemIdentifier` of a partial-batch answer,
//! [`BatchResponse`](super::BatchResponse)) and its AMQP metadata beside
//! `messages`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event_type;

/// A batch of messages consumed from one queue. Delivered at least once:
/// each message is acknowledged only after the function succeeded, or
/// after its last failure was dead-lettered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RabbitMqEvent {
    /// `v1.0`.
    #[serde(default)]
    pub event_version: String,
    /// When the batch was delivered, in seconds since the epoch.
    #[serde(default)]
    pub event_time: i64,
    /// `RABBITMQ`.
    pub trigger_type: String,
    /// `local` on fnhost.
    #[serde(default)]
    pub region: String,
    /// `fnhost` on fnhost.
    #[serde(default)]
    pub instance_id: String,
    /// The messages, in queue order, one per record.
    #[serde(default)]
    pub records: Vec<RabbitMqRecord>,
}

/// One message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RabbitMqRecord {
    /// The message body (one): text, or base64 when `data_encoding` is
    /// `base64` (a body that is not UTF-8).
    #[serde(default)]
    pub messages: Vec<String>,
    /// The queue it was consumed from.
    pub topic_id: String,
    /// Its delivery tag, as text: the `itemIdentifier` of a partial-batch
    /// answer.
    pub id: String,
    /// `text` or `base64`.
    #[serde(default)]
    pub data_encoding: String,
    /// The exchange it was published to (empty: the default exchange).
    #[serde(default)]
    pub exchange: String,
    /// Its routing key.
    #[serde(default)]
    pub routing_key: String,
    /// Whether the broker delivered it before (to this or another consumer).
    #[serde(default)]
    pub redelivered: bool,
    /// The publisher's `message_id` property, if it set one.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Its headers (text, numbers and booleans as they are).
    #[serde(default)]
    pub headers: BTreeMap<String, serde_json::Value>,
}

impl RabbitMqRecord {
    /// The body's bytes (decoded when base64).
    pub fn raw_data(&self) -> Result<Vec<u8>, super::DecodeError> {
        let body = self.messages.first().map(String::as_str).unwrap_or("");
        if self.data_encoding == "base64" {
            super::decode_base64(body)
        } else {
            Ok(body.as_bytes().to_vec())
        }
    }
}

event_type!(RabbitMqEvent, "RabbitMqEvent", "rabbitmq");
