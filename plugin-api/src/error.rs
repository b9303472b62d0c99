//! [`HandlerError`]: a function failure reported as `{"errorMessage","errorType"}`.

use core::fmt;

/// The error type reported when a handler returns an error without setting one.
pub const FUNCTION_RETURN_ERROR: &str = "FunctionReturnError";

/// A handler's failure. Its type defaults to `FunctionReturnError`; set your
/// own with [`HandlerError::with_type`]. Any `std::error::Error` converts into
/// it, so `?` works in handlers.
///
/// ```
/// use fnhost_api::HandlerError;
/// let e = HandlerError::new("no such order").with_type("NotFound");
/// assert_eq!(e.error_type(), "NotFound");
/// let parsed: Result<u32, HandlerError> = "x".parse::<u32>().map_err(HandlerError::from);
/// assert_eq!(parsed.unwrap_err().error_type(), "FunctionReturnError");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HandlerError {
    error_type: String,
    message: String,
}

impl HandlerError {
    /// An error of type `FunctionReturnError`.
    pub fn new(message: impl Into<String>) -> HandlerError {
        HandlerError {
            error_type: FUNCTION_RETURN_ERROR.to_owned(),
            message: message.into(),
        }
    }

    /// Sets the reported `errorType`.
    pub fn with_type(mut self, error_type: impl Into<String>) -> HandlerError {
        self.error_type = error_type.into();
        self
    }

    /// The reported `errorType`.
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// The reported `errorMessage`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(error: E) -> HandlerError {
        HandlerError::new(error.to_string())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}
