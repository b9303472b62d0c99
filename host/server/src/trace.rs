//! W3C Trace Context on invocation requests: a valid `traceparent` is
//! carried on (its trace id reaches the handler, the answer, async records,
//! destinations and exported spans); a missing or malformed one starts a new
//! trace, as the recommendation asks of a server. `tracestate` is kept, up
//! to its 512-byte bound, only beside a valid `traceparent`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName};
use fnhost::TraceId;

/// New traces are sampled when their id's random part is below this (see
/// [`sampled_at`]); `u64::MAX` samples every one.
static SAMPLE_BELOW: AtomicU64 = AtomicU64::new(u64::MAX);

/// The share of new traces (those the server starts: no valid
/// `traceparent` came) that are sampled, 0.0 to 1.0 (`--otlp-sample-ratio`;
/// every one by default). A caller's `traceparent` decides for its own
/// trace (parent-based), whatever the ratio.
pub fn set_sample_ratio(ratio: f64) {
    SAMPLE_BELOW.store(sample_threshold(ratio), Ordering::Relaxed);
}

/// The threshold of a ratio: ratio x 2^56, compared with the trace id's
/// rightmost 7 bytes, the part W3C Trace Context level 2 and
/// OpenTelemetry's probability sampling take as random (a UUID v4 id,
/// which fnhost's are, has fixed variant bits in the 8th byte from the
/// right, so the low 64 bits would not do).
fn sample_threshold(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        0
    } else if ratio >= 1.0 {
        u64::MAX
    } else {
        // In range: ratio < 1, so the product is below 2^56.
        (ratio * (1u64 << 56) as f64) as u64
    }
}

/// Whether a new trace is sampled under `threshold`: the same answer for
/// the same trace id on every node.
fn sampled_at(trace_id: &TraceId, threshold: u64) -> bool {
    if threshold == u64::MAX {
        return true;
    }
    let bytes = trace_id.bytes();
    let mut low = [0u8; 8];
    low[1..].copy_from_slice(&bytes[9..]);
    u64::from_be_bytes(low) < threshold
}

/// The longest `tracestate` carried on (W3C: at most 32 members of at most
/// 256 bytes, "SHOULD propagate at least 512").
pub const MAX_TRACESTATE: usize = 512;

/// W3C Trace Context's headers, as constants (a name given as text is
/// parsed on every lookup, and these are looked up on every invocation).
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The trace an invocation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (the caller's, or a new one).
    pub trace_id: TraceId,
    /// The caller's span: the parent of the server's span.
    pub parent_span: Option<[u8; 8]>,
    /// The caller asked for the trace to be recorded (`sampled`); a new
    /// trace is.
    pub sampled: bool,
}

impl TraceContext {
    /// A new trace with no parent, sampled at the server's ratio
    /// ([`set_sample_ratio`]).
    pub fn start() -> TraceContext {
        let trace_id = TraceId::random();
        TraceContext {
            trace_id,
            parent_span: None,
            sampled: sampled_at(&trace_id, SAMPLE_BELOW.load(Ordering::Relaxed)),
        }
    }

