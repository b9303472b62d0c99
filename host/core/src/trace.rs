//! The ids an invocation carries in from its caller: the request id its
//! records already use (an asynchronous invocation keeps the id it was
//! accepted under), and a W3C trace id that the handler can read from its
//! context. Parsing the `traceparent` header is the server's business; the
//! runtime only carries the 16 bytes.

use std::fmt;

/// A W3C trace id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// The id, unless it is the invalid all-zero one.
    pub fn new(bytes: [u8; 16]) -> Option<TraceId> {
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }

    /// A fresh random id (122 random bits, from the same source as request
    /// ids).
    pub fn random() -> TraceId {
        TraceId(*uuid::Uuid::new_v4().as_bytes())
    }

    /// Parses 32 lowercase hex digits (W3C's form; uppercase is refused, as
    /// the recommendation asks).
    pub fn parse(hex: &str) -> Option<TraceId> {
        let bytes = parse_hex::<16>(hex)?;
        TraceId::new(bytes)
    }

    /// The 16 bytes.
    pub fn bytes(&self) -> [u8; 16] {
        self.0
    }

    /// The 32 lowercase hex digits, without allocating.
    pub fn to_hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        encode_hex(&self.0, &mut out);
        out
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// Lowercase hex digits of `bytes` into `out` (twice as long).
pub(crate) fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// `N` bytes from exactly `2 * N` lowercase hex digits.
pub fn parse_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *o = value(pair[0])? << 4 | value(pair[1])?;
    }
    Some(out)
}

/// The trace id of a W3C `traceparent` value (`<version>-<32 hex>-<16
/// hex>-<2 hex>`; version `ff` and an all-zero span are invalid, and a
/// version-00 value has exactly four fields).
pub fn trace_id_of_traceparent(value: &str) -> Option<TraceId> {
    let value = value.trim_matches([' ', '\t']);
    let mut parts = value.splitn(5, '-');
    let version = parse_hex::<1>(parts.next()?)?[0];
    let trace_id = TraceId::parse(parts.next()?)?;
    let span = parse_hex::<8>(parts.next()?)?;
    let _flags = parse_hex::<1>(parts.next()?)?;
    let rest = parts.next();
    if version == 0xff || (version == 0 && rest.is_some()) || span == [0; 8] {
        return None;
    }
    Some(trace_id)
}

/// Ids a caller gives an invocation (each one generated when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallIds {
    /// The request id the invocation reports (a fresh UUID when `None`).
    pub request_id: Option<uuid::Uuid>,
    /// The trace the invocation belongs to (`Context::trace_id()` is empty
    /// when `None`).
    pub trace_id: Option<TraceId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_round_trip_and_refuse_what_w3c_refuses() {
        let id = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceId::parse(&id.to_string()), Some(id));
        for bad in [
            "00000000000000000000000000000000",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "4bf92f3577b34da6a3ce929d0e0e473",
            "4bf92f3577b34da6a3ce929d0e0e47366",
            "4bf92f3577b34da6a3ce929d0e0e473g",
            "",
        ] {
            assert_eq!(TraceId::parse(bad), None, "{bad}");
        }
        assert_ne!(TraceId::random(), TraceId::random());
    }

    #[test]
    fn traceparents_give_their_trace_id() {
        let id = trace_id_of_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(id.unwrap().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736",
        ] {
            assert_eq!(trace_id_of_traceparent(bad), None, "{bad}");
        }
    }
}
