//! The only FFI surface between the fnhost host and a plugin.
//!
//! Every type here is `#[repr(C)]` and mirrors `include/fnhost.h` field for
//! field; the header is the normative description (ownership, lifetimes,
//! threading). Handler authors never touch this module directly: the
//! [`export_plugin!`](crate::export_plugin) macro and [`Context`](crate::Context)
//! wrap it. The host crate uses the same definitions, so both sides of the
//! boundary are compiled from one source.
//!
//! Naming follows the ownership rule of the header: a [`HostStr`] is memory
//! owned by the host and lent to the plugin for the duration of one call; a
//! [`PluginStr`] is memory owned by the plugin that the host either copies
//! before the call returns or (for descriptor data) reads while the library
//! stays mapped.

use core::ffi::c_void;
use core::marker::PhantomData;

/// ABI major version. A plugin whose major differs from the host's is refused.
pub const ABI_MAJOR: u16 = 1;
/// ABI minor version. A plugin of an older or equal minor is accepted; a newer
/// minor is refused (it may call context functions this host lacks).
///
/// - 1.0: the first ABI.
/// - 1.1: the descriptor gives the element size of every table
///   (`*_entry_size`), so entries can grow in later minors; handlers and
///   initializers are called as `"C-unwind"` functions.
/// - 1.2: [`field::TRACE_ID`], the invocation's W3C trace id (a 1.1 host
///   reads unknown fields as empty, so a 1.2 plugin needs no check).
/// - 1.3: [`HandlerEntry::event`], the event a handler takes (`apig`,
///   `timer`, ..., `json`, `bytes`), so that `fnhost build` and `deploy` can
///   warn when a trigger would hand it an event it does not take. A 1.2
///   entry is shorter: the host reads its event as undeclared.
/// - 1.4: [`START_THREAD_SYMBOL`], an optional exported function: a worker
///   process serves the plugin's calls from a thread the plugin's own
///   runtime starts ([`StartThreadFn`]). The host looks it up only in a
///   plugin of 1.4 or newer.
/// - 1.5: [`ContextVTable::call_host`], host functions: a handler calls a
///   function the embedding program (or `fnhost serve`) registered by name.
///   A plugin that may run on an older host checks
///   [`ContextVTable::struct_size`] first ([`CALL_HOST_VTABLE_SIZE`]).
pub const ABI_MINOR: u16 = 5;
/// `descriptor_size` of a 1.0 descriptor: the smallest the host accepts.
pub const DESCRIPTOR_SIZE_1_0: u64 = 96;
/// First field of every descriptor: the bytes `FNHP` read as a little-endian `u32`.
pub const DESCRIPTOR_MAGIC: u32 = u32::from_le_bytes(*b"FNHP");
/// Name of the data symbol every plugin exports (type [`Descriptor`]).
pub const DESCRIPTOR_SYMBOL: &str = "fnhost_plugin_descriptor";
/// Name of the function a 1.4 plugin may export (type [`StartThreadFn`]).
pub const START_THREAD_SYMBOL: &str = "fnhost_start_thread";

/// Most bytes of an error type the host keeps from `set_error` (longer ones
/// are cut and marked).
pub const MAX_ERROR_TYPE: usize = 256;
/// Most bytes of an error message the host keeps from `set_error`.
pub const MAX_ERROR_MESSAGE: usize = 64 * 1024;
/// Most bytes of one log line the host keeps from `log`.
pub const MAX_LOG_LINE: usize = 16 * 1024;
/// 1.5: the longest input a host call may pass (longer is refused).
pub const MAX_HOST_CALL_INPUT: usize = 6 * 1024 * 1024;
/// 1.5: the longest host function name.
pub const MAX_HOST_FUNCTION_NAME: usize = 128;
/// 1.5: the most host calls one invocation may make.
pub const MAX_HOST_CALLS: u32 = 100_000;
/// 1.5: the most bytes of host calls' answers one invocation holds at once
/// (they stay valid until the handler returns).
pub const MAX_HOST_CALL_ANSWERS: usize = 64 * 1024 * 1024;
/// 1.5: the smallest [`ContextVTable::struct_size`] that has
/// [`ContextVTable::call_host`].
pub const CALL_HOST_VTABLE_SIZE: usize =
    core::mem::offset_of!(ContextVTable, call_host) + core::mem::size_of::<usize>();

