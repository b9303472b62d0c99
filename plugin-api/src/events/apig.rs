//! API Gateway (APIG) trigger: `APIGTriggerEvent` and `APIGTriggerResponse`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{de, decode_base64, encode_base64, event_type, DecodeError};

/// An HTTP request delivered through APIG.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApigEvent {
    /// Whether `body` is base64 (binary bodies are).
    #[serde(rename = "isBase64Encoded", default)]
    pub is_base64_encoded: bool,
    /// `GET`, `POST`, ...
    #[serde(rename = "httpMethod")]
    pub http_method: String,
    /// The request path.
    pub path: String,
    /// The body, base64 when `is_base64_encoded`; see [`ApigEvent::raw_body`].
    #[serde(default, deserialize_with = "de::string_or_null")]
    pub body: String,
    /// Path parameters of the API definition.
    #[serde(
        rename = "pathParameters",
        default,
        deserialize_with = "de::map_or_null"
    )]
    pub path_parameters: BTreeMap<String, String>,
    /// The APIG request context.
    #[serde(rename = "requestContext", default)]
    pub request_context: ApigRequestContext,
    /// Request headers (lower-case names).
    #[serde(default, deserialize_with = "de::map_or_null")]
    pub headers: BTreeMap<String, String>,
    /// Query parameters.
    #[serde(
        rename = "queryStringParameters",
        default,
        deserialize_with = "de::map_or_null"
    )]
    pub query_string_parameters: BTreeMap<String, String>,
    /// User data set by an APIG custom authorizer.
    #[serde(rename = "user_data", default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

/// The APIG configuration a request came through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApigRequestContext {
    /// API id.
    #[serde(rename = "apiId", default)]
    pub api_id: String,
    /// APIG's request id.
    #[serde(rename = "requestId", default)]
    pub request_id: String,
    /// Stage (`RELEASE`, ...).
    #[serde(default)]
    pub stage: String,
    /// The caller's IP address.
    #[serde(rename = "sourceIp", default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

impl ApigEvent {
    /// A request with `method` and `path`, no body.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> ApigEvent {
        ApigEvent {
            http_method: method.into(),
            path: path.into(),
            ..ApigEvent::default()
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> ApigEvent {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Adds a query parameter.
    pub fn with_query(mut self, name: impl Into<String>, value: impl Into<String>) -> ApigEvent {
        self.query_string_parameters
            .insert(name.into(), value.into());
        self
    }

    /// Adds a path parameter.
    pub fn with_path_parameter(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> ApigEvent {
        self.path_parameters.insert(name.into(), value.into());
        self
    }

    /// Sets a text body (not base64).
    pub fn with_body(mut self, body: impl Into<String>) -> ApigEvent {
        self.body = body.into();
        self.is_base64_encoded = false;
        self
    }

    /// Sets a binary body, base64-encoding it.
    pub fn with_raw_body(mut self, body: &[u8]) -> ApigEvent {
        self.body = encode_base64(body);
        self.is_base64_encoded = true;
        self
    }

    /// The body's bytes: base64-decoded when `isBase64Encoded` (Go's `GetRawBody`).
    ///
    /// ```
    /// use fnhost_api::events::ApigEvent;
    /// let e = ApigEvent::new("POST", "/upload").with_raw_body(b"\x00\xff");
    /// assert_eq!(e.body, "AP8=");
    /// assert_eq!(e.raw_body().unwrap(), &b"\x00\xff"[..]);
    /// ```
    pub fn raw_body(&self) -> Result<Cow<'_, [u8]>, DecodeError> {
        if self.is_base64_encoded {
            decode_base64(&self.body).map(Cow::Owned)
        } else {
            Ok(Cow::Borrowed(self.body.as_bytes()))
        }
    }
}

/// What an APIG-triggered handler answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApigResponse {
    /// The body, base64 when `is_base64_encoded`.
    #[serde(default, deserialize_with = "de::string_or_null")]
    pub body: String,
    /// Response headers.
    #[serde(default, deserialize_with = "de::map_or_null")]
    pub headers: BTreeMap<String, String>,
    /// HTTP status.
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// Whether `body` is base64.
    #[serde(rename = "isBase64Encoded", default)]
    pub is_base64_encoded: bool,
}

impl ApigResponse {
    /// A response with `status_code` and no body.
    pub fn new(status_code: u16) -> ApigResponse {
        ApigResponse {
            status_code,
            ..ApigResponse::default()
        }
    }

    /// Adds a header.
    pub fn with_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> ApigResponse {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets a text body.
    pub fn with_body(mut self, body: impl Into<String>) -> ApigResponse {
        self.body = body.into();
        self.is_base64_encoded = false;
        self
    }

    /// Base64-encodes `body` into the response and sets the flag (Go's
    /// `SetBase64EncodedBody`).
    ///
    /// ```
    /// let mut r = fnhost_api::events::ApigResponse::new(200);
    /// r.set_base64_encoded_body(b"\x89PNG");
    /// assert!(r.is_base64_encoded);
    /// assert_eq!(r.raw_body().unwrap(), b"\x89PNG");
    /// ```
    pub fn set_base64_encoded_body(&mut self, body: &[u8]) {
        self.body = encode_base64(body);
        self.is_base64_encoded = true;
    }

    /// The body's bytes, decoded when base64.
    pub fn raw_body(&self) -> Result<Vec<u8>, DecodeError> {
        if self.is_base64_encoded {
            decode_base64(&self.body)
        } else {
            Ok(self.body.clone().into_bytes())
        }
    }
}

event_type!(ApigEvent, "ApigEvent", "apig");
event_type!(ApigResponse, "ApigResponse");
