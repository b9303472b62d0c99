//! Checks that a file is a complete ELF shared object for this machine before
//! it is handed to the dynamic loader, so that a text file, an executable, a
//! library for another architecture or a truncated copy gets a precise error
//! (and `dlopen` never sees a half-written file).
//!
//! Only the ELF header and the program and section header tables are read;
//! this is a bounds check, not a parser, so it is hand-written rather than a
//! dependency on the load path.

use thiserror::Error;

/// Why bytes are not a loadable shared object.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ElfError {
    /// Not ELF at all, or an ELF file of another kind.
    #[error("{0}")]
    NotALibrary(String),
    /// An ELF shared object for another machine or word size.
    #[error("built for {found}, this host runs {expected}")]
    WrongArchitecture {
        /// What the file was built for.
        found: String,
        /// What this host is.
        expected: &'static str,
    },
    /// The headers point past the end of the file.
    #[error("{0}")]
    Truncated(String),
}

const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;

#[cfg(target_arch = "x86_64")]
const HOST_MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const HOST_MACHINE: u16 = 183;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const HOST_MACHINE: u16 = 0;

const HOST_ARCH: &str = std::env::consts::ARCH;

fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86 (i386)".into(),
        40 => "arm".into(),
        62 => "x86_64".into(),
        183 => "aarch64".into(),
        243 => "riscv".into(),
        other => format!("ELF machine {other}"),
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Checks `bytes` is a complete 64-bit little-endian ELF shared object for
/// this host's architecture.
pub fn check_shared_object(bytes: &[u8]) -> Result<(), ElfError> {
    check_shared_object_read(bytes.len() as u64, &mut |offset, buf| {
        // Every read the check makes lies inside the length it was given.
        let at = usize::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let part = bytes
            .get(at..at.saturating_add(buf.len()))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(part);
        Ok(())
    })
}

/// [`check_shared_object`] of a file of `len` bytes that is not in memory:
/// `read_at(offset, buf)` fills `buf` with the bytes from `offset` (inside
/// `len`). Reads the ELF header and each program header, nothing else:
/// a library streamed to disk as it was extracted is checked without
/// reading it back whole. A failed read is the file's fault: truncated.
pub fn check_shared_object_read(
    len: u64,
    read_at: &mut dyn FnMut(u64, &mut [u8]) -> std::io::Result<()>,
) -> Result<(), ElfError> {
    let mut read = |offset: u64, buf: &mut [u8]| {
        read_at(offset, buf).map_err(|e| {
            ElfError::Truncated(format!(
                "cannot read {} bytes at byte {offset}: {e}",
                buf.len()
            ))
        })
    };
    let mut header = [0u8; 64];
    let head = usize::try_from(len.min(64)).unwrap_or(64);
    read(0, &mut header[..head])?;
    if head < 4 || &header[..4] != b"\x7fELF" {
        return Err(ElfError::NotALibrary("not an ELF file".into()));
    }
    if head < 64 {
        return Err(ElfError::Truncated(format!(
            "{len} bytes, shorter than an ELF header"
        )));
    }
    let bytes = &header[..];
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(ElfError::WrongArchitecture {
            found: format!(
                "{}-bit {}",
                if bytes[4] == 1 { 32 } else { 64 },
                if bytes[5] == 2 {
                    "big-endian"
                } else {
                    "little-endian"
                }
            ),
            expected: HOST_ARCH,
        });
    }
    let e_type = u16_at(bytes, 16);
    if e_type != ET_DYN {
        let kind = match e_type {
            1 => "a relocatable object (.o)",
            2 => "an executable",
            4 => "a core dump",
            _ => "an unknown ELF type",
        };
        return Err(ElfError::NotALibrary(format!(
            "ELF file is {kind}, not a shared library"
        )));
    }
    let machine = u16_at(bytes, 18);
    if machine != HOST_MACHINE {
        return Err(ElfError::WrongArchitecture {
            found: machine_name(machine),
            expected: HOST_ARCH,
        });
    }
    let phoff = u64_at(bytes, 32);
    let shoff = u64_at(bytes, 40);
    let phentsize = u64::from(u16_at(bytes, 54));
    let phnum = u64::from(u16_at(bytes, 56));
    let shentsize = u64::from(u16_at(bytes, 58));
    let shnum = u64::from(u16_at(bytes, 60));
    let ph_end = phoff.saturating_add(phnum.saturating_mul(phentsize));
    if ph_end > len || (phnum > 0 && phentsize < 56) {
        return Err(ElfError::Truncated(format!(
            "program headers end at byte {ph_end}, file has {len}"
        )));
    }
    // Each program header's type, file offset and file size (its first 40
    // bytes), inside the file as just checked.
    let mut entry = [0u8; 40];
    for i in 0..phnum {
        read(phoff + i * phentsize, &mut entry)?;
        if u32_at(&entry, 0) == PT_LOAD {
            let end = u64_at(&entry, 8).saturating_add(u64_at(&entry, 32));
            if end > len {
                return Err(ElfError::Truncated(format!(
                    "a loadable segment ends at byte {end}, file has {len}"
                )));
            }
        }
    }
    if shoff != 0 {
        let sh_end = shoff.saturating_add(shnum.saturating_mul(shentsize));
        if sh_end > len {
            return Err(ElfError::Truncated(format!(
                "section headers end at byte {sh_end}, file has {len}"
            )));
        }
    }
    Ok(())
}

