//! The API's error type: every refusal answers FunctionGraph's
//! `{"error_code","error_msg"}` with the right status, converted once here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use fnhost::{DeployError, InvokeError, LoadError, NotFound};

/// An API error: HTTP status, FunctionGraph error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error_code`, e.g. `FSS.1051`.
    pub code: &'static str,
    /// `error_msg`.
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "FSS.0400", message)
    }
    /// 404 for an unknown function.
    pub fn function_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "FSS.1051", "Not found the function")
    }
    /// 401 for a missing or wrong signature.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "APIGW.0301", message)
    }
    /// 507 when the server's disk is full.
    pub fn disk_full(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "FSS.0507", message)
    }
    /// A failure of the state store: 507 when the disk is full, 409 for a
    /// key that exists already, 503 while the shared database cannot be
    /// reached, else 500.
    pub fn store(e: crate::store::StoreError) -> ApiError {
        if e.is_disk_full() {
            ApiError::disk_full(format!("the server's disk is full: {e}"))
        } else if e.is_duplicate() {
            ApiError::new(StatusCode::CONFLICT, "FSS.0409", e.to_string())
        } else if e.is_unavailable() {
            // The shared database is away for the moment; a retry may work.
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "FSS.0503",
                format!("the state store is unavailable, retry later: {e}"),
            )
        } else {
            ApiError::internal(e.to_string())
        }
    }
    /// 500 for the server's own failures.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "FSS.0500", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.code, "error_msg": self.message});
        (self.status, Json(body)).into_response()
    }
}

impl From<NotFound> for ApiError {
    fn from(e: NotFound) -> ApiError {
        match e {
            NotFound::Function(_) => ApiError::function_not_found(),
            NotFound::Version { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "FSS.1052", e.to_string())
            }
            NotFound::Alias { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "FSS.1053", e.to_string())
            }
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> ApiError {
        match e {
            InvokeError::PayloadTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "FSS.0413", e.to_string())
            }
            InvokeError::TooManyRequests { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "FSS.0429", e.to_string())
            }
            InvokeError::NotFound(nf) => nf.into(),
            InvokeError::InvalidOptions(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "FSS.0400", e.to_string())
            }
            InvokeError::NoWorker(_) | InvokeError::ResultTaken => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> ApiError {
        // A bad package or configuration is the caller's mistake; the
        // answer names files, never the server's paths.
        ApiError::new(StatusCode::BAD_REQUEST, "FSS.1040", e.public_message())
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> ApiError {
        match e {
            DeployError::Load(l) => l.into(),
            DeployError::NotFound(nf) => nf.into(),
            DeployError::Initializer(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "FSS.1041", e.public_message())
            }
            DeployError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "FSS.1061", m),
            DeployError::Invalid(m) => ApiError::bad_request(m),
        }
    }
}
