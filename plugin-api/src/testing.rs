//! [`TestContext`]: a context for unit-testing handlers without a host.
//!
//! ```
//! use fnhost_api::{testing::TestContext, Context, HandlerError};
//!
//! fn greet(_payload: &[u8], ctx: &Context) -> Result<String, HandlerError> {
//!     ctx.logger().info("greeting");
//!     Ok(format!("hello {}", ctx.user_data("NAME").unwrap_or("nobody")))
//! }
//!
//! let test = TestContext::new().user_data("NAME", "fnhost");
//! assert_eq!(greet(b"", test.context()).unwrap(), "hello fnhost");
//! assert_eq!(test.log(), "greeting\n");
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::abi::{self, field, HostData, HostStr, PluginStr};
use crate::{Context, HostCallError};

const LOG_LIMIT: usize = 1024 * 1024;

struct TestHost {
    fields: Vec<String>,
    user_data: HashMap<String, String>,
    timeout: Duration,
    deadline_unix_ms: i64,
    memory_mb: u32,
    log: Mutex<String>,
    result: Mutex<Reported>,
    host_functions: HashMap<String, Box<TestHostFunction>>,
    /// Every answer and error type handed out by `call_host`: host-owned
    /// strings stay valid while the context lives.
    answers: Mutex<Answers>,
}

/// A host function of a [`TestContext`].
type TestHostFunction = dyn Fn(&[u8]) -> Result<Vec<u8>, HostCallError> + Send + Sync;

#[derive(Default)]
struct Answers {
    kept: Vec<Box<[u8]>>,
    bytes: usize,
}

impl Answers {
    /// Keeps `bytes` for the context's life and lends them; `None` past the
    /// host's limit on answers held at once.
    fn keep(&mut self, bytes: &[u8]) -> Option<HostStr> {
        if self.bytes.saturating_add(bytes.len()) > abi::MAX_HOST_CALL_ANSWERS {
            return None;
        }
        self.bytes += bytes.len();
        let kept: Box<[u8]> = bytes.into();
        // The box's heap bytes do not move when the box is moved.
        let lent = HostStr::from_slice(&kept);
        self.kept.push(kept);
        Some(lent)
    }
}

/// What the code under test reported through the raw ABI.
#[derive(Default)]
struct Reported {
    output: Option<(u32, Vec<u8>)>,
    error: Option<(String, String)>,
    memory_peak: u64,
}

/// A context backed by plain Rust values, for handler unit tests and
/// benchmarks. Lines logged through it are collected without prefixes.
pub struct TestContext {
    /// Owned (from `Box::into_raw`, freed in `Drop`). Kept as a raw pointer,
    /// never as a `Box`: the context holds a copy of it, and a `Box` (or a
    /// reference) re-asserted for the builder's writes would invalidate that
    /// copy. Every access goes through this pointer, so they share its
    /// permission (checked by Miri under Stacked and Tree Borrows).
    host: std::ptr::NonNull<TestHost>,
    ctx: Context,
}

impl Drop for TestContext {
    fn drop(&mut self) {
        // SAFETY: `host` came from `Box::into_raw` in `new` and is freed only
        // here; the context that copies it is dropped with `self`.
        drop(unsafe { Box::from_raw(self.host.as_ptr()) });
    }
}

// SAFETY: `TestHost` is only read through shared references except for its
// `Mutex`es, and written only by the builder methods, which take `self` by
// value (no shared reference can exist then).
unsafe impl Send for TestContext {}
// SAFETY: as above.
unsafe impl Sync for TestContext {}

fn host<'a>(ptr: *const HostData) -> &'a TestHost {
    // SAFETY: every vtable call passes the pointer `TestContext::new` stored,
    // which points into the `Box<TestHost>` that owns the context.
    unsafe { &*(ptr as *const TestHost) }
}

