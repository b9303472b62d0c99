//! Timer trigger: `TimerTriggerEvent`.

use serde::{Deserialize, Serialize};

use super::{de, event_type};

/// A timer firing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerEvent {
    /// Event format version (`v1.0`).
    pub version: String,
    /// When it fired (RFC 3339).
    pub time: String,
    /// The trigger's name.
    pub trigger_name: String,
    /// `TIMER`.
    pub trigger_type: String,
    /// The trigger's additional information.
    #[serde(default, deserialize_with = "de::string_or_null")]
    pub user_event: String,
}

impl TimerEvent {
    /// A firing of trigger `trigger_name` at `time` with `user_event`.
    pub fn new(
        trigger_name: impl Into<String>,
        time: impl Into<String>,
        user_event: impl Into<String>,
    ) -> TimerEvent {
        TimerEvent {
            version: "v1.0".into(),
            time: time.into(),
            trigger_name: trigger_name.into(),
            trigger_type: "TIMER".into(),
            user_event: user_event.into(),
        }
    }
}

event_type!(TimerEvent, "TimerEvent", "timer");
