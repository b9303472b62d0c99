//! Redis Streams trigger (fnhost's own, FunctionGraph has none): a batch of
//! stream entries read by a consumer group, and the partial-batch answer a
//! handler may give.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event_type;

/// A batch of entries of one Redis stream, read by the trigger's consumer
/// group. Delivered at least once: the batch is acknowledged (`XACK`) only
/// after the function succeeded, or after its last failure was
/// dead-lettered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisEvent {
    /// `REDIS`.
    pub trigger_type: String,
    /// When the batch was read (RFC 3339).
    pub event_time: String,
    /// The stream's key.
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// The entries, in stream order.
    #[serde(default)]
    pub records: Vec<RedisRecord>,
}

/// One stream entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisRecord {
    /// The entry's id (`1700000000000-0`): the `itemIdentifier` of a
    /// partial-batch answer.
    pub id: String,
    /// Its fields. A value that is not UTF-8 is given in base64, its field
    /// named in `binary_fields`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// The fields whose values are base64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binary_fields: Vec<String>,
    /// How many times this entry was delivered (1 the first time).
    #[serde(default)]
    pub delivery_count: u64,
}

/// A handler's answer that only some records of a batch failed (AWS
/// Lambda's `batchItemFailures`): the others are acknowledged, these are
/// retried and then dead-lettered. Any other answer, or an empty list,
/// is the whole batch's success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// The records that failed.
    #[serde(rename = "batchItemFailures", default)]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One failed record of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItemFailure {
    /// The record's id.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    /// An answer naming `failed` records.
    pub fn failed<I: Into<String>>(failed: impl IntoIterator<Item = I>) -> BatchResponse {
        BatchResponse {
            batch_item_failures: failed
                .into_iter()
                .map(|id| BatchItemFailure {
                    item_identifier: id.into(),
                })
                .collect(),
        }
    }
}

event_type!(RedisEvent, "RedisEvent", "redis");
event_type!(BatchResponse, "BatchResponse");
