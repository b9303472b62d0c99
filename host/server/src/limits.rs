//! The server's limits on what a client may make it hold: bytes, time and
//! connections. Every number here is a default a production server can
//! run with; each is configurable (the `limits` object of `fnhost serve
//! --config`, fields as below) and documented in the book (docs/src/serving/limits.md).

use std::time::Duration;

use serde::Deserialize;

/// Limits on requests and connections.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest body of a synchronous or asynchronous invocation
    /// (FunctionGraph's 6 MB synchronous limit).
    pub invoke_body_bytes: usize,
    /// Largest body of a code upload (create function, update code): the
    /// zip travels base64 in JSON. Applied only after the request's
    /// authentication headers passed.
    pub code_body_bytes: usize,
    /// Largest body of any other management request.
    pub manage_body_bytes: usize,
    /// Largest body of an APIG gateway request.
    pub gateway_body_bytes: usize,
    /// Code uploads read at once; more get 429 (bounds the memory held by
    /// uploads to this many times `code_body_bytes`).
    pub concurrent_uploads: usize,
    /// Time for a client to send a request's headers (from its first byte,
    /// or from the connection's start for its first request).
    #[serde(with = "seconds")]
    pub header_timeout: Duration,
    /// Time for a client to send a request's whole body; also the longest
    /// a client may leave an answer unread (writes refused for a full
    /// socket buffer) before its connection is closed.
    #[serde(with = "seconds")]
    pub body_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    #[serde(with = "seconds")]
    pub idle_timeout: Duration,
    /// Connections served at once; `0`: as many as the descriptor limit
    /// allows after `reserved_descriptors` and `priority_connections`.
    pub max_connections: usize,
    /// Connections beyond `max_connections` that are still read, one
    /// request each, to answer health checks and management calls (others
    /// get 503). Beyond these, a connection gets 503 without being read.
    pub priority_connections: usize,
    /// Descriptors kept free for everything but connections (the store,
    /// packages, libraries, worker processes).
    pub reserved_descriptors: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            invoke_body_bytes: 6 * 1024 * 1024,
            code_body_bytes: 96 * 1024 * 1024,
            manage_body_bytes: 1024 * 1024,
            gateway_body_bytes: 6 * 1024 * 1024,
            concurrent_uploads: 4,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 0,
            priority_connections: 32,
            reserved_descriptors: 128,
        }
    }
}

/// Why a set of limits cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits: {0}")]
pub struct LimitsError(String);

impl Limits {
    /// Checks that every limit is usable (no zero timeouts or sizes).
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (name, value) in [
            ("invoke_body_bytes", self.invoke_body_bytes),
            ("code_body_bytes", self.code_body_bytes),
            ("manage_body_bytes", self.manage_body_bytes),
            ("gateway_body_bytes", self.gateway_body_bytes),
            ("concurrent_uploads", self.concurrent_uploads),
        ] {
            if value == 0 {
                return Err(LimitsError(format!("{name} must be at least 1")));
            }
        }
        for (name, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() || value > Duration::from_secs(3600) {
                return Err(LimitsError(format!(
                    "{name} must be 1 s to 3600 s, got {value:?}"
                )));
            }
        }
        Ok(())
    }

    /// The connection cap: `max_connections`, or what the descriptor limit
    /// `nofile` leaves after the reserve and the priority connections
    /// (at least 1).
    pub fn connection_cap(&self, nofile: u64) -> usize {
        let budget = usize::try_from(nofile)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.reserved_descriptors)
            .saturating_sub(self.priority_connections)
            .max(1);
        match self.max_connections {
            0 => budget,
            n => n.min(budget),
        }
    }
}

/// Durations as whole seconds in the configuration file.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Raises this process's soft descriptor limit to its hard limit and
/// returns the soft limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; raising the soft limit up to
        // the hard one needs no privilege and changes nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_descriptors_in_reserve() {
        let limits = Limits::default();
        assert_eq!(limits.connection_cap(1024), 1024 - 128 - 32);
        let fixed = Limits {
            max_connections: 100,
            ..Limits::default()
        };
        assert_eq!(fixed.connection_cap(1024), 100);
        assert_eq!(fixed.connection_cap(200), 40, "never past the budget");
        assert_eq!(limits.connection_cap(10), 1);
    }

    #[test]
    fn limits_parse_from_the_config_file_and_zero_is_refused() {
        let parsed: Limits =
            serde_json::from_str(r#"{"idle_timeout": 5, "max_connections": 50}"#).unwrap();
        assert_eq!(parsed.idle_timeout, Duration::from_secs(5));
        assert_eq!(parsed.max_connections, 50);
        assert_eq!(parsed.body_timeout, Limits::default().body_timeout);
        assert!(parsed.validate().is_ok());
        let zero: Limits = serde_json::from_str(r#"{"body_timeout": 0}"#).unwrap();
        assert!(zero.validate().is_err());
        assert!(serde_json::from_str::<Limits>(r#"{"idle": 5}"#).is_err());
    }
}
