//! An invocation's log: prefixed lines, bounded in memory, with the tail the
//! caller gets back.

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    // The formatted "YYYY-MM-DDTHH:MM:SS" of the last second seen on this
    // thread: log lines within one second only format their milliseconds.
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

const TIME_LEN: usize = 24;

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC, milliseconds) to `out`.
pub(crate) fn push_rfc3339_millis(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    SECOND.with(|cell| {
        let mut cache = cell.borrow_mut();
        if cache.0 != secs {
            let formatted = humantime::format_rfc3339_seconds(
                UNIX_EPOCH + std::time::Duration::from_secs(secs),
            )
            .to_string();
            let bytes = formatted.as_bytes();
            if bytes.len() >= 19 {
                cache.1.copy_from_slice(&bytes[..19]);
                cache.0 = secs;
            }
        }
        out.extend_from_slice(&cache.1);
    });
    out.extend_from_slice(&[
        b'.',
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
    ]);
}

/// In a worker process: where each log line is also written as it is
/// written (the shared region's log area, which the host reads even after
/// the worker died). Unset in the host.
static MIRROR: std::sync::OnceLock<Mirror> = std::sync::OnceLock::new();

/// What receives each log line in a worker process.
pub(crate) type Mirror = Box<dyn Fn(&[u8]) + Send + Sync>;

/// Sets the [`MIRROR`] (once, in a worker process).
pub(crate) fn set_mirror(mirror: Mirror) {
    let _ = MIRROR.set(mirror);
}

/// `message` as the text of one log line: line ends at its end dropped, and
/// every other `\n` or `\r` written as the two characters `\n` or `\r`, so
/// that no message can begin a line of its own (one without the time and
/// request id, or imitating another invocation's). Borrowed when there is
/// nothing to change, as for nearly every line.
pub(crate) fn one_line(message: &[u8]) -> Cow<'_, [u8]> {
    let end = message
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |p| p + 1);
    let message = &message[..end];
    // Line ends, and what some viewers also break lines at: NEL (U+0085),
    // LINE and PARAGRAPH SEPARATOR (U+2028, U+2029), in UTF-8.
    let breaks_at = |i: usize| -> usize {
        match message[i..] {
            [b'\n' | b'\r', ..] => 1,
            [0xC2, 0x85, ..] => 2,
            [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
            _ => 0,
        }
    };
    // Nearly every line has none of their first bytes: two vectorized
    // scans say so (a byte-by-byte pattern match cost 20 instructions a
    // byte, a fifth of a logged call's).
    let may_break = memchr::memchr2(b'\n', b'\r', message).is_some()
        || memchr::memchr2(0xC2, 0xE2, message).is_some();
    if !may_break || !(0..message.len()).any(|i| breaks_at(i) > 0) {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + 8);
    let mut i = 0;
    while i < message.len() {
        match breaks_at(i) {
            0 => {
                out.push(message[i]);
                i += 1;
            }
            n => {
                match &message[i..i + n] {
                    b"\n" => out.extend_from_slice(b"\\n"),
                    b"\r" => out.extend_from_slice(b"\\r"),
                    [0xC2, 0x85] => out.extend_from_slice(b"\\u0085"),
                    [_, _, 0xA8] => out.extend_from_slice(b"\\u2028"),
                    _ => out.extend_from_slice(b"\\u2029"),
                }
                i += n;
            }
        }
    }
    Cow::Owned(out)
}

/// Lines of one invocation, each `<RFC3339 UTC time with ms> <request id> <message>\n`.
/// Holds at most `limit` bytes; older whole lines are dropped first.
#[derive(Debug)]
pub(crate) struct LogBuffer {
    buf: Vec<u8>,
    limit: usize,
    dropped_bytes: usize,
}

impl LogBuffer {
    pub(crate) fn new(limit: usize) -> LogBuffer {
        LogBuffer {
            buf: Vec::new(),
            limit,
            dropped_bytes: 0,
        }
    }

