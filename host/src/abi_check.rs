//! Checks a plugin's descriptor before any of its code runs: magic, ABI
//! version (another major, or a newer minor, is refused), the structural
//! layout of every ABI type as the plugin was compiled (so a plugin built
//! against a changed API is refused with a readable difference instead of
//! running into undefined behaviour), and the handler and initializer tables.

use std::collections::HashSet;

use fnhost_api::abi::{self, Descriptor, FieldLayout, PluginStr, TypeLayout};

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
    /// Handlers by name, in table order.
    pub handlers: Vec<(String, abi::HandlerFn)>,
    /// Initializers by name, in table order.
    pub initializers: Vec<(String, abi::InitializerFn)>,
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

/// Views a descriptor table.
///
/// # Safety
/// `ptr` must point at `count` valid `T`s while the library is mapped.
unsafe fn table<'a, T>(ptr: *const T, count: usize, what: &str) -> Result<&'a [T], CheckError> {
    if count == 0 {
        return Ok(&[]);
    }
    if count > MAX_TABLE {
        return Err(CheckError::Invalid(format!("{what} has {count} entries")));
    }
    if ptr.is_null() || !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(CheckError::Invalid(format!(
            "{what} pointer is null or misaligned"
        )));
    }
    // SAFETY: non-null, aligned, `count` entries per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// Checks `d`, which the plugin exports.
///
/// # Safety
/// `d` must point at the plugin's exported descriptor symbol, in a library
/// that stays mapped for the duration of the call. Only the first 8 bytes are
/// read until the version is known to match.
pub unsafe fn check_descriptor(d: *const Descriptor) -> Result<PluginInfo, CheckError> {
    // SAFETY: the symbol is at least as large as the never-moving header
    // (magic, major, minor), which every ABI version starts with.
    let (magic, major, minor) = unsafe {
        (
            std::ptr::read_unaligned(d as *const u32),
            std::ptr::read_unaligned((d as *const u8).add(4) as *const u16),
            std::ptr::read_unaligned((d as *const u8).add(6) as *const u16),
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
    // SAFETY: same major and an accepted minor: the plugin's descriptor has
    // this host's layout (fields are only appended in later minors).
    let d = unsafe { &*d };
    if d.descriptor_size < std::mem::size_of::<Descriptor>() as u64 {
        return Err(CheckError::Invalid(format!(
            "descriptor_size is {}, ABI {}.{} requires {}",
            d.descriptor_size,
            major,
            minor,
            std::mem::size_of::<Descriptor>()
        )));
    }
    // SAFETY (this and the reads below, each marked): pointers and counts come
    // from the plugin's static descriptor, valid while the library is mapped;
    // `table` and `read_name` reject null, misaligned and absurd values.
    let layout = unsafe { table(d.layout, d.layout_count, "layout table")? };
    let layout_checked = !layout.is_empty();
    if layout_checked {
        // SAFETY: `layout` is the checked table above; LAYOUT is the host's own.
        let differences = unsafe { compare_layouts(layout, &abi::LAYOUT, minor)? };
        if !differences.is_empty() {
            return Err(CheckError::Layout(differences));
        }
    }
    // SAFETY: descriptor strings, static in the mapped library.
    let name = unsafe { read_name(d.plugin_name, "plugin name")? };
    // SAFETY: as above.
    let sdk = unsafe { read_name(d.sdk, "sdk")? };
    let mut seen = HashSet::new();
    let mut handlers = Vec::with_capacity(d.handler_count);
    // SAFETY: the descriptor's handler table, static in the mapped library.
    for entry in unsafe { table(d.handlers, d.handler_count, "handler table")? } {
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
        handlers.push((n, f));
    }
    if handlers.is_empty() {
        return Err(CheckError::Invalid("the handler table is empty".into()));
    }
    let mut initializers = Vec::with_capacity(d.initializer_count);
    let mut seen = HashSet::new();
    // SAFETY: the descriptor's initializer table, static in the mapped library.
    for entry in unsafe { table(d.initializers, d.initializer_count, "initializer table")? } {
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
unsafe fn read_type(t: &TypeLayout) -> Result<Fields, CheckError> {
    // SAFETY: forwarded contract.
    let name = unsafe { read_name(t.name, "a layout type name")? };
    let mut fields = Vec::new();
    // SAFETY: forwarded contract.
    for f in unsafe { table::<FieldLayout>(t.fields, t.field_count, "layout field table")? } {
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
    host: &[TypeLayout],
    plugin_minor: u16,
) -> Result<Vec<String>, CheckError> {
    let exact = plugin_minor == abi::ABI_MINOR;
    let mut diffs = Vec::new();
    let plugin: Vec<Fields> = plugin
        .iter()
        // SAFETY: forwarded contract.
        .map(|t| unsafe { read_type(t) })
        .collect::<Result<_, _>>()?;
    let host: Vec<Fields> = host
        .iter()
        // SAFETY: the host's own static table.
        .map(|t| unsafe { read_type(t) })
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

    #[test]
    fn the_host_layout_matches_itself() {
        // SAFETY: both tables are the host's own statics.
        let diffs = unsafe { compare_layouts(&abi::LAYOUT, &abi::LAYOUT, abi::ABI_MINOR) };
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
        let diffs = unsafe { compare_layouts(&plugin, &abi::LAYOUT, abi::ABI_MINOR) }.unwrap();
        assert!(
            diffs.contains(
                &"field fnhost_host_str.ptr: offset 8 in the plugin, 0 in the host".to_string()
            ),
            "{diffs:?}"
        );
        assert!(diffs.contains(&"type fnhost_context_vtable is missing in the plugin".to_string()));
    }
}
