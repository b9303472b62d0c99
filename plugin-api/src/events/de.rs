//! Lenient field deserializers for values the platform sends in more than one
//! shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// A string map that may be `null` (read as empty).
pub(crate) fn map_or_null<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// A string that may be `null` (read as empty).
pub(crate) fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// A value sent as a string by some producers and as a number by others
/// (DIS sequence numbers, DDS sizes): kept as its string form.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        I(i64),
        U(u64),
        F(f64),
    }
    Ok(match Either::deserialize(d)? {
        Either::S(s) => s,
        Either::I(i) => i.to_string(),
        Either::U(u) => u.to_string(),
        Either::F(f) => f.to_string(),
    })
}

/// An optional [`string_or_number`].
pub(crate) fn opt_string_or_number<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "string_or_number")] String);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}
