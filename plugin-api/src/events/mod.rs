//! Trigger events, as FunctionGraph delivers them: serde types with the exact
//! JSON keys of the Go runtime (`APIGTriggerEvent`, `TimerTriggerEvent`, ...).
//!
//! A handler can take an event instead of raw bytes; `export_plugin!`
//! deserializes it and answers a payload that does not parse with a clear
//! function error:
//!
//! ```
//! use fnhost_api::events::{ApigEvent, ApigResponse};
//! use fnhost_api::{Context, HandlerError};
//!
//! fn hello(event: ApigEvent, ctx: &Context) -> Result<ApigResponse, HandlerError> {
//!     ctx.logger().info(format_args!("{} {}", event.http_method, event.path));
//!     let name = event.query_string_parameters.get("name").map_or("world", String::as_str);
//!     Ok(ApigResponse::new(200)
//!         .with_header("content-type", "text/plain")
//!         .with_body(format!("hello {name}")))
//! }
//! # let test = fnhost_api::testing::TestContext::new();
//! # let r = hello(ApigEvent::new("GET", "/hi").with_query("name", "fnhost"), test.context()).unwrap();
//! # assert_eq!(r.body, "hello fnhost");
//! ```
//!
//! Every event type is `Display` (its JSON, like the Go `String()`), has public
//! fields and `Default`, and tolerates unknown fields. Fields the platform may
//! leave out are `Option`s or default to empty.

mod apig;
mod cts;
mod dds;
mod de;
mod dis;
mod kafka;
mod lts;
mod mqtt;
mod nats;
mod rabbitmq;
mod redis;
mod smn;
mod timer;

pub use apig::{ApigEvent, ApigRequestContext, ApigResponse};
pub use cts::{CtsBody, CtsDomain, CtsEvent, CtsUser};
pub use dds::{DdsBody, DdsEvent, DdsNamespace, DdsRecord};
pub use dis::{DisEvent, DisMessage, DisRecord};
pub use kafka::{KafkaEvent, KafkaRecord};
pub use lts::{LtsBody, LtsEvent};
pub use mqtt::{MqttEvent, MqttRecord};
pub use nats::{NatsEvent, NatsRecord};
pub use rabbitmq::{RabbitMqEvent, RabbitMqRecord};
pub use redis::{BatchItemFailure, BatchResponse, RedisEvent, RedisRecord};
pub use smn::{SmnBody, SmnEvent, SmnRecord};
pub use timer::TimerEvent;

pub use crate::payload::FromPayload;

/// Why an event's base64 content could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid base64: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

pub(crate) fn decode_base64(data: &str) -> Result<Vec<u8>, DecodeError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| DecodeError(e.to_string()))
}

pub(crate) fn encode_base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Implements `Display` (compact JSON), `FromPayload` and `IntoOutput` (JSON)
/// for an event type.
macro_rules! event_type {
    ($ty:ty, $name:literal) => {
        event_type!($ty, $name, "json");
    };
    ($ty:ty, $name:literal, $event:literal) => {
        impl std::fmt::Display for $ty {
            /// The event as compact JSON (the Go runtime's `String()`).
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_string(self) {
                    Ok(s) => f.write_str(&s),
                    Err(_) => Err(std::fmt::Error),
                }
            }
        }

        impl $crate::events::FromPayload for $ty {
            const EVENT: &'static str = $event;
            fn from_payload(payload: &[u8]) -> Result<Self, $crate::HandlerError> {
                $crate::payload::parse(payload, $name)
            }
        }

        impl $crate::IntoOutput for $ty {
            fn into_output(self) -> Result<$crate::Output, $crate::HandlerError> {
                $crate::Json(self).into_output()
            }
        }

        impl std::str::FromStr for $ty {
            type Err = serde_json::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                serde_json::from_str(s)
            }
        }
    };
}
pub(crate) use event_type;

/// Ready-to-edit sample events, one per trigger type (the console's test-event
/// templates). `fnhost event TYPE` prints them.
pub mod samples {
    /// The trigger types with a sample, in the order `fnhost event` lists them.
    pub const KINDS: [&str; 12] = [
        "apig", "timer", "kafka", "smn", "dis", "cts", "dds", "lts", "redis", "nats", "mqtt",
        "rabbitmq",
    ];

    /// The sample event of `kind` (case-insensitive), as pretty JSON.
    pub fn sample(kind: &str) -> Option<&'static str> {
        Some(match kind.to_ascii_lowercase().as_str() {
            "apig" => include_str!("samples/apig.json"),
            "timer" => include_str!("samples/timer.json"),
            "kafka" => include_str!("samples/kafka.json"),
            "smn" => include_str!("samples/smn.json"),
            "dis" => include_str!("samples/dis.json"),
            "cts" => include_str!("samples/cts.json"),
            "dds" => include_str!("samples/dds.json"),
            "lts" => include_str!("samples/lts.json"),
            "redis" => include_str!("samples/redis.json"),
            "nats" => include_str!("samples/nats.json"),
            "mqtt" => include_str!("samples/mqtt.json"),
            "rabbitmq" => include_str!("samples/rabbitmq.json"),
            _ => return None,
        })
    }
}
