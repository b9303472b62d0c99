//! What an invocation returns: the outcome, the execution summary and the log.

use serde::Serialize;

/// Error types the platform reports (FunctionGraph's names).
pub mod error_type {
    /// The handler returned an error without choosing a type.
    pub const FUNCTION_RETURN_ERROR: &str = "FunctionReturnError";
    /// The handler panicked.
    pub const PANIC: &str = "panic";
    /// The handler did not finish before its timeout.
    pub const TIMEOUT: &str = "timeout";
    /// The result is over the response limit.
    pub const RESPONSE_TOO_LARGE: &str = "FunctionResponseTooLarge";
    /// The initializer failed, panicked or timed out.
    pub const INITIALIZATION: &str = "HandledInitializationError";
    /// The function exceeded its memory (isolated mode).
    pub const MEMORY_LIMIT: &str = "runtime memory limit exceeded";
    /// The worker process died (isolated mode).
    pub const RUNTIME_EXITED: &str = "runtime exited unexpectedly";
    /// The caller cancelled the invocation
    /// ([`CallHandle::cancel`](crate::CallHandle::cancel)).
    pub const CANCELLED: &str = "Cancelled";
}

/// How a successful result body is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// Raw bytes.
    Bytes,
    /// UTF-8 text.
    Text,
    /// JSON.
    Json,
}

impl BodyKind {
    pub(crate) fn from_abi(kind: u32) -> BodyKind {
        use fnhost_api::abi::output_kind;
        match kind {
            output_kind::BYTES => BodyKind::Bytes,
            output_kind::TEXT => BodyKind::Text,
            output_kind::JSON => BodyKind::Json,
            _ => BodyKind::Empty,
        }
    }

    /// The HTTP content type, `None` for an empty body.
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            BodyKind::Empty => None,
            BodyKind::Bytes => Some("application/octet-stream"),
            BodyKind::Text => Some("text/plain; charset=utf-8"),
            BodyKind::Json => Some("application/json"),
        }
    }
}

/// A successful result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// How to label it.
    pub kind: BodyKind,
    /// The bytes, owned by the host (copied out of the plugin during the call).
    pub bytes: Vec<u8>,
}

/// A function failure, reported as `{"errorMessage","errorType"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionError {
    /// `errorType`.
    #[serde(rename = "errorType")]
    pub error_type: String,
    /// `errorMessage`.
    #[serde(rename = "errorMessage")]
    pub message: String,
}

impl FunctionError {
    /// A failure of `error_type`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> FunctionError {
        FunctionError {
            error_type: error_type.into(),
            message: message.into(),
        }
    }

    /// `{"errorMessage": ..., "errorType": ...}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({"errorMessage": self.message, "errorType": self.error_type}).to_string()
    }
}

/// Success or failure of the function itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler returned a result.
    Success(Body),
    /// The function failed (error, panic, timeout, ...).
    Failure(FunctionError),
}

impl Outcome {
    /// Whether the function succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }

    /// The failure, if any.
    pub fn error(&self) -> Option<&FunctionError> {
        match self {
            Outcome::Failure(e) => Some(e),
            Outcome::Success(_) => None,
        }
    }

    /// The body: the result bytes, or the error JSON.
    pub fn body_bytes(&self) -> Vec<u8> {
        match self {
            Outcome::Success(b) => b.bytes.clone(),
            Outcome::Failure(e) => e.to_json().into_bytes(),
        }
    }

    /// The body, without copying the result bytes.
    pub fn into_body_bytes(self) -> Vec<u8> {
        match self {
            Outcome::Success(b) => b.bytes,
            Outcome::Failure(e) => e.to_json().into_bytes(),
        }
    }
}

/// The execution summary, serialized with FunctionGraph's keys.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Execution time in ms, 3 decimals.
    #[serde(rename = "duration")]
    pub duration_ms: f64,
    /// Billed time in ms: the duration rounded up, at least 1.
    #[serde(rename = "billingDuration")]
    pub billing_duration_ms: u64,
    /// Configured memory in MB.
    #[serde(rename = "memorySize")]
    pub memory_size_mb: u32,
    /// Peak memory the handler allocated during the call, in MB (3 decimals).
    #[serde(rename = "memoryUsed")]
    pub memory_used_mb: f64,
}

impl Summary {
    pub(crate) fn new(
        elapsed: std::time::Duration,
        memory_size_mb: u32,
        peak_bytes: u64,
    ) -> Summary {
        // In integers (rounded to the microsecond, and to the thousandth of
        // a MB): the same figures as rounding floats, without the float
        // library's calls on every invocation's path.
        let micros =
            u64::try_from(elapsed.as_nanos().saturating_add(500) / 1_000).unwrap_or(u64::MAX);
        let thousandths_mb = (u128::from(peak_bytes) * 1_000 + 524_288) / 1_048_576;
        Summary {
            duration_ms: micros as f64 / 1_000.0,
            billing_duration_ms: micros.div_ceil(1_000).max(1),
            memory_size_mb,
            memory_used_mb: thousandths_mb as f64 / 1_000.0,
        }
    }

