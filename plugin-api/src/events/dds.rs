//! Document Database Service (DDS) trigger: `DDSTriggerEvent`.

use serde::{Deserialize, Deserializer, Serialize};

use super::{de, event_type};

/// Change-stream records of a DDS collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdsEvent {
    /// The records.
    pub records: Vec<DdsRecord>,
}

/// One change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdsRecord {
    /// `insert`, `update`, `delete`, ...
    pub event_name: String,
    /// Event version.
    pub event_version: String,
    /// `dds`.
    pub event_source: String,
    /// Region.
    pub region: String,
    /// The change.
    pub dds: DdsBody,
    /// The event source's id.
    pub event_source_id: String,
}

/// The change itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdsBody {
    /// Size in bytes (a string, sometimes a number).
    #[serde(deserialize_with = "de::string_or_number")]
    pub size_bytes: String,
    /// Resume token (extended JSON text).
    pub token: String,
    /// The document (extended JSON text).
    pub full_document: String,
    /// Database and collection.
    #[serde(deserialize_with = "namespace")]
    pub ns: DdsNamespace,
}

/// A database and collection. Accepted as an object or as a JSON string
/// holding one (both occur); written as an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdsNamespace {
    /// Database.
    pub db: String,
    /// Collection.
    pub coll: String,
}

fn namespace<'de, D: Deserializer<'de>>(d: D) -> Result<DdsNamespace, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Object(DdsNamespace),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Object(ns) => Ok(ns),
        Either::Text(s) => serde_json::from_str(&s).map_err(serde::de::Error::custom),
    }
}

event_type!(DdsEvent, "DdsEvent", "dds");