/// The error types a host reports for host calls itself (a host function's
/// own failures carry the type it gave).
pub mod host_call_error {
    /// No host function of that name here, or not one this function may call.
    pub const NOT_FOUND: &str = "HostFunctionNotFound";
    /// The input (or the name) is over its limit.
    pub const INPUT_TOO_LARGE: &str = "HostCallInputTooLarge";
    /// Too many calls, or too many bytes of answers, in one invocation.
    pub const LIMIT_EXCEEDED: &str = "HostCallLimitExceeded";
    /// Host functions that invoke functions that call host functions,
    /// nested too deep.
    pub const DEPTH_EXCEEDED: &str = "HostCallDepthExceeded";
    /// The host function failed without an answer (a panic, in Rust).
    pub const PANICKED: &str = "HostFunctionPanicked";
    /// Host functions are not reachable from here (a library's pre-flight,
    /// or a worker whose host stopped answering).
    pub const UNAVAILABLE: &str = "HostFunctionUnavailable";
    /// The host is older than ABI 1.5 (its context has no `call_host`).
    pub const UNSUPPORTED: &str = "HostFunctionsUnsupported";
    /// The invocation's deadline has passed.
    pub const TIMEOUT: &str = "timeout";
    /// A host function's failure that gave no type of its own.
    pub const FAILED: &str = "HostFunctionError";
}

/// Set (to `1`) in the environment of a worker process (process isolation).
pub const WORKER_PROCESS_ENV: &str = "FNHOST_WORKER_PROCESS";

/// Status returned by handlers and initializers: success.
pub const STATUS_OK: i32 = 0;
/// Status returned by handlers and initializers: failure; the plugin reported
/// the error through [`ContextVTable::set_error`] (or the host substitutes a
/// generic one).
pub const STATUS_ERROR: i32 = 1;

/// Context string fields, read with [`ContextVTable::get_field`].
pub mod field {
    /// The invocation's request id (a UUID).
    pub const REQUEST_ID: u32 = 0;
    /// The function's name.
    pub const FUNCTION_NAME: u32 = 1;
    /// The version served (`latest` for the head).
    pub const VERSION: u32 = 2;
    /// The alias the invocation came through, empty when none.
    pub const ALIAS: u32 = 3;
    /// The function's package (function group).
    pub const PACKAGE: u32 = 4;
    /// The project id.
    pub const PROJECT_ID: u32 = 5;
    /// Deprecated temporary access key.
    pub const ACCESS_KEY: u32 = 6;
    /// Deprecated temporary secret key.
    pub const SECRET_KEY: u32 = 7;
    /// Security (delegated) access key.
    pub const SECURITY_ACCESS_KEY: u32 = 8;
    /// Security (delegated) secret key.
    pub const SECURITY_SECRET_KEY: u32 = 9;
    /// Security token.
    pub const SECURITY_TOKEN: u32 = 10;
    /// IAM token.
    pub const TOKEN: u32 = 11;
    /// (1.2) The invocation's W3C trace id: 32 lowercase hex digits, or
    /// empty.
    pub const TRACE_ID: u32 = 12;
    /// 1.5: `"1"` once the invocation's caller cancelled it (the host
    /// discards its result): a cooperative handler stops. Empty otherwise,
    /// and on an older host.
    pub const CANCELLED: u32 = 13;
    /// Number of defined fields; unknown fields read as empty strings.
    pub const COUNT: u32 = 14;
}

/// Log levels accepted by [`ContextVTable::log`] (same numbering as the `log` crate).
pub mod level {
    /// Error.
    pub const ERROR: u32 = 1;
    /// Warning.
    pub const WARN: u32 = 2;
    /// Information (what `Logf` writes in FunctionGraph's Go runtime).
    pub const INFO: u32 = 3;
    /// Debug.
    pub const DEBUG: u32 = 4;
    /// Trace.
    pub const TRACE: u32 = 5;
}

