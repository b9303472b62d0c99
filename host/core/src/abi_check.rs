//! Checks a plugin's descriptor before any of its code runs: magic, ABI
//! version (another major, or a newer minor, is refused), the structural
//! layout of every ABI type as the plugin was compiled (so a plugin built
//! against a changed API is refused with a readable difference instead of
//! running into undefined behaviour), and the handler and initializer tables.

use std::collections::HashSet;
use std::mem::size_of;

use fnhost_api::abi::{self, Descriptor, FieldLayout, InitializerEntry, PluginStr, TypeLayout};

/// The checked contents of a descriptor, copied into host memory.
#[derive(Clone)]
pub struct PluginInfo {
    /// The plugin's declared name.
    pub name: String,
    /// What built it (e.g. `fnhost-api 0.1.0`).
    pub sdk: String,
    /// ABI major.minor it was built against.
    pub abi: (u16, u16),
    /// Whether it carried a layout table (and so was structurally checked).
    pub layout_checked: bool,
    /// Handlers by name, in table order (names: [`Library::handler_names`](crate::Library::handler_names)).
    pub(crate) handlers: Vec<(String, abi::HandlerFn)>,
    /// Initializers by name, in table order.
    pub(crate) initializers: Vec<(String, abi::InitializerFn)>,
    /// Each handler's name and the event it takes, in table order (ABI
    /// 1.3: `apig`, `timer`, ..., `json`, `bytes`; empty when undeclared).
    pub handler_events: Vec<(String, String)>,
}

impl std::fmt::Debug for PluginInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInfo")
            .field("name", &self.name)
            .field("sdk", &self.sdk)
            .field("abi", &self.abi)
            .field(
                "handlers",
                &self.handlers.iter().map(|h| &h.0).collect::<Vec<_>>(),
            )
            .field(
                "initializers",
                &self.initializers.iter().map(|h| &h.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why a descriptor was refused (turned into a `LoadError` with the path).
#[derive(Debug, PartialEq, Eq)]
pub enum CheckError {
    /// Another major, or a newer minor.
    Version {
        /// Plugin major.
        major: u16,
        /// Plugin minor.
        minor: u16,
    },
    /// Type layouts differ; one line per difference.
    Layout(Vec<String>),
    /// Anything else malformed.
    Invalid(String),
}

const MAX_TABLE: usize = 4096;
const MAX_NAME: usize = 256;
/// Largest table element accepted (entries are a few pointers each).
const MAX_ENTRY: usize = 4096;

/// Reads a descriptor string.
///
/// # Safety
/// `s` must point at `len` readable bytes while the library is mapped.
unsafe fn read_name(s: PluginStr, what: &str) -> Result<String, CheckError> {
    if s.len > MAX_NAME {
        return Err(CheckError::Invalid(format!(
            "{what} is {} bytes long",
            s.len
        )));
    }
    if s.len > 0 && s.ptr.is_null() {
        return Err(CheckError::Invalid(format!("{what} is a null pointer")));
    }
    // SAFETY: non-null with `len` bytes per the caller's contract.
    let bytes = unsafe { s.as_slice() };
    String::from_utf8(bytes.to_vec())
        .map_err(|_| CheckError::Invalid(format!("{what} is not UTF-8")))
}

/// Copies a descriptor table, entry by entry, with the plugin's element
/// size as the stride: each entry's first `min(elem_size, size_of::<T>())`
/// bytes land in a zeroed `T`, so entries may grow in later minors (an
/// older, shorter entry, at least `min_size` bytes, reads its missing
/// fields as zero).
///
/// # Safety
/// `ptr` must point at `count` entries of `elem_size` bytes each, readable
/// while the library is mapped, and `T` must be valid when zeroed.
unsafe fn table<T>(
    ptr: *const T,
    count: usize,
    elem_size: usize,
    min_size: usize,
    what: &str,
) -> Result<Vec<T>, CheckError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if count > MAX_TABLE {
        return Err(CheckError::Invalid(format!("{what} has {count} entries")));
    }
    let align = std::mem::align_of::<T>();
    if elem_size < min_size.min(std::mem::size_of::<T>())
        || elem_size > MAX_ENTRY
        || !elem_size.is_multiple_of(align)
    {
        return Err(CheckError::Invalid(format!(
            "{what} entries are {elem_size} bytes, expected at least {min_size} in multiples of {align}"
        )));
    }
    if ptr.is_null() || !(ptr as usize).is_multiple_of(align) {
        return Err(CheckError::Invalid(format!(
            "{what} pointer is null or misaligned"
        )));
    }
    let copied = elem_size.min(std::mem::size_of::<T>());
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut entry = std::mem::MaybeUninit::<T>::zeroed();
        // SAFETY: entry `i` starts `i * elem_size` bytes in (no overflow:
        // both factors are bounded above) and has `copied` readable bytes per
        // the caller's contract; the destination is a distinct local.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (ptr as *const u8).add(i * elem_size),
                entry.as_mut_ptr() as *mut u8,
                copied,
            );
        }
        // SAFETY: zeroed bytes are valid for every ABI table type (raw
        // pointers, integers, `Option<fn>`), overwritten by a prefix of an
        // entry the plugin laid out as the same type.
        out.push(unsafe { entry.assume_init() });
    }
    Ok(out)
}

