//! What a handler returns: raw bytes, text, JSON or nothing.

use serde::Serialize;

use crate::abi::output_kind;
use crate::HandlerError;

/// A handler's result body and how to label it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// No body.
    Empty,
    /// Raw bytes, returned as is (`application/octet-stream`).
    Bytes(Vec<u8>),
    /// Text, returned as is (`text/plain; charset=utf-8`).
    Text(String),
    /// A serialized JSON document (`application/json`).
    Json(Vec<u8>),
}

impl Output {
    /// The ABI kind ([`crate::abi::output_kind`]) and body.
    pub fn as_parts(&self) -> (u32, &[u8]) {
        match self {
            Output::Empty => (output_kind::EMPTY, &[]),
            Output::Bytes(b) => (output_kind::BYTES, b),
            Output::Text(s) => (output_kind::TEXT, s.as_bytes()),
            Output::Json(j) => (output_kind::JSON, j),
        }
    }
}

/// JSON both ways: as a result, a value serialized to JSON (as FunctionGraph
/// does for any return value that is not bytes or a string); as a handler's
/// argument, the payload parsed into `T`.
///
/// ```
/// use fnhost_api::{IntoOutput, Json, Output};
/// let out = Json(serde_json::json!({"ok": true})).into_output().unwrap();
/// assert_eq!(out, Output::Json(br#"{"ok":true}"#.to_vec()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// Converts a handler's return value into an [`Output`].
pub trait IntoOutput {
    /// The conversion; an error (e.g. a value that fails to serialize) fails
    /// the invocation with that error.
    fn into_output(self) -> Result<Output, HandlerError>;
}

impl IntoOutput for Output {
    fn into_output(self) -> Result<Output, HandlerError> {
        Ok(self)
    }
}

impl IntoOutput for () {
    fn into_output(self) -> Result<Output, HandlerError> {
        Ok(Output::Empty)
    }
}

impl IntoOutput for Vec<u8> {
    fn into_output(self) -> Result<Output, HandlerError> {
        Ok(Output::Bytes(self))
    }
}

impl IntoOutput for &[u8] {
    fn into_output(self) -> Result<Output, HandlerError> {
        Ok(Output::Bytes(self.to_vec()))
    }
}

impl IntoOutput for String {
    fn into_output(self) -> Result<Output, HandlerError> {
        Ok(Output::Text(self))
    }
}

impl IntoOutput for &str {
    fn into_output(self) -> Result<Output, HandlerError> {
        Ok(Output::Text(self.to_owned()))
    }
}

impl<T: IntoOutput> IntoOutput for Option<T> {
    fn into_output(self) -> Result<Output, HandlerError> {
        match self {
            Some(v) => v.into_output(),
            None => Ok(Output::Empty),
        }
    }
}

impl<T: Serialize> IntoOutput for Json<T> {
    fn into_output(self) -> Result<Output, HandlerError> {
        serde_json::to_vec(&self.0)
            .map(Output::Json)
            .map_err(|e| HandlerError::new(format!("failed to serialize the result as JSON: {e}")))
    }
}