    /// The most memory a worker may report, in MB (1 TiB): more is a lie.
    const MAX_REPORTED_MEMORY_MB: f64 = 1_048_576.0;

    /// The summary of a worker process's answer: a worker is an untrusted
    /// peer, so the duration and the billed duration are what the host
    /// measured (`elapsed`, the call's round trip), whatever the worker
    /// did; of the worker's figures only its memory is taken, when it is a
    /// plausible number (else 0).
    pub(crate) fn from_worker(
        memory_used_mb: f64,
        memory_size_mb: u32,
        elapsed: std::time::Duration,
    ) -> Summary {
        let memory_used_mb = if (0.0..=Self::MAX_REPORTED_MEMORY_MB).contains(&memory_used_mb) {
            memory_used_mb
        } else {
            0.0
        };
        Summary {
            memory_used_mb,
            ..Summary::new(elapsed, memory_size_mb, 0)
        }
    }

    /// The summary as FunctionGraph's JSON (`X-Cff-Invoke-Summary`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Everything one invocation produced.
#[derive(Debug, Clone)]
pub struct InvokeResult {
    /// The request id (UUID).
    pub request_id: String,
    /// Result or failure.
    pub outcome: Outcome,
    /// Execution summary.
    pub summary: Summary,
    /// Every line the function logged during the call (bounded in memory;
    /// see `RuntimeConfig::max_log_bytes`).
    pub log: String,
    /// How many bytes of the tail the caller is shown (4 KB by default).
    pub(crate) tail_bytes: usize,
    /// `Some` when this invocation started a new instance (a cold start):
    /// how long starting it took, its initializer included (zero for an
    /// in-process function without one; for a worker process, its start).
    pub cold_start: Option<std::time::Duration>,
}

impl InvokeResult {
    /// The last 4 KB of the log (the caller-visible part, as the console shows).
    pub fn log_tail(&self) -> &str {
        crate::log_buffer::tail(&self.log, self.tail_bytes)
    }

    /// How many bytes of the log the caller is shown
    /// ([`RuntimeConfig::log_tail_bytes`](crate::RuntimeConfig)).
    pub fn tail_bytes(&self) -> usize {
        self.tail_bytes
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_workers_summary_is_what_the_host_measured() {
        let elapsed = std::time::Duration::from_millis(20);
        let s = Summary::from_worker(3.25, 128, elapsed);
        assert_eq!(
            (s.duration_ms, s.billing_duration_ms, s.memory_used_mb),
            (20.0, 20, 3.25)
        );
        // A memory figure out of range is 0; nothing a worker says can
        // overflow later conversions.
        for forged in [1e308, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let s = Summary::from_worker(forged, 128, elapsed);
            assert_eq!(s.memory_used_mb, 0.0, "{forged}");
            assert_eq!(s.billing_duration_ms, 20);
        }
    }

    use super::*;
    use std::time::Duration;

    #[test]
    fn summary_rounds_duration_to_microseconds_and_bills_whole_milliseconds() {
        let s = Summary::new(Duration::from_nanos(1_912_600), 128, 43_515_904);
        assert_eq!(s.duration_ms, 1.913);
        assert_eq!(s.billing_duration_ms, 2);
        assert_eq!(s.memory_used_mb, 41.5);
        assert_eq!(
            s.to_json(),
            r#"{"duration":1.913,"billingDuration":2,"memorySize":128,"memoryUsed":41.5}"#
        );
        assert_eq!(
            Summary::new(Duration::from_nanos(10), 128, 0).billing_duration_ms,
            1
        );
    }

    #[test]
    fn summary_figures_are_those_of_rounding_floats() {
        // What the summary computed with floats before it used integers.
        let floats = |nanos: u64, peak: u64| {
            let duration = (nanos as f64 / 1_000.0).round() / 1_000.0;
            let billing = (duration.ceil() as u64).max(1);
            let memory = (peak as f64 / 1_048_576.0 * 1_000.0).round() / 1_000.0;
            (duration, billing, memory)
        };
        let mut rng = fastrand::Rng::with_seed(7);
        let edges = [
            0, 1, 499, 500, 501, 999_499, 999_500, 1_000_000, 1_000_001, 524_288,
        ];
        for i in 0..100_000u64 {
            let (nanos, peak) = match edges.get(i as usize) {
                Some(&e) => (e, e),
                None => (rng.u64(0..3_600_000_000_000), rng.u64(0..1 << 40)),
            };
            let s = Summary::new(Duration::from_nanos(nanos), 128, peak);
            assert_eq!(
                (s.duration_ms, s.billing_duration_ms, s.memory_used_mb),
                floats(nanos, peak),
                "{nanos} ns, {peak} bytes"
            );
        }
    }

    #[test]
    fn failure_body_is_functiongraph_error_json() {
        let o = Outcome::Failure(FunctionError::new("panic", "boom"));
        assert_eq!(
            String::from_utf8(o.body_bytes()).unwrap(),
            r#"{"errorMessage":"boom","errorType":"panic"}"#
        );
    }
}
