//! Each function's own key-value space, behind the `kv.get`, `kv.put` and
//! `kv.delete` host functions (see `crate::host_functions`): keys are
//! scoped to the function that wrote them, bounded in size and number per
//! function, and deleted with the function.
//!
//! A space is named by an id made when its function is created (a UUID;
//! `dir:NAME` for a library of the functions directory), not by the
//! function's name, and it is *open* while its function exists
//! (`kv_spaces`): a call of a deleted function still running writes
//! nowhere (its space is closed), and a function created later under the
//! same name, in any project, gets a new, empty space. Deleting a function
//! closes its spaces and deletes their keys in one transaction; a write
//! checks that its space is open in its own (in PostgreSQL holding the
//! space's row, so a delete waits for it and then deletes what it wrote).
//!
//! The bounds hold against a function that tries to fill the server's
//! disk or memory: a value is at most [`MAX_VALUE_BYTES`], a function holds
//! at most [`MAX_KEYS`] keys and [`MAX_BYTES`] of keys and values, checked
//! in the transaction that writes (under a per-function lock in
//! PostgreSQL, so that nodes writing at once cannot both pass the check).
//! A value read back is bounded too: a row someone wrote past the bound,
//! by hand or into a shared database, is refused in the database before it
//! costs this node memory.

/// The longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 256;

/// The largest value.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// The most keys one function holds.
pub const MAX_KEYS: u64 = 10_000;

/// The most bytes (keys and values) one function holds.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored (a value under the same key replaced).
    Stored,
    /// Refused: the function holds [`MAX_KEYS`] keys already.
    TooManyKeys,
    /// Refused: it would hold more than [`MAX_BYTES`].
    TooManyBytes,
    /// Refused: the space is not open (its function was deleted).
    Closed,
}

/// The bytes a key and its value count against [`MAX_BYTES`].
pub(crate) fn size_of(key: &str, value: &[u8]) -> i64 {
    // Both are bounded (MAX_KEY_BYTES, MAX_VALUE_BYTES) before they get here.
    i64::try_from(key.len().saturating_add(value.len())).unwrap_or(i64::MAX)
}

/// Whether a function holding `keys` other keys of `bytes` may add one of
/// `size` bytes.
pub(crate) fn admit(keys: i64, bytes: i64, size: i64) -> Put {
    if u64::try_from(keys).unwrap_or(u64::MAX) >= MAX_KEYS {
        Put::TooManyKeys
    } else if u64::try_from(bytes.saturating_add(size)).unwrap_or(u64::MAX) > MAX_BYTES {
        Put::TooManyBytes
    } else {
        Put::Stored
    }
}
