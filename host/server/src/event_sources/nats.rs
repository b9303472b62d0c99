//! `NATS`: a JetStream durable pull consumer, fnhost's own event source.
//!
//! `event_data`: `url` (`nats://[user:password@]host:port`), `stream` (an
//! existing JetStream stream), `subject` (optional filter), `consumer`
//! (the durable consumer's name, default `fnhost`), `batch_size` (1 to
//! 1000, default 10), `start` (`latest`, the default, or `earliest`:
//! where a consumer the trigger creates starts), `ack_wait_seconds` (1 to
//! 3600, default 30: how long an unacknowledged message waits before
//! JetStream redelivers it), `dead_letter_subject` (optional).
//!
//! Semantics: at least once, one batch handled at a time per trigger, in
//! stream order while nothing is redelivered; the next batch is fetched
//! while the function runs one (`max_ack_pending` is two batches). A
//! message is acknowledged only after the function succeeded, or
//! after its last failure was dead-lettered (published to
//! `dead_letter_subject` with `Fnhost-Source-Sequence` and `Fnhost-Error`
//! headers, else delivered to the function's `on_failure` destination). A
//! message that could be neither is not acknowledged and JetStream
//! redelivers it after `ack_wait_seconds`, as it does the two batches in
//! hand of a node that died or of a trigger disabled mid-batch. Plain core-NATS subjects (no stream) would be at
//! most once: fnhost does not consume them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::{handle_batch, to_on_failure, Failed, Item, MAX_BATCH};
use crate::active_triggers::SourceStatus;
use crate::model::now_rfc3339;
use crate::state::Shared;

/// The longest name (stream, subject, consumer) accepted.
const MAX_NAME: usize = 256;
/// How long a fetch waits for messages before it looks again.
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// How often the consumer's lag is read.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// A `NATS` trigger's settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) stream: String,
    pub(crate) subject: Option<String>,
    pub(crate) consumer: String,
    pub(crate) batch_size: usize,
    pub(crate) earliest: bool,
    pub(crate) ack_wait: Duration,
    pub(crate) dead_letter_subject: Option<String>,
}

fn name(data: &Value, key: &str, default: Option<&str>) -> Result<Option<String>, String> {
    let value = match data.get(key) {
        None | Some(Value::Null) => return Ok(default.map(str::to_owned)),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("NATS `{key}` must be a string")),
    };
    if value.is_empty()
        || value.len() > MAX_NAME
        || value.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "NATS `{key}` must be 1 to {MAX_NAME} bytes without spaces or control characters"
        ));
    }
    Ok(Some(value))
}

impl Settings {
    /// The settings in a trigger's `event_data`, checked.
    pub(crate) fn parse(data: &Value) -> Result<Settings, String> {
        let url = match data.get("url") {
            Some(Value::String(u)) => u.clone(),
            _ => return Err("a NATS trigger needs `url` (nats://host:port)".to_owned()),
        };
        if !url.starts_with("nats://") || url.len() > 1024 || url.chars().any(char::is_control) {
            return Err("NATS `url` must be nats://[user:password@]host:port".to_owned());
        }
        let stream = name(data, "stream", None)?
            .ok_or("a NATS trigger needs `stream`, a JetStream stream (plain subjects would be at most once)")?;
        if stream.contains(['.', '*', '>', '/', '\\']) {
            return Err(
                "NATS `stream` is a stream's name: no `.`, `*`, `>`, `/` or `\\`".to_owned(),
            );
        }
        let consumer = name(data, "consumer", Some("fnhost"))?.unwrap_or_default();
        if consumer.contains(['.', '*', '>', '/', '\\']) {
            return Err(
                "NATS `consumer` is a durable name: no `.`, `*`, `>`, `/` or `\\`".to_owned(),
            );
        }
        let batch_size = match data.get("batch_size") {
            None | Some(Value::Null) => 10,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_BATCH).contains(n))
                .ok_or(format!("NATS `batch_size` must be 1 to {MAX_BATCH}"))?,
        } as usize;
        let earliest = match data.get("start").and_then(Value::as_str) {
            None | Some("latest") => false,
            Some("earliest") => true,
            Some(other) => return Err(format!("NATS `start` `{other}` is not latest or earliest")),
        };
        let ack_wait = match data.get("ack_wait_seconds") {
            None | Some(Value::Null) => 30,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=3600).contains(n))
                .ok_or("NATS `ack_wait_seconds` must be 1 to 3600")?,
        };
        Ok(Settings {
            url,
            stream,
            subject: name(data, "subject", None)?,
            consumer,
            batch_size,
            earliest,
            ack_wait: Duration::from_secs(ack_wait),
            dead_letter_subject: name(data, "dead_letter_subject", None)?,
        })
    }
}

