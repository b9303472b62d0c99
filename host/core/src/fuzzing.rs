//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature
//! `fuzzing`; not part of the API). Each takes arbitrary bytes, runs one
//! parser of hostile input over them, and must return without panicking,
//! hanging or growing memory without bound.

/// The ELF check every library passes before anything loads it.
pub fn elf(bytes: &[u8]) {
    let _ = crate::elf::check_shared_object(bytes);
}

/// The host's readers of a worker's answers and frames (workers are
/// untrusted peers).
pub fn worker_frame(bytes: &[u8]) {
    let _ = crate::isolation::protocol::Done::decode(bytes);
    let mut input = bytes;
    let _ =
        crate::isolation::protocol::read_frame::<crate::isolation::protocol::Verdict>(&mut input);
}

/// Events as handlers parse them, with their decoders.
pub fn event(bytes: &[u8]) {
    use fnhost_api::events::*;
    if let Ok(e) = serde_json::from_slice::<ApigEvent>(bytes) {
        let _ = e.raw_body();
    }
    if let Ok(e) = serde_json::from_slice::<LtsEvent>(bytes) {
        let _ = e.raw_data();
    }
    if let Ok(e) = serde_json::from_slice::<DisEvent>(bytes) {
        let _ = e.raw_data();
    }
    let _ = serde_json::from_slice::<CtsEvent>(bytes);
    let _ = serde_json::from_slice::<DdsEvent>(bytes);
    let _ = serde_json::from_slice::<KafkaEvent>(bytes);
    let _ = serde_json::from_slice::<SmnEvent>(bytes);
    let _ = serde_json::from_slice::<TimerEvent>(bytes);
}

#[cfg(test)]
mod tests {
    /// Every entry point runs on a few inputs (the fuzz targets' smoke test).
    #[test]
    fn entry_points_take_arbitrary_bytes() {
        for input in [
            &b""[..],
            b"\x7fELF\x02\x01\x01",
            b"{\"body\":\"%%%\",\"isBase64Encoded\":true}",
        ] {
            super::elf(input);
            super::worker_frame(input);
            super::event(input);
        }
    }
}
