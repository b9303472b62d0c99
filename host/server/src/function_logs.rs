//! Each function's recent invocation logs, whole lines (not the 4 KB tail a
//! caller gets), kept in memory within a byte budget per function (the
//! oldest lines go first) and read by request id, by time range, or after a
//! sequence number. An invocation that logged nothing costs nothing here.
//! The logs do not survive a restart. Served by [`crate::logs`].

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Bytes of log lines kept per function by default.
pub const DEFAULT_BYTES_PER_FUNCTION: usize = 1024 * 1024;
/// Most lines one answer carries.
pub const MAX_LINES_PER_ANSWER: usize = 5000;

/// One kept line.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// Position in the server's sequence of lines (increasing).
    pub seq: u64,
    /// When the invocation that wrote it ended (ms since the Unix epoch).
    pub time_ms: i64,
    /// The invocation's request id.
    pub request_id: String,
    /// The line, with its time and request id prefix, without the newline.
    pub line: String,
}

#[derive(Default)]
struct Kept {
    lines: VecDeque<Line>,
    bytes: usize,
}

/// The logs of every function.
pub(crate) struct FunctionLogs {
    budget: usize,
    inner: Mutex<(u64, HashMap<String, Kept>)>,
}

/// What a read asks for.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogQuery {
    /// Lines of this invocation only.
    #[serde(default)]
    pub(crate) request_id: Option<String>,
    /// Lines written at or after this time (ms since the epoch).
    #[serde(default)]
    pub(crate) since_ms: Option<i64>,
    /// Lines written before this time (ms since the epoch).
    #[serde(default)]
    pub(crate) until_ms: Option<i64>,
    /// Lines after this sequence number.
    #[serde(default)]
    pub(crate) after: Option<u64>,
    /// Most lines (default and cap [`MAX_LINES_PER_ANSWER`]): the newest of
    /// the matching ones, unless `after` is given (then the oldest).
    #[serde(default)]
    pub(crate) limit: Option<usize>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl FunctionLogs {
    pub(crate) fn new(budget: usize) -> FunctionLogs {
        FunctionLogs {
            budget,
            inner: Mutex::new((0, HashMap::new())),
        }
    }

    /// Keeps the lines of one invocation's `log`.
    pub(crate) fn record(&self, function: &str, request_id: &str, log: &str) {
        if log.is_empty() || self.budget == 0 {
            return;
        }
        let time_ms = now_ms();
        let mut guard = self.inner.lock();
        let (seq, functions) = &mut *guard;
        if !functions.contains_key(function) {
            functions.insert(function.to_owned(), Kept::default());
        }
        let Some(kept) = functions.get_mut(function) else {
            return;
        };
        for line in log.lines() {
            // A line is never larger than the budget.
            let mut end = line.len().min(self.budget);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            let line = &line[..end];
            *seq += 1;
            kept.bytes += line.len() + request_id.len();
            kept.lines.push_back(Line {
                seq: *seq,
                time_ms,
                request_id: request_id.to_owned(),
                line: line.to_owned(),
            });
            while kept.bytes > self.budget {
                let Some(old) = kept.lines.pop_front() else {
                    break;
                };
                kept.bytes -= old.line.len() + old.request_id.len();
            }
        }
    }

    /// Forgets a deleted function's lines.
    pub(crate) fn forget(&self, function: &str) {
        self.inner.lock().1.remove(function);
    }

    /// The lines of `function` that `q` asks for, oldest first, and the
    /// sequence number to ask after next.
    pub(crate) fn read(&self, function: &str, q: &LogQuery) -> (Vec<Line>, u64) {
        let guard = self.inner.lock();
        let (seq, functions) = &*guard;
        let limit = q
            .limit
            .unwrap_or(MAX_LINES_PER_ANSWER)
            .clamp(1, MAX_LINES_PER_ANSWER);
        let Some(kept) = functions.get(function) else {
            return (Vec::new(), q.after.unwrap_or(*seq));
        };
        let matches = |l: &&Line| {
            q.request_id.as_deref().is_none_or(|id| l.request_id == id)
                && q.since_ms.is_none_or(|t| l.time_ms >= t)
                && q.until_ms.is_none_or(|t| l.time_ms < t)
                && q.after.is_none_or(|a| l.seq > a)
        };
        let lines: Vec<Line> = if q.after.is_some() {
            kept.lines
                .iter()
                .filter(matches)
                .take(limit)
                .cloned()
                .collect()
        } else {
            let mut newest: Vec<Line> = kept
                .lines
                .iter()
                .rev()
                .filter(matches)
                .take(limit)
                .cloned()
                .collect();
            newest.reverse();
            newest
        };
        let next = lines.last().map_or(q.after.unwrap_or(*seq), |l| l.seq);
        (lines, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_within_the_budget_and_read_by_request_time_and_sequence() {
        let logs = FunctionLogs::new(200);
        logs.record("f", "r1", "t r1 one\nt r1 two\n");
        logs.record("g", "r9", "t r9 other\n");
        logs.record("f", "r2", "t r2 three\n");
        let q = |request_id: Option<&str>, after: Option<u64>| LogQuery {
            request_id: request_id.map(str::to_owned),
            after,
            ..LogQuery::default()
        };
        let (all, next) = logs.read("f", &q(None, None));
        let text: Vec<&str> = all.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(text, ["t r1 one", "t r1 two", "t r2 three"]);
        assert_eq!(next, all[2].seq);
        let (r1, _) = logs.read("f", &q(Some("r1"), None));
        assert_eq!(r1.len(), 2);
        let (after, _) = logs.read("f", &q(None, Some(all[0].seq)));
        assert_eq!(after.len(), 2, "after the first line");
        let (none, same) = logs.read("f", &q(None, Some(next)));
        assert!(none.is_empty());
        assert_eq!(same, next, "following waits at the same place");
        let future = LogQuery {
            since_ms: Some(now_ms() + 60_000),
            ..LogQuery::default()
        };
        assert!(logs.read("f", &future).0.is_empty());
        // Past the budget the oldest lines go.
        for i in 0..50 {
            logs.record("f", "r3", &format!("line {i}"));
        }
        let (kept, _) = logs.read("f", &q(None, None));
        let bytes: usize = kept.iter().map(|l| l.line.len() + l.request_id.len()).sum();
        assert!(bytes <= 200, "{bytes}");
        assert_eq!(kept.last().unwrap().line, "line 49");
        assert_eq!(
            logs.read("g", &q(None, None)).0.len(),
            1,
            "each function has its own"
        );
        logs.forget("f");
        assert!(logs.read("f", &q(None, None)).0.is_empty());
    }
}