    /// The caller's trace from `traceparent`, or a new one.
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        headers
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse)
            .unwrap_or_else(TraceContext::start)
    }

    /// Parses a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`; a later
    /// version may append fields, version `ff` is invalid).
    pub fn parse(value: &str) -> Option<TraceContext> {
        let value = value.trim_matches([' ', '\t']);
        let mut parts = value.splitn(5, '-');
        let version = fnhost::parse_hex::<1>(parts.next()?)?[0];
        let trace_id = TraceId::parse(parts.next()?)?;
        let span = fnhost::parse_hex::<8>(parts.next()?)?;
        let flags = fnhost::parse_hex::<1>(parts.next()?)?[0];
        let rest = parts.next();
        if version == 0xff || (version == 0 && rest.is_some()) || span == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            parent_span: Some(span),
            sampled: flags & 1 == 1,
        })
    }

    /// The trace of a stored [`incoming`](Self::incoming) value (whose
    /// parent span is all zeros when the trace started here).
    pub fn from_stored(value: &str) -> Option<TraceContext> {
        let mut parts = value.split('-');
        let _version = parts.next()?;
        let trace_id = TraceId::parse(parts.next()?)?;
        let span = fnhost::parse_hex::<8>(parts.next()?)?;
        let flags = fnhost::parse_hex::<1>(parts.next()?)?[0];
        Some(TraceContext {
            trace_id,
            parent_span: (span != [0; 8]).then_some(span),
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` of a span of this trace.
    pub fn traceparent(&self, span: [u8; 8]) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        s.push_str(&self.trace_id.to_string());
        s.push('-');
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in span {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        s.push_str(if self.sampled { "-01" } else { "-00" });
        s
    }

    /// The `traceparent` the caller sent (or, for a new trace, one naming
    /// no parent span: the trace id alone matters to a stored record).
    pub fn incoming(&self) -> String {
        self.traceparent(self.parent_span.unwrap_or([0; 8]))
    }
}

/// The caller's `tracestate`, when it is carried on.
pub fn tracestate(headers: &HeaderMap) -> String {
    headers
        .get(&TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() <= MAX_TRACESTATE && headers.contains_key(&TRACEPARENT))
        .unwrap_or_default()
        .to_owned()
}

/// A fresh span id (never zero).
pub fn span_id() -> [u8; 8] {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let mut span = [0u8; 8];
    span.copy_from_slice(&bytes[..8]);
    if span == [0; 8] {
        span[7] = 1;
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_traces_are_sampled_at_the_ratio_by_their_id() {
        let ids: Vec<TraceId> = (0..20_000).map(|_| TraceId::random()).collect();
        let share = |ratio: f64| {
            let t = sample_threshold(ratio);
            ids.iter().filter(|id| sampled_at(id, t)).count() as f64 / ids.len() as f64
        };
        assert_eq!(share(1.0), 1.0);
        assert_eq!(share(0.0), 0.0);
        assert_eq!(share(f64::NAN), 0.0);
        let one_percent = share(0.01);
        assert!((0.005..0.015).contains(&one_percent), "{one_percent}");
        let quarter = share(0.25);
        assert!((0.23..0.27).contains(&quarter), "{quarter}");
        // The decision is the trace id's: a trace sampled at 1 % is sampled
        // at 25 % too.
        let t1 = sample_threshold(0.01);
        let t25 = sample_threshold(0.25);
        assert!(ids
            .iter()
            .filter(|id| sampled_at(id, t1))
            .all(|id| sampled_at(id, t25)));
        let low = TraceId::parse("00000000000000000000000000000001").unwrap();
        let high = TraceId::parse("000000000000000000ffffffffffffff").unwrap();
        assert!(sampled_at(&low, t1) && !sampled_at(&high, t25));
    }

    #[test]
    fn a_valid_traceparent_is_carried_and_an_invalid_one_starts_a_trace() {
        let t =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            t.parent_span,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert!(t.sampled);
        assert_eq!(
            t.incoming(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        // A later version may append fields; version 00 may not.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
            "",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "nonsense".parse().unwrap());
        headers.insert("tracestate", "a=b".parse().unwrap());
        let started = TraceContext::from_headers(&headers);
        assert_eq!(started.parent_span, None);
        assert_eq!(
            TraceContext::from_stored(&started.incoming()),
            Some(started)
        );
        assert_eq!(TraceContext::from_stored(&t.incoming()), Some(t));
        assert!(started.sampled);
        assert_eq!(tracestate(&headers), "a=b");
        headers.insert(
            "tracestate",
            "x".repeat(MAX_TRACESTATE + 1).parse().unwrap(),
        );
        assert_eq!(tracestate(&headers), "");
    }
}
