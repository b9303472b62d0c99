//! [`Context`]: the safe view of the runtime context the host lends a handler.

use core::fmt;

use crate::abi;
use crate::HostCallError;

/// The runtime context of one invocation (FunctionGraph's `RuntimeContext`).
///
/// A handler receives `&Context`; everything it returns borrows from the host
/// and is valid until the handler returns. All methods are cheap calls through
/// the host's function table. `Context` is `Sync`: a handler may share it with
/// scoped threads that finish before it returns.
///
/// ```
/// use fnhost_api::testing::TestContext;
///
/// let test = TestContext::new().user_data("NAME", "world").memory_size_mb(256);
/// let ctx = test.context();
/// assert_eq!(ctx.user_data("NAME"), Some("world"));
/// assert_eq!(ctx.cpu_millicores(), 400);
/// ctx.logger().info(format_args!("hello {}", ctx.user_data("NAME").unwrap()));
/// assert!(test.log().ends_with("hello world\n"));
/// ```
pub struct Context {
    raw: abi::Context,
}

// SAFETY: every vtable function is documented (fnhost.h) as thread-safe while
// the call that received the context is running, and `Context` exposes no
// way to outlive that call (handlers only ever see `&Context`).
unsafe impl Sync for Context {}

impl Context {
    /// Wraps a raw context for the duration of one call.
    ///
    /// # Safety
    /// `raw.vtable` must point at a valid [`abi::ContextVTable`] and `raw.host`
    /// must be valid for it until the returned `Context` is dropped.
    pub unsafe fn from_raw(raw: &abi::Context) -> Context {
        Context {
            raw: abi::Context {
                vtable: raw.vtable,
                host: raw.host,
            },
        }
    }

    /// The raw context, to pass to C code.
    pub fn as_raw(&self) -> &abi::Context {
        &self.raw
    }

    fn vtable(&self) -> &abi::ContextVTable {
        // SAFETY: `from_raw`'s contract: the vtable is valid while `self` lives.
        unsafe { &*self.raw.vtable }
    }