unsafe extern "C" fn get_field(h: *const HostData, f: u32) -> HostStr {
    match host(h).fields.get(f as usize) {
        Some(s) => HostStr::from_slice(s.as_bytes()),
        None => HostStr::EMPTY,
    }
}
unsafe extern "C" fn remaining_time_ms(h: *const HostData) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    (host(h).deadline_unix_ms - now).max(0)
}
unsafe extern "C" fn deadline_unix_ms(h: *const HostData) -> i64 {
    host(h).deadline_unix_ms
}
unsafe extern "C" fn running_time_s(h: *const HostData) -> u32 {
    host(h).timeout.as_secs() as u32
}
unsafe extern "C" fn memory_size_mb(h: *const HostData) -> u32 {
    host(h).memory_mb
}
unsafe extern "C" fn cpu_millicores(h: *const HostData) -> u32 {
    host(h).memory_mb / 128 * 100 + 200
}
unsafe extern "C" fn get_user_data(h: *const HostData, key: PluginStr, out: *mut HostStr) -> i32 {
    // SAFETY: the plugin lends `key` for this call.
    let key = String::from_utf8_lossy(unsafe { key.as_slice() });
    match host(h).user_data.get(key.as_ref()) {
        Some(v) => {
            // SAFETY: `out` is a valid pointer supplied by the caller.
            unsafe { *out = HostStr::from_slice(v.as_bytes()) };
            1
        }
        None => 0,
    }
}
unsafe extern "C" fn log(h: *mut HostData, _level: u32, message: PluginStr) {
    // SAFETY: the plugin lends `message` for this call.
    let message = String::from_utf8_lossy(unsafe { message.as_slice() });
    if let Ok(mut log) = host(h).log.lock() {
        log.push_str(&message);
        log.push('\n');
        // Bounded like the host's log, so a long benchmark does not grow it forever.
        if log.len() > LOG_LIMIT * 2 {
            let mut cut = log.len() - LOG_LIMIT;
            while !log.is_char_boundary(cut) {
                cut += 1;
            }
            log.drain(..cut);
        }
    }
}
unsafe extern "C" fn set_output(h: *mut HostData, kind: u32, body: PluginStr) {
    if let Ok(mut r) = host(h).result.lock() {
        // SAFETY: the plugin lends `body` for this call.
        r.output = Some((kind, unsafe { body.as_slice() }.to_vec()));
    }
}
unsafe extern "C" fn set_error(h: *mut HostData, ty: PluginStr, message: PluginStr) {
    if let Ok(mut r) = host(h).result.lock() {
        // SAFETY: the plugin lends both strings for this call.
        let (ty, message) = unsafe { (ty.as_slice(), message.as_slice()) };
        r.error = Some((
            String::from_utf8_lossy(ty).into_owned(),
            String::from_utf8_lossy(message).into_owned(),
        ));
    }
}
unsafe extern "C" fn report_memory_peak(h: *mut HostData, bytes: u64) {
    if let Ok(mut r) = host(h).result.lock() {
        r.memory_peak = bytes;
    }
}

unsafe extern "C" fn call_host(
    h: *mut HostData,
    name: PluginStr,
    input: PluginStr,
    output: *mut HostStr,
    error_type: *mut HostStr,
) -> i32 {
    let host = host(h);
    // SAFETY: the plugin lends both for this call.
    let (name, input) = unsafe { (name.as_slice(), input.as_slice()) };
    let answer = match core::str::from_utf8(name)
        .ok()
        .and_then(|name| host.host_functions.get(name))
    {
        None => Err(HostCallError::new(
            abi::host_call_error::NOT_FOUND,
            format!(
                "no host function named {:?} in this TestContext",
                String::from_utf8_lossy(name)
            ),
        )),
        Some(_) if input.len() > abi::MAX_HOST_CALL_INPUT => Err(HostCallError::new(
            abi::host_call_error::INPUT_TOO_LARGE,
            "input over the limit",
        )),
        Some(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(input)))
            .unwrap_or_else(|_| {
                Err(HostCallError::new(
                    abi::host_call_error::PANICKED,
                    "the host function panicked",
                ))
            }),
    };
    let Ok(mut answers) = host.answers.lock() else {
        return abi::STATUS_ERROR;
    };
    let (status, text, ty) = match &answer {
        Ok(bytes) => (abi::STATUS_OK, &bytes[..], &b""[..]),
        Err(e) => (
            abi::STATUS_ERROR,
            e.message().as_bytes(),
            e.error_type().as_bytes(),
        ),
    };
    let (status, lent_text, lent_ty) = match (answers.keep(text), answers.keep(ty)) {
        (Some(t), Some(y)) => (status, t, y),
        _ => (
            abi::STATUS_ERROR,
            HostStr::from_slice(b"too many bytes of answers held at once"),
            HostStr::from_slice(abi::host_call_error::LIMIT_EXCEEDED.as_bytes()),
        ),
    };
    if !output.is_null() {
        // SAFETY: a non-null out-pointer the caller supplied for this call.
        unsafe { output.write(lent_text) };
    }
    if !error_type.is_null() {
        // SAFETY: as above.
        unsafe { error_type.write(lent_ty) };
    }
    status
}

static VTABLE: abi::ContextVTable = abi::ContextVTable {
    struct_size: core::mem::size_of::<abi::ContextVTable>() as u32,
    reserved: 0,
    get_field,
    remaining_time_ms,
    deadline_unix_ms,
    running_time_s,
    memory_size_mb,
    cpu_millicores,
    get_user_data,
    log,
    set_output,
    set_error,
    report_memory_peak,
    call_host,
};

