//! MQTT trigger (fnhost's own): a batch of messages of a QoS 1
//! subscription. A handler answers a partial failure with
//! [`BatchResponse`](super::BatchResponse), naming records by `id`.

use serde::{Deserialize, Serialize};

use super::event_type;

/// A batch of messages matching the trigger's topic filter. Delivered at
/// least once: each message is acknowledged (`PUBACK`) only after the
/// function succeeded, or after its last failure was dead-lettered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttEvent {
    /// `MQTT`.
    pub trigger_type: String,
    /// When the batch was gathered (RFC 3339).
    pub event_time: String,
    /// The trigger's topic filter.
    pub topic_filter: String,
    /// The messages, in the order the broker sent them.
    #[serde(default)]
    pub records: Vec<MqttRecord>,
}

/// One message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttRecord {
    /// The record's id in this batch (MQTT messages have none of their
    /// own): the `itemIdentifier` of a partial-batch answer.
    pub id: String,
    /// The topic it was published on.
    pub topic: String,
    /// Its payload: text, or base64 when `payload_encoding` is `base64`.
    pub payload: String,
    /// `text` or `base64`.
    pub payload_encoding: String,
    /// Whether it is a retained message.
    #[serde(default)]
    pub retain: bool,
    /// Whether the broker marked it a redelivery.
    #[serde(default)]
    pub duplicate: bool,
}

impl MqttRecord {
    /// The payload's bytes (decoded when base64).
    pub fn raw_payload(&self) -> Result<Vec<u8>, super::DecodeError> {
        if self.payload_encoding == "base64" {
            super::decode_base64(&self.payload)
        } else {
            Ok(self.payload.clone().into_bytes())
        }
    }
}

event_type!(MqttEvent, "MqttEvent", "mqtt");