/// The element size a descriptor gives for a table: from 1.1 on the
/// plugin's own field; a 1.0 descriptor has none and used the 1.0 sizes,
/// `size_1_0`.
fn entry_size(declared: u32, minor: u16, size_1_0: usize) -> usize {
    if minor == 0 {
        size_1_0
    } else {
        declared as usize
    }
}

/// Checks the descriptor at `d`, which the plugin exports, with
/// `symbol_size` the size the library's symbol table gives it (when known).
///
/// The descriptor is read in two steps: the never-moving header (magic,
/// version, size) first, then `min(descriptor_size, size_of::<Descriptor>())`
/// bytes into a zeroed descriptor, so an older minor's shorter descriptor
/// loads and no byte past it is read.
///
/// # Safety
/// `d` must point at the plugin's exported descriptor symbol (at least
/// `symbol_size` bytes, or when that is unknown at least the bytes its
/// `descriptor_size` declares), in a library that stays mapped for the
/// duration of the call.
pub unsafe fn check_descriptor(
    d: *const Descriptor,
    symbol_size: Option<u64>,
) -> Result<PluginInfo, CheckError> {
    if let Some(size) = symbol_size.filter(|&s| s < 16) {
        return Err(CheckError::Invalid(format!(
            "the descriptor symbol is {size} bytes, smaller than its 16-byte header"
        )));
    }
    if !(d as usize).is_multiple_of(std::mem::align_of::<Descriptor>()) {
        return Err(CheckError::Invalid(
            "the descriptor symbol is misaligned".into(),
        ));
    }
    // SAFETY: the symbol holds at least the 16-byte header (checked above
    // when its size is known; every ABI version starts with it).
    let (magic, major, minor, declared) = unsafe {
        (
            std::ptr::read_unaligned(d as *const u32),
            std::ptr::read_unaligned((d as *const u8).add(4) as *const u16),
            std::ptr::read_unaligned((d as *const u8).add(6) as *const u16),
            std::ptr::read_unaligned((d as *const u8).add(8) as *const u64),
        )
    };
    if magic != abi::DESCRIPTOR_MAGIC {
        return Err(CheckError::Invalid(format!(
            "magic is {magic:#010x}, expected {:#010x} (\"FNHP\")",
            abi::DESCRIPTOR_MAGIC
        )));
    }
    if major != abi::ABI_MAJOR || minor > abi::ABI_MINOR {
        return Err(CheckError::Version { major, minor });
    }
    let minimum = if minor == 0 {
        abi::DESCRIPTOR_SIZE_1_0
    } else {
        std::mem::size_of::<Descriptor>() as u64
    };
    if declared < minimum || symbol_size.is_some_and(|s| declared > s) {
        return Err(CheckError::Invalid(format!(
            "descriptor_size is {declared}, ABI {major}.{minor} requires {minimum}{}",
            symbol_size
                .map(|s| format!(" and the symbol has {s} bytes"))
                .unwrap_or_default()
        )));
    }
    let copied = (declared as usize).min(std::mem::size_of::<Descriptor>());
    let mut copy = std::mem::MaybeUninit::<Descriptor>::zeroed();
    // SAFETY: the plugin declared (and the symbol table, when known,
    // confirms) `declared` readable bytes; `copied` is no more than that,
    // nor than the destination's size.
    unsafe {
        std::ptr::copy_nonoverlapping(d as *const u8, copy.as_mut_ptr() as *mut u8, copied);
    }
    // SAFETY: every descriptor field is valid zeroed (integers, raw
    // pointers, pointer + length strings).
    let d = unsafe { copy.assume_init() };
    // SAFETY: (this and the reads below, each marked) pointers and counts come
    // from the plugin's static descriptor, valid while the library is mapped;
    // `table` and `read_name` reject null, misaligned and absurd values.
    let layout = unsafe {
        table(
            d.layout,
            d.layout_count,
            entry_size(d.layout_entry_size, minor, size_of::<TypeLayout>()),
            size_of::<TypeLayout>(),
            "layout table",
        )?
    };
    let layout_checked = !layout.is_empty();
    if layout_checked {
        let field_size = entry_size(d.field_entry_size, minor, size_of::<FieldLayout>());
        // SAFETY: `layout` is the checked table above; LAYOUT is the host's own.
        let differences = unsafe { compare_layouts(&layout, field_size, &abi::LAYOUT, minor)? };
        if !differences.is_empty() {
            return Err(CheckError::Layout(differences));
        }
    }
    // SAFETY: descriptor strings, static in the mapped library.
    let name = unsafe { read_name(d.plugin_name, "plugin name")? };
    // SAFETY: as above.
    let sdk = unsafe { read_name(d.sdk, "sdk")? };
    let mut seen = HashSet::new();
    let mut handlers = Vec::with_capacity(d.handler_count.min(MAX_TABLE));
    let mut events = Vec::with_capacity(d.handler_count.min(MAX_TABLE));
    // SAFETY: the descriptor's handler table, static in the mapped library.
    let entries = unsafe {
        table(
            d.handlers,
            d.handler_count,
            entry_size(d.handler_entry_size, minor, abi::HANDLER_ENTRY_SIZE_1_2),
            abi::HANDLER_ENTRY_SIZE_1_2,
            "handler table",
        )?
    };
    for entry in &entries {
        // SAFETY: a name in that table.
        let n = unsafe { read_name(entry.name, "a handler name")? };
        let f = entry
            .handler
            .ok_or_else(|| CheckError::Invalid(format!("handler `{n}` is a null pointer")))?;
        if n.is_empty() || !seen.insert(n.clone()) {
            return Err(CheckError::Invalid(format!(
                "handler name `{n}` is empty or duplicated"
            )));
        }
        // A 1.2 entry ends before `event`: read as zero, undeclared.
        let event = if entry.event.ptr.is_null() {
            String::new()
        } else {
            // SAFETY: a string in that table.
            unsafe { read_name(entry.event, "a handler's event")? }
        };
        events.push((n.clone(), event));
        handlers.push((n, f));
    }
    if handlers.is_empty() {
        return Err(CheckError::Invalid("the handler table is empty".into()));
    }
    let mut initializers = Vec::with_capacity(d.initializer_count.min(MAX_TABLE));
    let mut seen = HashSet::new();
    // SAFETY: the descriptor's initializer table, static in the mapped library.
    let entries = unsafe {
        table(
            d.initializers,
            d.initializer_count,
            entry_size(
                d.initializer_entry_size,
                minor,
                size_of::<InitializerEntry>(),
            ),
            size_of::<InitializerEntry>(),
            "initializer table",
        )?
    };
    for entry in &entries {
        // SAFETY: a name in that table.
        let n = unsafe { read_name(entry.name, "an initializer name")? };
        let f = entry
            .initializer
            .ok_or_else(|| CheckError::Invalid(format!("initializer `{n}` is a null pointer")))?;
        if n.is_empty() || !seen.insert(n.clone()) {
            return Err(CheckError::Invalid(format!(
                "initializer name `{n}` is empty or duplicated"
            )));
        }
        initializers.push((n, f));
    }
    Ok(PluginInfo {
        name,
        sdk,
        abi: (major, minor),
        layout_checked,
        handlers,
        initializers,
        handler_events: events,
    })
}