impl Default for TestContext {
    fn default() -> Self {
        TestContext::new()
    }
}

impl TestContext {
    /// A context with request id `test-request`, function `test`, version
    /// `latest`, package `default`, 3 s timeout and 128 MB.
    pub fn new() -> TestContext {
        let mut fields = vec![String::new(); field::COUNT as usize];
        fields[field::REQUEST_ID as usize] = "test-request".into();
        fields[field::FUNCTION_NAME as usize] = "test".into();
        fields[field::VERSION as usize] = "latest".into();
        fields[field::PACKAGE as usize] = "default".into();
        let host = Box::into_raw(Box::new(TestHost {
            fields,
            user_data: HashMap::new(),
            timeout: Duration::from_secs(3),
            deadline_unix_ms: 0,
            memory_mb: 128,
            log: Mutex::new(String::new()),
            result: Mutex::new(Reported::default()),
            host_functions: HashMap::new(),
            answers: Mutex::new(Answers::default()),
        }));
        let raw = abi::Context {
            vtable: &VTABLE,
            host: host as *mut HostData,
        };
        // SAFETY: the vtable is static and `host` points at the heap
        // `TestHost` (its address never changes), which lives exactly as long
        // as the `Context` stored beside it.
        let ctx = unsafe { Context::from_raw(&raw) };
        // SAFETY: `Box::into_raw` never returns null.
        let host = unsafe { std::ptr::NonNull::new_unchecked(host) };
        TestContext { host, ctx }.refresh_deadline()
    }

    fn host(&self) -> &TestHost {
        // SAFETY: owned by `self` (see the field); writes happen only
        // through `host_mut`, which needs `&mut self`.
        unsafe { self.host.as_ref() }
    }

    fn host_mut(&mut self) -> &mut TestHost {
        // SAFETY: as in `host`; `&mut self` rules out any other reference
        // derived from `self`, and the context's copy of the pointer is not
        // used while this borrow lives.
        unsafe { self.host.as_mut() }
    }

    fn refresh_deadline(mut self) -> TestContext {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let timeout = self.host().timeout;
        self.host_mut().deadline_unix_ms = now + timeout.as_millis() as i64;
        self
    }

    fn with_field(mut self, f: u32, value: &str) -> TestContext {
        self.host_mut().fields[f as usize] = value.to_owned();
        self
    }

    /// Sets the request id.
    pub fn request_id(self, id: &str) -> TestContext {
        self.with_field(field::REQUEST_ID, id)
    }
    /// Sets the function name.
    pub fn function_name(self, name: &str) -> TestContext {
        self.with_field(field::FUNCTION_NAME, name)
    }
    /// Sets the version.
    pub fn version(self, version: &str) -> TestContext {
        self.with_field(field::VERSION, version)
    }
    /// Sets the alias.
    pub fn alias(self, alias: &str) -> TestContext {
        self.with_field(field::ALIAS, alias)
    }
    /// Sets the package.
    pub fn package(self, package: &str) -> TestContext {
        self.with_field(field::PACKAGE, package)
    }
    /// Sets the project id.
    pub fn project_id(self, project: &str) -> TestContext {
        self.with_field(field::PROJECT_ID, project)
    }
    /// Sets the security token.
    pub fn security_token(self, token: &str) -> TestContext {
        self.with_field(field::SECURITY_TOKEN, token)
    }

    /// Sets the trace id (`Context::trace_id`).
    pub fn trace_id(self, trace_id: &str) -> TestContext {
        self.with_field(field::TRACE_ID, trace_id)
    }
    /// Adds a user data entry.
    pub fn user_data(mut self, key: &str, value: &str) -> TestContext {
        self.host_mut()
            .user_data
            .insert(key.to_owned(), value.to_owned());
        self
    }
    /// Marks the invocation cancelled by its caller
    /// ([`Context::is_cancelled`]).
    pub fn cancelled(self) -> TestContext {
        self.with_field(field::CANCELLED, "1")
    }
    /// Offers a host function to the code under test
    /// ([`Context::call_host`]): `f` gets the input and answers the output
    /// or a [`HostCallError`] (a panic in it answers
    /// `HostFunctionPanicked`, as the host does).
    pub fn host_function(
        mut self,
        name: &str,
        f: impl Fn(&[u8]) -> Result<Vec<u8>, HostCallError> + Send + Sync + 'static,
    ) -> TestContext {
        self.host_mut()
            .host_functions
            .insert(name.to_owned(), Box::new(f));
        self
    }
    /// Sets the memory size in MB.
    pub fn memory_size_mb(mut self, mb: u32) -> TestContext {
        self.host_mut().memory_mb = mb;
        self
    }
    /// Sets the timeout; the deadline becomes now + timeout.
    pub fn timeout(mut self, timeout: Duration) -> TestContext {
        self.host_mut().timeout = timeout;
        self.refresh_deadline()
    }