/// The magic at the start of a Go binary's `.go.buildinfo` data.
const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Whether `bytes` (a shared object [`check_shared_object`] accepted) is a Go
/// `c-shared` library: it has a `.go.buildinfo` or `.note.go.buildid`
/// section, or, with its section headers stripped, the build-info magic
/// Go writes at a 16-byte boundary. Never panics on hostile input: every
/// offset is bounds-checked.
pub fn is_go_library(bytes: &[u8]) -> bool {
    if let Some(found) = has_go_section(bytes) {
        return found;
    }
    (0..bytes.len())
        .step_by(16)
        .any(|at| bytes[at..].starts_with(GO_BUILDINFO_MAGIC))
}

/// `Some(found)` when the section header table and its name table can be
/// read, `None` when they are absent or malformed.
fn has_go_section(bytes: &[u8]) -> Option<bool> {
    let read = |off: u64, len: u64| -> Option<&[u8]> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        bytes.get(start..end)
    };
    let header = read(0, 64)?;
    let shoff = u64_at(header, 40);
    let shentsize = u64::from(u16_at(header, 58));
    let shnum = u64::from(u16_at(header, 60));
    let shstrndx = u64::from(u16_at(header, 62));
    if shoff == 0 || shentsize < 64 || shnum == 0 || shstrndx >= shnum {
        return None;
    }
    let section = |i: u64| read(shoff.checked_add(i.checked_mul(shentsize)?)?, 64);
    let names = section(shstrndx)?;
    let names = read(u64_at(names, 24), u64_at(names, 32))?;
    let found = (0..shnum).filter_map(section).any(|sh| {
        let name_at = u32_at(sh, 0) as usize;
        let name = names.get(name_at..).unwrap_or_default();
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        name == b".go.buildinfo" || name == b".note.go.buildid"
    });
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_library() -> Vec<u8> {
        // libc is a shared object of this host's architecture on any Linux.
        for p in [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
            "/usr/lib64/libc.so.6",
            "/lib64/libc.so.6",
        ] {
            if let Ok(b) = std::fs::read(p) {
                return b;
            }
        }
        panic!("no libc.so.6 found to test with");
    }

    #[test]
    fn libc_is_not_go_and_hostile_headers_do_not_panic() {
        let lib = own_library();
        assert!(!is_go_library(&lib));
        // Every truncation, and a section table pointing anywhere.
        for cut in [0, 10, 63, 64, 100, lib.len() / 2] {
            let _ = is_go_library(&lib[..cut]);
        }
        let mut bad = lib.clone();
        bad[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        let _ = is_go_library(&bad);
        bad[40..48].copy_from_slice(&(lib.len() as u64 - 10).to_le_bytes());
        let _ = is_go_library(&bad);
        // Stripped section headers: only the build-info magic tells.
        let mut stripped = lib.clone();
        stripped[40..48].copy_from_slice(&0u64.to_le_bytes());
        assert!(!is_go_library(&stripped));
        stripped.resize(stripped.len().next_multiple_of(16), 0);
        stripped.extend_from_slice(GO_BUILDINFO_MAGIC);
        assert!(is_go_library(&stripped));
    }

    #[test]
    fn accepts_a_real_shared_library() {
        assert_eq!(check_shared_object(&own_library()), Ok(()));
    }

    #[test]
    fn rejects_text_with_a_plain_reason() {
        let e = check_shared_object(b"hello, I am text").unwrap_err();
        assert_eq!(e, ElfError::NotALibrary("not an ELF file".into()));
    }

    #[test]
    fn rejects_every_truncation_of_a_library() {
        let lib = own_library();
        for cut in [10, 63, 64, 1000, lib.len() / 2, lib.len() - 1] {
            let e = check_shared_object(&lib[..cut]).unwrap_err();
            assert!(matches!(e, ElfError::Truncated(_)), "cut at {cut}: {e:?}");
        }
    }

    #[test]
    fn rejects_executables_and_other_architectures() {
        let mut lib = own_library();
        lib[16] = 2;
        assert!(check_shared_object(&lib)
            .unwrap_err()
            .to_string()
            .contains("executable"));
        lib[16] = 3;
        lib[18] = 40;
        lib[19] = 0;
        assert_eq!(
            check_shared_object(&lib).unwrap_err(),
            ElfError::WrongArchitecture {
                found: "arm".into(),
                expected: HOST_ARCH
            }
        );
    }
}