    fn field(&self, field: u32) -> &str {
        // SAFETY: host pointer valid per `from_raw`; the returned string is
        // host-owned and valid until the call returns, which outlives `&self`.
        let bytes = unsafe { (self.vtable().get_field)(self.raw.host, field).as_slice() };
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// The request id (`GetRequestID`).
    pub fn request_id(&self) -> &str {
        self.field(abi::field::REQUEST_ID)
    }

    /// Milliseconds left before the timeout, floored at 0
    /// (`GetRemainingTimeInMilliSeconds`).
    pub fn remaining_time_ms(&self) -> u64 {
        // SAFETY: host pointer valid per `from_raw`.
        let ms = unsafe { (self.vtable().remaining_time_ms)(self.raw.host) };
        ms.max(0) as u64
    }

    /// The deadline as milliseconds since the Unix epoch.
    pub fn deadline_unix_ms(&self) -> i64 {
        // SAFETY: host pointer valid per `from_raw`.
        unsafe { (self.vtable().deadline_unix_ms)(self.raw.host) }
    }

    /// The configured timeout in seconds (`GetRunningTimeInSeconds`).
    pub fn running_time_seconds(&self) -> u32 {
        // SAFETY: host pointer valid per `from_raw`.
        unsafe { (self.vtable().running_time_s)(self.raw.host) }
    }

    /// Deprecated temporary access key (`GetAccessKey`); empty unless configured.
    #[deprecated(note = "FunctionGraph no longer maintains GetAccessKey; use security_access_key")]
    pub fn access_key(&self) -> &str {
        self.field(abi::field::ACCESS_KEY)
    }

    /// Deprecated temporary secret key (`GetSecretKey`); empty unless configured.
    #[deprecated(note = "FunctionGraph no longer maintains GetSecretKey; use security_secret_key")]
    pub fn secret_key(&self) -> &str {
        self.field(abi::field::SECRET_KEY)
    }

    /// The delegated security access key (`GetSecurityAccessKey`).
    pub fn security_access_key(&self) -> &str {
        self.field(abi::field::SECURITY_ACCESS_KEY)
    }

    /// The delegated security secret key (`GetSecuritySecretKey`).
    pub fn security_secret_key(&self) -> &str {
        self.field(abi::field::SECURITY_SECRET_KEY)
    }

    /// The delegated security token (`GetSecurityToken`).
    pub fn security_token(&self) -> &str {
        self.field(abi::field::SECURITY_TOKEN)
    }

    /// The delegated IAM token (`GetToken`).
    pub fn token(&self) -> &str {
        self.field(abi::field::TOKEN)
    }

    /// The W3C trace id of this invocation (32 lowercase hex digits): the
    /// caller's `traceparent`, or one the host started. Empty on a host
    /// older than ABI 1.2, or one that started no trace (an embedder that
    /// gave none).
    pub fn trace_id(&self) -> &str {
        self.field(abi::field::TRACE_ID)
    }

    /// Whether the invocation's caller cancelled it (ABI 1.5): the host
    /// discards its result, so a handler that checks this in a long loop
    /// can stop early. Always `false` on an older host.
    pub fn is_cancelled(&self) -> bool {
        self.field(abi::field::CANCELLED) == "1"
    }

    /// A value of the function's user data (environment) (`GetUserData`).
    pub fn user_data(&self, key: &str) -> Option<&str> {
        let mut value = abi::HostStr::EMPTY;
        // SAFETY: host pointer valid per `from_raw`; `key` is copied by the
        // host before return; `value` is written only on success.
        let found = unsafe {
            (self.vtable().get_user_data)(
                self.raw.host,
                abi::PluginStr::from_slice(key.as_bytes()),
                &mut value,
            )
        };
        if found != 1 {
            return None;
        }
        // SAFETY: host-owned and valid until the call returns (outlives `&self`).
        core::str::from_utf8(unsafe { value.as_slice() }).ok()
    }

    /// The function's name (`GetFunctionName`).
    pub fn function_name(&self) -> &str {
        self.field(abi::field::FUNCTION_NAME)
    }

    /// The version served (`GetVersion`): `latest` or a published version.
    pub fn version(&self) -> &str {
        self.field(abi::field::VERSION)
    }

    /// The alias the invocation came through, empty when none (`GetAlias`).
    pub fn alias(&self) -> &str {
        self.field(abi::field::ALIAS)
    }

    /// The function's package / group (`GetPackage`).
    pub fn package(&self) -> &str {
        self.field(abi::field::PACKAGE)
    }

    /// The project id (`GetProjectID`).
    pub fn project_id(&self) -> &str {
        self.field(abi::field::PROJECT_ID)
    }

    /// The configured memory in MB (`GetMemorySize`).
    pub fn memory_size_mb(&self) -> u32 {
        // SAFETY: host pointer valid per `from_raw`.
        unsafe { (self.vtable().memory_size_mb)(self.raw.host) }
    }

    /// The CPU share in millicores, `memory / 128 * 100 + 200` (`GetCPUNumber`).
    pub fn cpu_millicores(&self) -> u32 {
        // SAFETY: host pointer valid per `from_raw`.
        unsafe { (self.vtable().cpu_millicores)(self.raw.host) }
    }

    /// Calls the host function `name` (one the program that runs this
    /// plugin registered) with `input`, and answers its output. Errors are
    /// typed ([`HostCallError::error_type`]): the host's own
    /// ([`abi::host_call_error`]: no such function, input too large, too
    /// many calls, a host function that panicked, ...) or the host
    /// function's. On a host older than ABI 1.5 every call answers
    /// `HostFunctionsUnsupported`.
    ///
    /// ```
    /// use fnhost_api::testing::TestContext;
    ///
    /// let test = TestContext::new()
    ///     .host_function("cache.get", |key| Ok(format!("value of {}", String::from_utf8_lossy(key)).into_bytes()));
    /// let value = test.context().call_host("cache.get", b"k1").unwrap();
    /// assert_eq!(value, b"value of k1");
    /// ```
    pub fn call_host(&self, name: &str, input: &[u8]) -> Result<Vec<u8>, HostCallError> {
        self.call_host_borrowed(name, input).map(<[u8]>::to_vec)
    }

    /// [`call_host`](Self::call_host) without copying the answer: it is the
    /// host's, valid until the handler returns.
    pub fn call_host_borrowed(&self, name: &str, input: &[u8]) -> Result<&[u8], HostCallError> {
        let vtable = self.vtable();
        if (vtable.struct_size as usize) < abi::CALL_HOST_VTABLE_SIZE {
            return Err(HostCallError::new(
                abi::host_call_error::UNSUPPORTED,
                "this host is older than ABI 1.5 and has no host functions",
            ));
        }
        let mut output = abi::HostStr::EMPTY;
        let mut error_type = abi::HostStr::EMPTY;
        // SAFETY: the vtable has `call_host` (its size says so, checked
        // above); host pointer valid per `from_raw`; `name` and `input` are
        // read before return; both out-pointers are valid locals.
        let status = unsafe {
            (vtable.call_host)(
                self.raw.host,
                abi::PluginStr::from_slice(name.as_bytes()),
                abi::PluginStr::from_slice(input),
                &mut output,
                &mut error_type,
            )
        };
        // SAFETY: both are host-owned and valid until the call returns,
        // which outlives `&self`.
        let (output, error_type) = unsafe { (output.as_slice(), error_type.as_slice()) };
        if status == abi::STATUS_OK {
            return Ok(output);
        }
        let error_type = match core::str::from_utf8(error_type) {
            Ok("") | Err(_) => abi::host_call_error::FAILED,
            Ok(t) => t,
        };
        Err(HostCallError::new(
            error_type,
            String::from_utf8_lossy(output).into_owned(),
        ))
    }

    pub(crate) fn write_log(&self, level: u32, message: &str) {
        // SAFETY: host pointer valid per `from_raw`; message copied before return.
        unsafe {
            (self.vtable().log)(
                self.raw.host,
                level,
                abi::PluginStr::from_slice(message.as_bytes()),
            )
        }
    }

    pub(crate) fn set_output(&self, kind: u32, body: &[u8]) {
        // SAFETY: host pointer valid per `from_raw`; body copied before return.
        unsafe { (self.vtable().set_output)(self.raw.host, kind, abi::PluginStr::from_slice(body)) }
    }

    pub(crate) fn set_error(&self, error_type: &str, message: &str) {
        // SAFETY: host pointer valid per `from_raw`; strings copied before return.
        unsafe {
            (self.vtable().set_error)(
                self.raw.host,
                abi::PluginStr::from_slice(error_type.as_bytes()),
                abi::PluginStr::from_slice(message.as_bytes()),
            )
        }
    }

    pub(crate) fn report_memory_peak(&self, bytes: u64) {
        // SAFETY: host pointer valid per `from_raw`.
        unsafe { (self.vtable().report_memory_peak)(self.raw.host, bytes) }
    }
}

impl fmt::Debug for Context {
    /// Prints identifying fields only; credentials are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("request_id", &self.request_id())
            .field("function_name", &self.function_name())
            .field("version", &self.version())
            .field("remaining_time_ms", &self.remaining_time_ms())
            .finish_non_exhaustive()
    }
}