struct Fields {
    name: String,
    size: u64,
    align: u64,
    fields: Vec<(String, u64, u64)>,
}

/// # Safety
/// `t` comes from a checked table (see `check_descriptor`).
unsafe fn read_type(t: &TypeLayout, field_size: usize) -> Result<Fields, CheckError> {
    // SAFETY: forwarded contract.
    let name = unsafe { read_name(t.name, "a layout type name")? };
    let mut fields = Vec::new();
    // SAFETY: forwarded contract.
    let table = unsafe {
        table::<FieldLayout>(
            t.fields,
            t.field_count,
            field_size,
            size_of::<FieldLayout>(),
            "layout field table",
        )?
    };
    for f in table {
        // SAFETY: forwarded contract.
        let fname = unsafe { read_name(f.name, "a layout field name")? };
        fields.push((fname, f.offset, f.size));
    }
    Ok(Fields {
        name,
        size: t.size,
        align: t.align,
        fields,
    })
}

/// Compares the plugin's layout table with the host's. A plugin of the
/// host's minor must match exactly; one of an older minor may lack fields and
/// types the host appended later, but every field it has must sit where the
/// host expects it.
///
/// # Safety
/// `plugin` comes from a checked table.
unsafe fn compare_layouts(
    plugin: &[TypeLayout],
    plugin_field_size: usize,
    host: &[TypeLayout],
    plugin_minor: u16,
) -> Result<Vec<String>, CheckError> {
    let exact = plugin_minor == abi::ABI_MINOR;
    let mut diffs = Vec::new();
    let plugin: Vec<Fields> = plugin
        .iter()
        // SAFETY: forwarded contract.
        .map(|t| unsafe { read_type(t, plugin_field_size) })
        .collect::<Result<_, _>>()?;
    let host: Vec<Fields> = host
        .iter()
        // SAFETY: the host's own static table.
        .map(|t| unsafe { read_type(t, std::mem::size_of::<FieldLayout>()) })
        .collect::<Result<_, _>>()?;
    for p in &plugin {
        let Some(h) = host.iter().find(|h| h.name == p.name) else {
            diffs.push(format!(
                "type {} exists in the plugin but not in the host",
                p.name
            ));
            continue;
        };
        if p.align != h.align {
            diffs.push(format!(
                "type {}: alignment {} in the plugin, {} in the host",
                p.name, p.align, h.align
            ));
        }
        if (exact && p.size != h.size) || p.size > h.size {
            diffs.push(format!(
                "type {}: size {} bytes in the plugin, {} in the host",
                p.name, p.size, h.size
            ));
        }
        for (fname, off, size) in &p.fields {
            match h.fields.iter().find(|(n, _, _)| n == fname) {
                None => diffs.push(format!(
                    "field {}.{} exists in the plugin but not in the host",
                    p.name, fname
                )),
                Some((_, hoff, hsize)) => {
                    if off != hoff {
                        diffs.push(format!(
                            "field {}.{}: offset {} in the plugin, {} in the host",
                            p.name, fname, off, hoff
                        ));
                    }
                    if size != hsize {
                        diffs.push(format!(
                            "field {}.{}: size {} in the plugin, {} in the host",
                            p.name, fname, size, hsize
                        ));
                    }
                }
            }
        }
        if exact {
            for (hname, _, _) in &h.fields {
                if !p.fields.iter().any(|(n, _, _)| n == hname) {
                    diffs.push(format!(
                        "field {}.{} is missing in the plugin",
                        h.name, hname
                    ));
                }
            }
        }
    }
    if exact {
        for h in &host {
            if !plugin.iter().any(|p| p.name == h.name) {
                diffs.push(format!("type {} is missing in the plugin", h.name));
            }
        }
    }
    Ok(diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELD: usize = std::mem::size_of::<FieldLayout>();

    #[test]
    fn the_host_layout_matches_itself() {
        // SAFETY: both tables are the host's own statics.
        let diffs = unsafe { compare_layouts(&abi::LAYOUT, FIELD, &abi::LAYOUT, abi::ABI_MINOR) };
        assert_eq!(diffs, Ok(vec![]));
    }

    #[test]
    fn a_moved_field_is_named_with_both_offsets() {
        static MOVED: [FieldLayout; 2] = [
            FieldLayout {
                name: PluginStr::from_static("ptr"),
                offset: 8,
                size: 8,
            },
            FieldLayout {
                name: PluginStr::from_static("len"),
                offset: 0,
                size: 8,
            },
        ];
        let plugin = [TypeLayout {
            name: PluginStr::from_static("fnhost_host_str"),
            size: 16,
            align: 8,
            fields: MOVED.as_ptr(),
            field_count: 2,
        }];
        // SAFETY: a static table built above.
        let diffs =
            unsafe { compare_layouts(&plugin, FIELD, &abi::LAYOUT, abi::ABI_MINOR) }.unwrap();
        assert!(
            diffs.contains(
                &"field fnhost_host_str.ptr: offset 8 in the plugin, 0 in the host".to_string()
            ),
            "{diffs:?}"
        );
        assert!(diffs.contains(&"type fnhost_context_vtable is missing in the plugin".to_string()));
    }

    use abi::HandlerEntry;

    unsafe extern "C-unwind" fn noop(_: *const abi::Context, _: abi::HostStr) -> i32 {
        0
    }

    static HANDLERS: [HandlerEntry; 1] = [HandlerEntry {
        name: PluginStr::from_static("Handler"),
        handler: Some(noop),
        event: PluginStr::from_static(abi::event::APIG),
    }];

    /// A handler entry as ABI 1.0 to 1.2 laid it out: no `event`.
    #[repr(C)]
    struct EntryOf12 {
        name: PluginStr,
        handler: Option<abi::HandlerFn>,
    }
    // SAFETY: static strings and a function pointer, never written.
    unsafe impl Sync for EntryOf12 {}

    static HANDLERS_1_2: [EntryOf12; 2] = [
        EntryOf12 {
            name: PluginStr::from_static("A"),
            handler: Some(noop),
        },
        EntryOf12 {
            name: PluginStr::from_static("B"),
            handler: Some(noop),
        },
    ];

    #[test]
    fn handler_events_are_read_and_a_1_2_entry_has_none() {
        let d = descriptor(3, std::mem::size_of::<Descriptor>() as u64, 40);
        // SAFETY: a live descriptor of the full size.
        let info = unsafe { check_descriptor(&d, None) }.unwrap();
        assert_eq!(
            info.handler_events,
            [("Handler".to_owned(), "apig".to_owned())]
        );
        let mut d = descriptor(2, std::mem::size_of::<Descriptor>() as u64, 24);
        d.handlers = HANDLERS_1_2.as_ptr().cast();
        d.handler_count = 2;
        assert_eq!(
            std::mem::size_of::<EntryOf12>(),
            abi::HANDLER_ENTRY_SIZE_1_2
        );
        // SAFETY: a live descriptor; its handler table has two 24-byte entries.
        let info = unsafe { check_descriptor(&d, None) }.unwrap();
        assert_eq!(
            info.handler_events,
            [
                ("A".to_owned(), String::new()),
                ("B".to_owned(), String::new())
            ]
        );
        // Shorter than a 1.2 entry: refused.
        d.handler_entry_size = 16;
        // SAFETY: as above (nothing is read past the check).
        let e = unsafe { check_descriptor(&d, None) }.unwrap_err();
        assert!(format!("{e:?}").contains("entries are 16 bytes"), "{e:?}");
    }

    fn descriptor(minor: u16, size: u64, entry: u32) -> Descriptor {
        Descriptor {
            magic: abi::DESCRIPTOR_MAGIC,
            abi_major: 1,
            abi_minor: minor,
            descriptor_size: size,
            plugin_name: PluginStr::from_static("t"),
            sdk: PluginStr::from_static("test"),
            handlers: HANDLERS.as_ptr(),
            handler_count: 1,
            initializers: std::ptr::null(),
            initializer_count: 0,
            layout: std::ptr::null(),
            layout_count: 0,
            handler_entry_size: entry,
            initializer_entry_size: entry,
            layout_entry_size: entry,
            field_entry_size: entry,
        }
    }

    #[test]
    fn a_1_0_descriptor_is_read_only_as_far_as_it_goes() {
        // Past a 1.0 descriptor's end the element sizes are nonsense: a 1.0
        // plugin has none, and the 1.0 sizes apply.
        let d = descriptor(0, abi::DESCRIPTOR_SIZE_1_0, 3);
        // SAFETY: a live descriptor of the full size.
        let info = unsafe { check_descriptor(&d, Some(abi::DESCRIPTOR_SIZE_1_0)) }.unwrap();
        assert_eq!(info.abi, (1, 0));
        assert_eq!(info.handlers.len(), 1);
    }

    #[test]
    fn sizes_that_do_not_add_up_are_refused() {
        let size = std::mem::size_of::<Descriptor>() as u64;
        let entry = std::mem::size_of::<HandlerEntry>() as u32;
        for (d, symbol, why) in [
            (
                descriptor(1, abi::DESCRIPTOR_SIZE_1_0, entry),
                Some(size),
                "descriptor_size is 96",
            ),
            (descriptor(1, size, entry), Some(size - 8), "the symbol has"),
            (descriptor(1, size, 3), Some(size), "entries are 3 bytes"),
            (
                descriptor(1, size, entry),
                Some(8),
                "smaller than its 16-byte header",
            ),
        ] {
            // SAFETY: a live descriptor of the full size.
            let e = unsafe { check_descriptor(&d, symbol) }.unwrap_err();
            assert!(format!("{e:?}").contains(why), "{e:?} lacks {why}");
        }
        // SAFETY: as above.
        let ok = unsafe { check_descriptor(&descriptor(1, size, entry), Some(size)) };
        assert_eq!(ok.unwrap().abi, (1, 1));
    }
}