/// One trigger's consumer.
pub(crate) struct Consumer {
    pub(crate) state: Shared,
    pub(crate) function: String,
    pub(crate) trigger_id: String,
    pub(crate) settings: Settings,
    pub(crate) status: Arc<SourceStatus>,
}

impl Consumer {
    /// Consumes until the task is aborted, reconnecting with backoff; the
    /// trigger shows `ERROR` and the reason while it cannot consume.
    pub(crate) async fn run(self) {
        super::keep_consuming(
            "NATS",
            &self.trigger_id,
            &self.function,
            &self.status,
            || self.consume(),
        )
        .await;
    }

    async fn consume(&self) -> Result<(), String> {
        let s = &self.settings;
        let t0 = Instant::now();
        eprintln!("PROF consume start {:?}", std::time::SystemTime::now());
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(Some(1))
            .connect(s.url.as_str())
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let js = async_nats::jetstream::new(client.clone());
        let stream = js
            .get_stream(&s.stream)
            .await
            .map_err(|e| format!("stream {}: {e}", s.stream))?;
        if let Some(dead) = &s.dead_letter_subject {
            // A dead letter the consumed stream captures would come back
            // as a new message: a loop that fills the stream.
            let mut stream = stream.clone();
            let info = stream
                .info()
                .await
                .map_err(|e| format!("stream {}: {e}", s.stream))?;
            if let Some(pattern) = info
                .config
                .subjects
                .iter()
                .find(|p| subject_matches(p, dead))
            {
                return Err(format!(
                    "`dead_letter_subject` {dead} is captured by the consumed stream {} ({pattern}): dead letters would come back",
                    s.stream
                ));
            }
        }
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &s.consumer,
                pull::Config {
                    durable_name: Some(s.consumer.clone()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: s.ack_wait,
                    deliver_policy: if s.earliest {
                        DeliverPolicy::All
                    } else {
                        DeliverPolicy::New
                    },
                    filter_subject: s.subject.clone().unwrap_or_default(),
                    max_ack_pending: 2 * s.batch_size as i64,
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|e| format!("consumer {}: {e}", s.consumer))?;
        self.status.set_error(None);
        eprintln!("PROF consumer ready {:?}", t0.elapsed());
        let mut lag_read = Instant::now() - LAG_EVERY;
        let mut messages = self.fetch(&consumer).await?;
        eprintln!("PROF first fetch {:?}", t0.elapsed());
        loop {
            // The lag costs a round trip: read at most once a second.
            if lag_read.elapsed() >= LAG_EVERY {
                if let Ok(info) = consumer.info().await {
                    let lag = info.num_pending + info.num_ack_pending as u64;
                    self.status.lag.store(lag, Ordering::Relaxed);
                }
                lag_read = Instant::now();
            }
            if messages.is_empty() {
                if client.connection_state() == async_nats::connection::State::Disconnected {
                    return Err("the connection to the server was lost".to_owned());
                }
                messages = self.fetch(&consumer).await?;
                continue;
            }
            // The next batch is fetched while the function runs this one
            // (the consumer's `max_ack_pending` is two batches); batches
            // still run one at a time, in order.
            let (next, handled) =
                tokio::join!(self.fetch(&consumer), self.handle(&client, &messages));
            handled?;
            messages = next?;
        }
    }

    /// The messages of one pull: at most a batch, those there are now, or
    /// the first ones to come within [`FETCH_WAIT`].
    async fn fetch(
        &self,
        consumer: &async_nats::jetstream::consumer::PullConsumer,
    ) -> Result<Vec<async_nats::jetstream::Message>, String> {
        let mut batch = consumer
            .fetch()
            .max_messages(self.settings.batch_size)
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(|e| format!("fetch: {e}"))?;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            messages.push(message.map_err(|e| format!("fetch: {e}"))?);
        }
        Ok(messages)
    }

