//! What a handler takes: [`FromPayload`] turns the raw payload into a typed
//! input (an event type of [`crate::events`], or [`Json<T>`]).

use serde::de::DeserializeOwned;

use crate::output::Json;
use crate::HandlerError;

/// A payload type a handler can take instead of `&[u8]`: every event type of
/// [`crate::events`], and [`Json<T>`](crate::Json) for any `T: DeserializeOwned`.
pub trait FromPayload: Sized {
    /// The event this type is, as a handler's descriptor entry records it
    /// (`json` unless the type is a trigger's event).
    const EVENT: &'static str = crate::abi::event::JSON;
    /// Parses the payload; the error names the expected type.
    fn from_payload(payload: &[u8]) -> Result<Self, HandlerError>;
}

/// Parses `payload` as JSON into `T`, naming `what` in the error.
pub(crate) fn parse<T: DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, HandlerError> {
    serde_json::from_slice(payload)
        .map_err(|e| HandlerError::new(format!("the payload is not a valid {what}: {e}")))
}

impl<T: DeserializeOwned> FromPayload for Json<T> {
    fn from_payload(payload: &[u8]) -> Result<Self, HandlerError> {
        let name = std::any::type_name::<T>();
        let short = name.rsplit("::").next().unwrap_or(name);
        parse(payload, short).map(Json)
    }
}
