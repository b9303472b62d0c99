//! Data Ingestion Service (DIS) trigger: `DISTriggerEvent`. Its top-level keys
//! are capitalised (`ShardID`, `Message`, `Tag`, `StreamName`).

use serde::{Deserialize, Serialize};

use super::{de, decode_base64, encode_base64, event_type, DecodeError};

/// Records polled from a DIS stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisEvent {
    /// The partition.
    #[serde(rename = "ShardID")]
    pub shard_id: String,
    /// The records.
    #[serde(rename = "Message")]
    pub message: DisMessage,
    /// The function version.
    #[serde(rename = "Tag", default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The stream.
    #[serde(rename = "StreamName")]
    pub stream_name: String,
}

/// The body of a DIS event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisMessage {
    /// Cursor of the next read.
    #[serde(default, deserialize_with = "de::string_or_null")]
    pub next_partition_cursor: String,
    /// The records.
    pub records: Vec<DisRecord>,
    /// Reserved (a string, sometimes a number).
    #[serde(
        default,
        deserialize_with = "de::opt_string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub millis_behind_latest: Option<String>,
}

/// One DIS record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisRecord {
    /// Partition key.
    pub partition_key: String,
    /// The data, base64; see [`DisRecord::raw_data`].
    pub data: String,
    /// Sequence number (a string, sometimes a number).
    #[serde(deserialize_with = "de::string_or_number")]
    pub sequence_number: String,
}

impl DisRecord {
    /// A record of `data` (base64-encoded here).
    pub fn from_raw_data(
        partition_key: impl Into<String>,
        sequence_number: u64,
        data: &[u8],
    ) -> DisRecord {
        DisRecord {
            partition_key: partition_key.into(),
            data: encode_base64(data),
            sequence_number: sequence_number.to_string(),
        }
    }

    /// The decoded data (Go's `GetRawData`).
    pub fn raw_data(&self) -> Result<Vec<u8>, DecodeError> {
        decode_base64(&self.data)
    }
}

impl DisEvent {
    /// The decoded data of every record, in order.
    ///
    /// ```
    /// use fnhost_api::events::{DisEvent, DisRecord};
    /// let mut e = DisEvent::default();
    /// e.message.records.push(DisRecord::from_raw_data("k", 0, b"welcome"));
    /// assert_eq!(e.raw_data().unwrap(), vec![b"welcome".to_vec()]);
    /// ```
    pub fn raw_data(&self) -> Result<Vec<Vec<u8>>, DecodeError> {
        self.message
            .records
            .iter()
            .map(DisRecord::raw_data)
            .collect()
    }
}

event_type!(DisEvent, "DisEvent", "dis");
