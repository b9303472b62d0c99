//! An invocation's log: prefixed lines, bounded in memory, with the tail the
//! caller gets back.

use std::time::SystemTime;

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

    /// Appends one prefixed line.
    pub(crate) fn push(&mut self, now: SystemTime, request_id: &str, message: &[u8]) {
        use std::io::Write;
        let time = humantime::format_rfc3339_millis(now);
        let _ = write!(self.buf, "{time} {request_id} ");
        self.buf.extend_from_slice(message);
        self.buf.push(b'\n');
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

    pub(crate) fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
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