    /// Appends one prefixed line ([`one_line`] of `message`).
    pub(crate) fn push(&mut self, now: SystemTime, request_id: &str, message: &[u8]) {
        let message = one_line(message);
        // One reservation per line instead of several growth steps.
        self.buf
            .reserve(TIME_LEN + 1 + request_id.len() + 1 + message.len() + 1);
        let start = self.buf.len();
        push_rfc3339_millis(&mut self.buf, now);
        self.buf.push(b' ');
        self.buf.extend_from_slice(request_id.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(&message);
        self.buf.push(b'\n');
        if let Some(mirror) = MIRROR.get() {
            mirror(&self.buf[start..]);
        }
        // Trim in batches so a chatty handler costs amortized O(1) per line.
        if self.buf.len() > self.limit + self.limit / 4 {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let excess = self.buf.len().saturating_sub(self.limit);
        let cut = self.buf[excess..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| excess + p + 1)
            .unwrap_or(excess);
        self.buf.drain(..cut);
        self.dropped_bytes += cut;
    }

    /// Bytes dropped from the front to stay within the limit.
    pub(crate) fn dropped_bytes(&self) -> usize {
        self.dropped_bytes
    }

    #[cfg(test)]
    pub(crate) fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Moves the text out (no copy when it is valid UTF-8), leaving the buffer empty.
    pub(crate) fn take_string(&mut self) -> String {
        match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

/// The last `max` bytes of `text`, starting at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lines_carry_time_with_millis_and_request_id() {
        let mut log = LogBuffer::new(1024);
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        log.push(t, "req-1", b"hello");
        assert_eq!(
            log.to_string_lossy(),
            "2023-11-14T22:13:20.123Z req-1 hello\n"
        );
    }

    #[test]
    fn the_cached_second_matches_a_fresh_format_across_boundaries() {
        for ms in [
            0u64,
            999,
            1000,
            59_999,
            60_000,
            1_700_000_000_999,
            1_700_000_001_000,
        ] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let mut out = Vec::new();
            push_rfc3339_millis(&mut out, t);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_millis(t).to_string()
            );
        }
    }

    /// A message with a line end once became two lines, the second
    /// without time or request id, free to imitate another invocation's.
    #[test]
    fn a_message_is_one_line_whatever_it_holds() {
        let mut log = LogBuffer::new(4096);
        let now = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        log.push(
            now,
            "req-1",
            b"first\n2023-11-14T22:13:20.123Z req-2 forged\r\nend\n",
        );
        log.push(now, "req-1", b"plain\n");
        assert_eq!(
            log.to_string_lossy(),
            "2023-11-14T22:13:20.123Z req-1 first\\n2023-11-14T22:13:20.123Z req-2 forged\\r\\nend\n\
             2023-11-14T22:13:20.123Z req-1 plain\n"
        );
        assert!(matches!(one_line(b"no line end"), Cow::Borrowed(_)));
        assert_eq!(
            &*one_line("a\u{85}b\u{2028}c\u{2029}d é".as_bytes()),
            "a\\u0085b\\u2028c\\u2029d é".as_bytes()
        );
    }

    #[test]
    fn keeps_whole_recent_lines_within_the_limit() {
        let mut log = LogBuffer::new(200);
        for i in 0..100 {
            log.push(UNIX_EPOCH, "r", format!("line {i}").as_bytes());
        }
        let text = log.to_string_lossy();
        assert!(text.len() <= 250, "{}", text.len());
        assert!(text.starts_with("1970"), "{text}");
        assert!(text.ends_with("line 99\n"));
        assert!(log.dropped_bytes() > 0);
    }

    #[test]
    fn tail_never_splits_a_character() {
        let s = "ééééé"; // 10 bytes
        assert_eq!(tail(s, 3), "é");
        assert_eq!(tail(s, 4), "éé");
        assert_eq!(tail(s, 100), s);
    }
}