/// How the host should label a result body ([`ContextVTable::set_output`]).
pub mod output_kind {
    /// No body.
    pub const EMPTY: u32 = 0;
    /// Raw bytes (`application/octet-stream`).
    pub const BYTES: u32 = 1;
    /// UTF-8 text (`text/plain; charset=utf-8`).
    pub const TEXT: u32 = 2;
    /// A JSON document (`application/json`).
    pub const JSON: u32 = 3;
}

/// Bytes owned by the host, lent to the plugin until the current call returns.
/// Not NUL-terminated. `ptr` may be dangling when `len == 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HostStr {
    /// First byte.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

/// Bytes owned by the plugin. When passed to a context function, the host
/// copies them before that function returns; in the descriptor they must stay
/// valid while the library is mapped. Not NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PluginStr {
    /// First byte.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl HostStr {
    /// The empty string.
    pub const EMPTY: HostStr = HostStr {
        ptr: core::ptr::NonNull::<u8>::dangling().as_ptr(),
        len: 0,
    };

    /// Lends `bytes` to the plugin.
    pub fn from_slice(bytes: &[u8]) -> HostStr {
        HostStr {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Views the lent bytes.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be readable for the chosen lifetime `'a`, which the
    /// host guarantees until the call that produced this value returns.
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: non-null and readable for `len` bytes per the caller's contract.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl PluginStr {
    /// Points at `s` (which must outlive every use the host makes of it).
    pub const fn from_static(s: &'static str) -> PluginStr {
        PluginStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Points at `bytes` for the duration of one context call.
    pub fn from_slice(bytes: &[u8]) -> PluginStr {
        PluginStr {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Views the plugin's bytes.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be readable for `'a`.
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: non-null and readable for `len` bytes per the caller's contract.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Opaque host state behind a [`Context`]. Plugins only pass the pointer back.
#[repr(C)]
pub struct HostData {
    _opaque: [u8; 0],
    _not_send_sync: PhantomData<*mut c_void>,
}

/// What a handler or initializer receives: the host's function table and the
/// opaque state it operates on. Valid only during the call it was passed to.
#[repr(C)]
pub struct Context {
    /// Host functions; static for the host's lifetime.
    pub vtable: *const ContextVTable,
    /// Host state of this invocation; pass it back to every vtable function.
    pub host: *mut HostData,
}

/// Functions the host offers to a running handler. All are thread-safe and
/// never unwind. Strings they return are [`HostStr`]s valid until the handler
/// (or initializer) call returns.
#[repr(C)]
pub struct ContextVTable {
    /// `size_of::<ContextVTable>()` as the host compiled it; a plugin of a newer
    /// minor checks it before touching functions appended after this version.
    pub struct_size: u32,
    /// Always 0.
    pub reserved: u32,
    /// A string field (see [`field`]); unknown fields and unset values are empty.
    pub get_field: unsafe extern "C" fn(host: *const HostData, field: u32) -> HostStr,
    /// Milliseconds left before the deadline, floored at 0.
    pub remaining_time_ms: unsafe extern "C" fn(host: *const HostData) -> i64,
    /// The deadline as milliseconds since the Unix epoch.
    pub deadline_unix_ms: unsafe extern "C" fn(host: *const HostData) -> i64,
    /// The configured timeout in seconds (`GetRunningTimeInSeconds`).
    pub running_time_s: unsafe extern "C" fn(host: *const HostData) -> u32,
    /// The configured memory size in MB.
    pub memory_size_mb: unsafe extern "C" fn(host: *const HostData) -> u32,
    /// CPU share in millicores (`memory / 128 * 100 + 200`).
    pub cpu_millicores: unsafe extern "C" fn(host: *const HostData) -> u32,
    /// Looks up user data (the function's environment). Returns 1 and writes
    /// `*value` when found, 0 when not. `key` is copied before return.
    pub get_user_data:
        unsafe extern "C" fn(host: *const HostData, key: PluginStr, value: *mut HostStr) -> i32,
    /// Appends one line to the invocation's log; the host adds the time and
    /// request-id prefix and the newline. `message` is copied before return.
    pub log: unsafe extern "C" fn(host: *mut HostData, level: u32, message: PluginStr),
    /// Sets the result (see [`output_kind`]); the host copies `body` before
    /// return. Calling it again replaces the previous result.
    pub set_output: unsafe extern "C" fn(host: *mut HostData, kind: u32, body: PluginStr),
    /// Sets the error reported when the call returns [`STATUS_ERROR`]; both
    /// strings are copied before return. An empty type means `FunctionReturnError`.
    pub set_error:
        unsafe extern "C" fn(host: *mut HostData, error_type: PluginStr, message: PluginStr),
    /// Reports the peak bytes the plugin allocated during this call
    /// (`memoryUsed` in the summary). Optional: plugins that do not call it
    /// report 0.
    pub report_memory_peak: unsafe extern "C" fn(host: *mut HostData, peak_bytes: u64),
    // ---- appended in 1.5 (check `struct_size` first) ----
    /// Calls the host function `name` with `input`, both read before
    /// return. [`STATUS_OK`]: `*output` is its answer; [`STATUS_ERROR`]:
    /// `*error_type` names the failure ([`host_call_error`], or the host
    /// function's own) and `*output` is the message. Both stay valid until
    /// the handler (or initializer) returns; either pointer may be null.
    pub call_host: unsafe extern "C" fn(
        host: *mut HostData,
        name: PluginStr,
        input: PluginStr,
        output: *mut HostStr,
        error_type: *mut HostStr,
    ) -> i32,
}

/// `int32_t handler(const fnhost_context *ctx, fnhost_host_str payload)`.
///
/// Called as `"C-unwind"`: a C++ exception or a foreign unwind that escapes
/// a handler (which the header forbids) then ends the host with a defined
/// abort instead of undefined behaviour. The C side declares it as a plain
/// C function; the calling convention is the same.
pub type HandlerFn = unsafe extern "C-unwind" fn(ctx: *const Context, payload: HostStr) -> i32;
/// `int32_t initializer(const fnhost_context *ctx)`, called as a handler is.
pub type InitializerFn = unsafe extern "C-unwind" fn(ctx: *const Context) -> i32;

/// What a thread started by [`StartThreadFn`] calls, once.
pub type ThreadEntry = unsafe extern "C" fn(arg: *mut core::ffi::c_void);

/// `fnhost_start_thread` (1.4, optional): starts a thread of the plugin's
/// own runtime that calls `entry(arg)` once, answering 0; anything else and
/// `entry` is never called. A runtime that makes calls from threads it did
/// not create expensive (Go) exports it, and a worker process then serves
/// every call from that thread.
pub type StartThreadFn =
    unsafe extern "C" fn(entry: ThreadEntry, arg: *mut core::ffi::c_void) -> i32;

/// One named handler in the descriptor's table.
#[repr(C)]
pub struct HandlerEntry {
    /// The handler part of the entry (`Handler` in `testplugin.Handler`).
    pub name: PluginStr,
    /// The function; never null (the host refuses a descriptor with a null entry).
    pub handler: Option<HandlerFn>,
    /// 1.3: the event the handler takes: [`event::APIG`] for an APIG
    /// trigger's HTTP event, `timer`, `kafka`, ... for other triggers'
    /// events, [`event::JSON`] for a JSON document of its own,
    /// [`event::BYTES`] for anything. Empty: undeclared (a 1.2 plugin, or
    /// a C plugin that did not say).
    pub event: PluginStr,
}

/// The values of [`HandlerEntry::event`] with a meaning of their own (the
/// trigger events are named by their kind, as `fnhost event` names them).
pub mod event {
    /// An APIG trigger's HTTP event (`ApigEvent`).
    pub const APIG: &str = "apig";
    /// A timer trigger's event (`TimerEvent`).
    pub const TIMER: &str = "timer";
    /// A JSON document of the handler's own type (`Json<T>`).
    pub const JSON: &str = "json";
    /// Any payload: the handler reads the bytes itself.
    pub const BYTES: &str = "bytes";
}

/// The size of a 1.0 to 1.2 [`HandlerEntry`] (before `event`): the
/// smallest handler entry a host accepts.
pub const HANDLER_ENTRY_SIZE_1_2: usize = core::mem::offset_of!(HandlerEntry, event);

/// One named initializer in the descriptor's table.
#[repr(C)]
pub struct InitializerEntry {
    /// The initializer part of the entry (`Init` in `testplugin.Init`).
    pub name: PluginStr,
    /// The function; never null (the host refuses a descriptor with a null entry).
    pub initializer: Option<InitializerFn>,
}

/// One field of a [`TypeLayout`].
#[repr(C)]
pub struct FieldLayout {
    /// Field name as spelled in `fnhost.h`.
    pub name: PluginStr,
    /// Byte offset.
    pub offset: u64,
    /// Byte size.
    pub size: u64,
}

/// The layout of one ABI type as the plugin was compiled, for the host's
/// structural check.
#[repr(C)]
pub struct TypeLayout {
    /// Type name as spelled in `fnhost.h` (`fnhost_context_vtable`, ...).
    pub name: PluginStr,
    /// `sizeof`.
    pub size: u64,
    /// `alignof`.
    pub align: u64,
    /// The fields, in declaration order.
    pub fields: *const FieldLayout,
    /// Number of fields.
    pub field_count: usize,
}

/// The descriptor a plugin exports as the data symbol `fnhost_plugin_descriptor`.
/// The host reads and checks it before calling any plugin code. The first
/// three fields never change position in any ABI version.
#[repr(C)]
pub struct Descriptor {
    /// [`DESCRIPTOR_MAGIC`].
    pub magic: u32,
    /// ABI major the plugin was built against.
    pub abi_major: u16,
    /// ABI minor the plugin was built against.
    pub abi_minor: u16,
    /// `size_of::<Descriptor>()` as the plugin compiled it.
    pub descriptor_size: u64,
    /// The plugin's name (informational; the entry uses the file name).
    pub plugin_name: PluginStr,
    /// What built the plugin, e.g. `fnhost-api 0.1.0` (informational).
    pub sdk: PluginStr,
    /// Handler table.
    pub handlers: *const HandlerEntry,
    /// Number of handlers.
    pub handler_count: usize,
    /// Initializer table (may be null when `initializer_count` is 0).
    pub initializers: *const InitializerEntry,
    /// Number of initializers.
    pub initializer_count: usize,
    /// Layout of the ABI types as the plugin saw them; null skips the
    /// structural check (only the version check applies).
    pub layout: *const TypeLayout,
    /// Number of entries in `layout`.
    pub layout_count: usize,
    // ---- appended in 1.1 (a 1.0 descriptor ends above; the host reads
    // these as 0 for it and uses the 1.0 element sizes) ----
    /// `size_of::<HandlerEntry>()` as the plugin compiled it.
    pub handler_entry_size: u32,
    /// `size_of::<InitializerEntry>()` as the plugin compiled it.
    pub initializer_entry_size: u32,
    /// `size_of::<TypeLayout>()` as the plugin compiled it.
    pub layout_entry_size: u32,
    /// `size_of::<FieldLayout>()` as the plugin compiled it (every layout
    /// field table).
    pub field_entry_size: u32,
}

// SAFETY: a descriptor and the tables it points to are immutable static data
// (the header requires `const`), so sharing references across threads is sound.
unsafe impl Sync for Descriptor {}
// SAFETY: as for `Descriptor`: immutable static data.
unsafe impl Sync for HandlerEntry {}
// SAFETY: as for `Descriptor`: immutable static data.
unsafe impl Sync for InitializerEntry {}
// SAFETY: as for `Descriptor`: immutable static data.
unsafe impl Sync for TypeLayout {}
// SAFETY: as for `Descriptor`: immutable static data.
unsafe impl Sync for FieldLayout {}
// SAFETY: the host's vtable is an immutable static table of function pointers.
unsafe impl Sync for ContextVTable {}

/// Builds a [`TypeLayout`] from a Rust type and its fields, naming them as the
/// C header does.
macro_rules! type_layout {
    ($cname:literal, $ty:ty, [$($field:ident),* $(,)?]) => {{
        const FIELDS: &[FieldLayout] = &[$(FieldLayout {
            name: PluginStr::from_static(stringify!($field)),
            offset: core::mem::offset_of!($ty, $field) as u64,
            size: {
                // The size of a field, computed without a value of the type.
                const fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
                    core::mem::size_of::<F>()
                }
                size_of_field::<$ty, _>(|v| &v.$field) as u64
            },
        }),*];
        TypeLayout {
            name: PluginStr::from_static($cname),
            size: core::mem::size_of::<$ty>() as u64,
            align: core::mem::align_of::<$ty>() as u64,
            fields: FIELDS.as_ptr(),
            field_count: FIELDS.len(),
        }
    }};
}

/// The layout of every ABI type as this crate compiles them. Plugins built
/// with `export_plugin!` embed it in their descriptor; the host compares it
/// with its own copy and refuses a plugin whose layout differs.
pub static LAYOUT: [TypeLayout; 9] = [
    type_layout!("fnhost_host_str", HostStr, [ptr, len]),
    type_layout!("fnhost_plugin_str", PluginStr, [ptr, len]),
    type_layout!("fnhost_context", Context, [vtable, host]),
    type_layout!(
        "fnhost_context_vtable",
        ContextVTable,
        [
            struct_size,
            reserved,
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
        ]
    ),
    type_layout!("fnhost_handler_entry", HandlerEntry, [name, handler, event]),
    type_layout!(
        "fnhost_initializer_entry",
        InitializerEntry,
        [name, initializer]
    ),
    type_layout!("fnhost_field_layout", FieldLayout, [name, offset, size]),
    type_layout!(
        "fnhost_type_layout",
        TypeLayout,
        [name, size, align, fields, field_count]
    ),
    type_layout!(
        "fnhost_descriptor",
        Descriptor,
        [
            magic,
            abi_major,
            abi_minor,
            descriptor_size,
            plugin_name,
            sdk,
            handlers,
            handler_count,
            initializers,
            initializer_count,
            layout,
            layout_count,
            handler_entry_size,
            initializer_entry_size,
            layout_entry_size,
            field_entry_size,
        ]
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn find(name: &str) -> &'static TypeLayout {
        LAYOUT
            .iter()
            // SAFETY: names in LAYOUT point at static strings.
            .find(|t| unsafe { t.name.as_slice() } == name.as_bytes())
            .expect("type in layout table")
    }

    #[test]
    fn layout_table_records_offsets_and_sizes_of_each_field() {
        let vt = find("fnhost_context_vtable");
        assert_eq!(vt.size as usize, core::mem::size_of::<ContextVTable>());
        // SAFETY: `fields` points at a static array of `field_count` entries.
        let fields = unsafe { core::slice::from_raw_parts(vt.fields, vt.field_count) };
        assert_eq!(fields.len(), 14);
        let log = fields
            .iter()
            // SAFETY: field names in LAYOUT point at static strings.
            .find(|f| unsafe { f.name.as_slice() } == b"log")
            .unwrap();
        assert_eq!(
            log.offset as usize,
            core::mem::offset_of!(ContextVTable, log)
        );
        assert_eq!(log.size as usize, core::mem::size_of::<usize>());
        let d = find("fnhost_descriptor");
        // SAFETY: as above.
        let fields = unsafe { core::slice::from_raw_parts(d.fields, d.field_count) };
        // SAFETY: as above.
        let first = unsafe { fields[0].name.as_slice() };
        assert_eq!(first, b"magic");
        assert_eq!(fields[0].size, 4);
        assert_eq!(fields[1].offset, 4);
    }

    #[test]
    fn a_1_0_descriptor_ends_where_1_1_appended_its_fields() {
        assert_eq!(
            core::mem::offset_of!(Descriptor, handler_entry_size) as u64,
            DESCRIPTOR_SIZE_1_0
        );
    }

    #[test]
    fn magic_spells_fnhp() {
        assert_eq!(&DESCRIPTOR_MAGIC.to_le_bytes(), b"FNHP");
    }
}