    /// The context to pass to a handler.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The lines logged so far (the last 1 MiB or more), each followed by a newline.
    pub fn log(&self) -> String {
        self.host()
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// The error set through the raw ABI (`set_error`), as `(type, message)`.
    pub fn error(&self) -> Option<(String, String)> {
        self.host().result.lock().ok().and_then(|r| r.error.clone())
    }

    /// The output set through the raw ABI (`set_output`), as `(kind, body)`.
    pub fn output(&self) -> Option<(u32, Vec<u8>)> {
        self.host()
            .result
            .lock()
            .ok()
            .and_then(|r| r.output.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built, changed and then used, as every test does: Miri (Stacked and
    /// Tree Borrows) checks that the host pointer inside the context stays
    /// valid across the builder's writes and the vtable's reads.
    #[test]
    fn a_context_changed_after_creation_reads_and_writes_soundly() {
        let test = TestContext::new()
            .user_data("NAME", "fnhost")
            .request_id("r-1")
            .memory_size_mb(256)
            .timeout(Duration::from_secs(5));
        let ctx = test.context();
        assert_eq!(ctx.user_data("NAME"), Some("fnhost"));
        assert_eq!(ctx.request_id(), "r-1");
        assert_eq!(ctx.memory_size_mb(), 256);
        ctx.logger().info("one");
        std::thread::scope(|s| {
            s.spawn(|| ctx.logger().info("two"));
        });
        // SAFETY: the raw vtable of a live context, called as a plugin would.
        unsafe {
            let raw = ctx.as_raw();
            ((*raw.vtable).set_error)(
                raw.host,
                PluginStr::from_static("Mine"),
                PluginStr::from_static("failed"),
            );
        }
        assert_eq!(test.log(), "one\ntwo\n");
        assert_eq!(test.error(), Some(("Mine".into(), "failed".into())));
        let moved = test;
        assert_eq!(moved.context().request_id(), "r-1");
    }

    #[test]
    fn host_functions_answer_and_fail_typed() {
        let test = TestContext::new()
            .host_function("upper", |input| Ok(input.to_ascii_uppercase()))
            .host_function("refuse", |_| Err(HostCallError::new("Forbidden", "no")))
            .host_function("boom", |_| panic!("boom"));
        let ctx = test.context();
        assert_eq!(ctx.call_host("upper", b"abc").unwrap(), b"ABC");
        let first = ctx.call_host_borrowed("upper", b"kept").unwrap();
        assert_eq!(ctx.call_host("upper", b"more").unwrap(), b"MORE");
        assert_eq!(
            first, b"KEPT",
            "an answer stays valid while the context lives"
        );
        let e = ctx.call_host("refuse", b"").unwrap_err();
        assert_eq!((e.error_type(), e.message()), ("Forbidden", "no"));
        let e = ctx.call_host("boom", b"").unwrap_err();
        assert_eq!(e.error_type(), abi::host_call_error::PANICKED);
        let e = ctx.call_host("none", b"").unwrap_err();
        assert_eq!(e.error_type(), abi::host_call_error::NOT_FOUND);
    }

    /// A 1.5 plugin on a 1.4 host: the vtable is shorter, and `call_host`
    /// answers `HostFunctionsUnsupported` without reading past its end.
    #[test]
    fn a_vtable_without_call_host_answers_unsupported() {
        #[repr(C)]
        struct Vtable14 {
            table: abi::ContextVTable,
        }
        // The 1.4 size, with a poisoned call_host that must never be called.
        unsafe extern "C" fn poisoned(
            _: *mut HostData,
            _: PluginStr,
            _: PluginStr,
            _: *mut HostStr,
            _: *mut HostStr,
        ) -> i32 {
            panic!("call_host read from a 1.4 vtable")
        }
        static OLD: Vtable14 = Vtable14 {
            table: abi::ContextVTable {
                struct_size: core::mem::offset_of!(abi::ContextVTable, call_host) as u32,
                call_host: poisoned,
                ..VTABLE
            },
        };
        let test = TestContext::new();
        let raw = abi::Context {
            vtable: &OLD.table,
            host: test.context().as_raw().host,
        };
        // SAFETY: the vtable is static; the host pointer is `test`'s, alive
        // for the context's use below.
        let ctx = unsafe { Context::from_raw(&raw) };
        let e = ctx.call_host("anything", b"").unwrap_err();
        assert_eq!(e.error_type(), abi::host_call_error::UNSUPPORTED);
        assert_eq!(ctx.request_id(), "test-request");
    }
}
