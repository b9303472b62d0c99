//! Log Tank Service (LTS) trigger: `LTSTriggerEvent`.

use serde::{Deserialize, Serialize};

use super::{decode_base64, encode_base64, event_type, DecodeError};

/// Log data shipped by LTS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LtsEvent {
    /// The data.
    pub lts: LtsBody,
}

/// The (base64) log data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LtsBody {
    /// Base64 of the log records; see [`LtsEvent::raw_data`].
    pub data: String,
}

impl LtsEvent {
    /// An event carrying `data` (base64-encoded here).
    pub fn from_raw_data(data: &[u8]) -> LtsEvent {
        LtsEvent {
            lts: LtsBody {
                data: encode_base64(data),
            },
        }
    }

    /// The decoded log data (Go's `GetRawData`).
    ///
    /// ```
    /// let e = fnhost_api::events::LtsEvent::from_raw_data(b"log line");
    /// assert_eq!(e.raw_data().unwrap(), b"log line");
    /// ```
    pub fn raw_data(&self) -> Result<Vec<u8>, DecodeError> {
        decode_base64(&self.lts.data)
    }
}

event_type!(LtsEvent, "LtsEvent", "lts");
