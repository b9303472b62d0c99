//! Distinct builds of the `hotswap` sample plugin without recompiling, shared
//! by `benches/lifecycle.rs` and `examples/swap_rss.rs` (included with
//! `#[path]`): the byte after `fnhost-build-tag:` is the build's answer, and an
//! optional suffix after the ELF image makes the content address unique.

use std::path::Path;

/// `base` (the bytes of `libhotswap.so`) with build tag `tag` and an optional suffix.
pub fn build(base: &[u8], tag: u8, suffix: Option<u64>) -> Vec<u8> {
    let mut bytes = base.to_vec();
    let marker = b"fnhost-build-tag:";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the build marker in libhotswap.so");
    bytes[at + marker.len()] = tag;
    if let Some(s) = suffix {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    bytes
}

/// Writes `dir/hotswap.so` completely before it appears (temp + rename).
pub fn put(dir: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(".hotswap.so.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(tmp, dir.join("hotswap.so")).unwrap();
}
