//! NATS JetStream trigger (fnhost's own): a batch of messages read by a
//! durable pull consumer. A handler answers a partial failure with
//! [`BatchResponse`](super::BatchResponse), naming records by `id`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event_type;

/// A batch of messages of one JetStream stream, read by the trigger's
/// durable consumer. Delivered at least once: each message is acknowledged
/// only after the function succeeded, or after its last failure was
/// dead-lettered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsEvent {
    /// `NATS`.
    pub trigger_type: String,
    /// When the batch was read (RFC 3339).
    pub event_time: String,
    /// The JetStream stream.
    pub stream: String,
    /// The durable consumer.
    pub consumer: String,
    /// The messages, in stream order.
    #[serde(default)]
    pub records: Vec<NatsRecord>,
}

/// One message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsRecord {
    /// The message's stream sequence, as text: the `itemIdentifier` of a
    /// partial-batch answer.
    pub id: String,
    /// The subject it was published on.
    pub subject: String,
    /// Its data: text, or base64 when `data_encoding` is `base64` (data
    /// that is not UTF-8).
    pub data: String,
    /// `text` or `base64`.
    pub data_encoding: String,
    /// Its headers (the first value of each).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How many times it was delivered (1 the first time).
    #[serde(default)]
    pub delivery_count: u64,
}

impl NatsRecord {
    /// The data's bytes (decoded when base64).
    pub fn raw_data(&self) -> Result<Vec<u8>, super::DecodeError> {
        if self.data_encoding == "base64" {
            super::decode_base64(&self.data)
        } else {
            Ok(self.data.clone().into_bytes())
        }
    }
}

event_type!(NatsEvent, "NatsEvent", "nats");