    /// Runs the function on a batch and acknowledges each message that
    /// succeeded or was dead-lettered.
    async fn handle(
        &self,
        client: &async_nats::Client,
        messages: &[async_nats::jetstream::Message],
    ) -> Result<(), String> {
        let s = &self.settings;
        let started = Instant::now();
        let items: Vec<Item> = messages.iter().map(record).collect();
        let failed = handle_batch(&self.state, &self.function, &self.status, items, |items| {
            event(&s.stream, &s.consumer, items)
        })
        .await;
        for message in messages {
            if !failed.is_empty() {
                let id = sequence(message);
                if let Some(f) = failed.iter().find(|f| f.item.id == id) {
                    if let Err(e) = self.dead_letter(client, f).await {
                        log::warn!(target: "fnhost::trigger", "NATS trigger {}: message {id} failed ({}) and could not be dead-lettered: {e}; JetStream redelivers it", self.trigger_id, f.reason);
                        continue;
                    }
                    self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
            }
            message.ack().await.map_err(|e| format!("ack: {e}"))?;
        }
        self.status.batch_done(started.elapsed());
        Ok(())
    }

    /// Gives up on a message: to the dead-letter subject, else to the
    /// function's `on_failure` destination.
    async fn dead_letter(
        &self,
        client: &async_nats::Client,
        failed: &Failed,
    ) -> Result<(), String> {
        let Some(subject) = &self.settings.dead_letter_subject else {
            return to_on_failure(&self.state, &self.function, "nats", failed).await;
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Fnhost-Source-Sequence", failed.item.id.as_str());
        headers.insert(
            "Fnhost-Error",
            failed.reason.replace(['\r', '\n'], " ").as_str(),
        );
        let record = failed.item.record();
        let data = record["data"].as_str().unwrap_or_default();
        let payload = if record["data_encoding"] == "base64" {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default()
        } else {
            data.as_bytes().to_vec()
        };
        client
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| format!("publish to {subject}: {e}"))?;
        client
            .flush()
            .await
            .map_err(|e| format!("publish to {subject}: {e}"))
    }
}

/// Whether a NATS subject pattern (`*` one token, `>` the rest) matches a
/// subject.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// A message's stream sequence, its record id.
fn sequence(message: &async_nats::jetstream::Message) -> String {
    message
        .info()
        .map(|i| i.stream_sequence.to_string())
        .unwrap_or_default()
}

/// A record of the `NatsEvent`, borrowed from its message.
#[derive(serde::Serialize)]
struct Record<'a> {
    id: &'a str,
    subject: &'a str,
    data: &'a str,
    data_encoding: &'static str,
    headers: std::collections::BTreeMap<&'a str, &'a str>,
    delivery_count: u64,
}

/// A message as a record of the event: its data as text, or base64 when it
/// is not UTF-8 (`data_encoding`), its headers and how often it was
/// delivered.
fn record(message: &async_nats::jetstream::Message) -> Item {
    // The reply subject is parsed once: it holds both numbers.
    let (id, delivered) = match message.info() {
        Ok(info) => (info.stream_sequence.to_string(), info.delivered),
        Err(_) => (String::new(), 1),
    };
    let (data, encoding) = super::text_or_base64(&message.payload);
    let mut headers = std::collections::BTreeMap::new();
    if let Some(h) = &message.headers {
        for (name, values) in h.iter() {
            if let Some(v) = values.first() {
                headers.insert(AsRef::<str>::as_ref(name), v.as_str());
            }
        }
    }
    let record = Record {
        id: &id,
        subject: message.subject.as_str(),
        data: &data,
        data_encoding: encoding,
        headers,
        delivery_count: u64::try_from(delivered).unwrap_or(0),
    };
    Item::new(id.clone(), &record)
}

/// The `NatsEvent` of a batch.
fn event(stream: &str, consumer: &str, items: &[Item]) -> Value {
    json!({
        "trigger_type": "NATS",
        "event_time": now_rfc3339(),
        "stream": stream,
        "consumer": consumer,
        "records": items.iter().map(Item::record).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_subject_the_stream_captures_is_seen() {
        assert!(subject_matches("orders.>", "orders.dlq"));
        assert!(subject_matches("orders.*", "orders.dlq"));
        assert!(subject_matches("orders.dlq", "orders.dlq"));
        assert!(!subject_matches("orders.*", "orders.dlq.x"));
        assert!(!subject_matches("orders.>", "orders"));
        assert!(!subject_matches("orders.in", "orders.dlq"));
        assert!(subject_matches(">", "anything.at.all"));
    }

    #[test]
    fn settings_are_checked_and_defaulted() {
        let s =
            Settings::parse(&json!({"url": "nats://127.0.0.1:4222", "stream": "ORDERS"})).unwrap();
        assert_eq!(
            (s.consumer.as_str(), s.batch_size, s.earliest, s.ack_wait),
            ("fnhost", 10, false, Duration::from_secs(30))
        );
        for (bad, why) in [
            (json!({"stream": "S"}), "needs `url`"),
            (json!({"url": "redis://x", "stream": "S"}), "nats://"),
            (json!({"url": "nats://h:1"}), "needs `stream`"),
            (
                json!({"url": "nats://h:1", "stream": "a.b"}),
                "stream's name",
            ),
            (
                json!({"url": "nats://h:1", "stream": "S", "consumer": "c*"}),
                "durable",
            ),
            (
                json!({"url": "nats://h:1", "stream": "S", "batch_size": 0}),
                "batch_size",
            ),
            (
                json!({"url": "nats://h:1", "stream": "S", "ack_wait_seconds": 0}),
                "ack_wait",
            ),
            (
                json!({"url": "nats://h:1", "stream": "S", "subject": "a b"}),
                "spaces",
            ),
        ] {
            let e = Settings::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
