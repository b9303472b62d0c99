//! [`HandlerError`]: a function failure reported as `{"errorMessage","errorType"}`.

use core::fmt;

/// The error type reported when a handler returns an error without setting one.
pub const FUNCTION_RETURN_ERROR: &str = "FunctionReturnError";

/// A handler's failure. Its type defaults to `FunctionReturnError`; set your
/// own with [`HandlerError::with_type`], or return your own error type that
/// implements [`ErrorType`]. Any `std::error::Error` converts into it, so `?`
/// works in handlers.
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

/// An error type of your own that names its `errorType`: a handler (or an
/// initializer) may return `Result<R, E>` for such an `E` instead of
/// [`HandlerError`]. Its `Display` is the `errorMessage`; `?` inside the
/// handler converts into `E` through your own `From` impls, so no call needs
/// a `map_err`.
///
/// ```
/// use fnhost_api::{Context, ErrorType, IntoHandlerError};
///
/// #[derive(Debug)]
/// enum OrderError {
///     NotFound(u64),
///     BadId(std::num::ParseIntError),
/// }
///
/// impl std::fmt::Display for OrderError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         match self {
///             OrderError::NotFound(id) => write!(f, "no order {id}"),
///             OrderError::BadId(e) => write!(f, "bad order id: {e}"),
///         }
///     }
/// }
///
/// impl From<std::num::ParseIntError> for OrderError {
///     fn from(e: std::num::ParseIntError) -> Self {
///         OrderError::BadId(e)
///     }
/// }
///
/// impl ErrorType for OrderError {
///     fn error_type(&self) -> &str {
///         match self {
///             OrderError::NotFound(_) => "OrderNotFound",
///             OrderError::BadId(_) => "InvalidOrderId",
///         }
///     }
/// }
///
/// fn handler(payload: &[u8], _: &Context) -> Result<String, OrderError> {
///     let id: u64 = std::str::from_utf8(payload).unwrap_or("").parse()?; // no map_err
///     Err(OrderError::NotFound(id))
/// }
///
/// let test = fnhost_api::testing::TestContext::new();
/// let e = handler(b"42", test.context()).unwrap_err().into_handler_error();
/// assert_eq!((e.error_type(), e.message()), ("OrderNotFound", "no order 42"));
/// let e = handler(b"x", test.context()).unwrap_err().into_handler_error();
/// assert_eq!(e.error_type(), "InvalidOrderId");
/// ```
pub trait ErrorType: fmt::Display {
    /// The reported `errorType` (default `FunctionReturnError`).
    fn error_type(&self) -> &str {
        FUNCTION_RETURN_ERROR
    }
}

/// What a handler's `Err` becomes: a [`HandlerError`] as it is, or any
/// [`ErrorType`] with its own type and its `Display` as the message.
pub trait IntoHandlerError {
    /// The error as the host reports it.
    fn into_handler_error(self) -> HandlerError;
}

impl IntoHandlerError for HandlerError {
    fn into_handler_error(self) -> HandlerError {
        self
    }
}

impl<E: ErrorType> IntoHandlerError for E {
    fn into_handler_error(self) -> HandlerError {
        HandlerError::new(self.to_string()).with_type(self.error_type())
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

/// A host call's failure ([`Context::call_host`](crate::Context::call_host)):
/// the type the host named (one of [`abi::host_call_error`](crate::abi::host_call_error),
/// or the host function's own) and its message. It implements
/// [`ErrorType`], so a handler that returns it (or converts it with `?`
/// into an error of its own) reports the same `errorType`.
///
/// ```
/// use fnhost_api::{abi::host_call_error, testing::TestContext};
///
/// let test = TestContext::new();
/// let e = test.context().call_host("cache.get", b"k").unwrap_err();
/// assert_eq!(e.error_type(), host_call_error::NOT_FOUND);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HostCallError {
    error_type: String,
    message: String,
}

impl HostCallError {
    /// An error of this type and message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> HostCallError {
        HostCallError {
            error_type: error_type.into(),
            message: message.into(),
        }
    }

    /// The error's type (`HostFunctionNotFound`, ..., or the host function's).
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for HostCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl fmt::Display for HostCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for HostCallError {}

impl ErrorType for HostCallError {
    fn error_type(&self) -> &str {
        &self.error_type
    }
}
