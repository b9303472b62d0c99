//! `OPENSOURCEKAFKA` (and `KAFKA`, the same here): a Kafka consumer group,
//! FunctionGraph's open-source Kafka trigger, over librdkafka (`rdkafka`).
//!
//! `event_data`, in FunctionGraph's names: `connect_address` (the
//! bootstrap brokers, `host:port[,host:port...]`), `topic_ids` (a list, or
//! one `topic_id`; `topics` too), `consumer_group_id` (`group` too; default
//! `fnhost-TRIGGER_ID`, shared by every node), `batch_size` (1 to 1000,
//! default 100), `start` (`latest`, the default, or `earliest`: where a
//! new group starts), `kafka_user` and `kafka_password` (SASL PLAIN; the
//! password is stored and never answered back), `dead_letter_topic`
//! (optional).
//!
//! Semantics: at least once, in order per partition. A polled batch is
//! split by partition and the partitions' batches run side by side, at
//! most the function's concurrency at once (a slow partition holds back
//! only its own records until the round ends); a
//! partition's offset is committed only after its records succeeded or
//! their last failure was dead-lettered: produced to `dead_letter_topic`
//! (headers `fnhost-error`, `fnhost-source`), else delivered to the
//! function's `on_failure` destination. A record that could be neither is
//! not committed: the partition is sought back to it and it comes again.
//! Offsets are committed asynchronously, so a `kill -9` redelivers at most
//! the round in flight (and a commit not yet sent). librdkafka reconnects
//! by itself; the trigger shows `ERROR` while no broker is up or a topic
//! is missing. Memory: librdkafka's prefetch is bounded (16 MB queued per
//! consumer, 1 MB per partition fetch).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};
use parking_lot::Mutex;
use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::{handle_batch, text_or_base64, to_on_failure, Failed, Item, MAX_BATCH};
use crate::active_triggers::SourceStatus;
use crate::state::Shared;

/// The longest topic or group name Kafka accepts.
const MAX_NAME: usize = 249;
/// The most topics one trigger consumes.
const MAX_TOPICS: usize = 64;
/// How long a seek, a dead-letter produce or a close may take.
const KAFKA_WAIT: Duration = Duration::from_secs(5);

/// An `OPENSOURCEKAFKA` trigger's settings.
#[derive(Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) brokers: String,
    pub(crate) topics: Vec<String>,
    pub(crate) group: Option<String>,
    pub(crate) batch_size: usize,
    pub(crate) earliest: bool,
    pub(crate) sasl: Option<(String, String)>,
    pub(crate) dead_letter_topic: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group", &self.group)
            .field("batch_size", &self.batch_size)
            .field("sasl_user", &self.sasl.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn string<'a>(data: &'a Value, keys: &[&str]) -> Result<Option<&'a str>, String> {
    for key in keys {
        match data.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => return Ok(Some(s)),
            Some(_) => return Err(format!("OPENSOURCEKAFKA `{key}` must be a string")),
        }
    }
    Ok(None)
}

impl Settings {
    /// The settings in a trigger's `event_data`, checked.
    pub(crate) fn parse(data: &Value) -> Result<Settings, String> {
        let brokers = string(data, &["connect_address", "bootstrap_servers"])?.ok_or(
            "an OPENSOURCEKAFKA trigger needs `connect_address` (host:port[,host:port...])",
        )?;
        let well_formed = brokers.len() <= 1024
            && brokers.split(',').all(|b| {
                b.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty()
                        && host.chars().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':')
                        })
                        && port.parse::<u16>().is_ok()
                })
            });
        if !well_formed {
            return Err(
                "OPENSOURCEKAFKA `connect_address` must be host:port[,host:port...]".to_owned(),
            );
        }
        let topics: Vec<String> = match ["topic_ids", "topics", "topic_id"]
            .iter()
            .find_map(|k| data.get(*k).filter(|v| !v.is_null()))
        {
            Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_owned()).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| t.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("OPENSOURCEKAFKA `topic_ids` must be topic names")?,
            Some(_) => return Err("OPENSOURCEKAFKA `topic_ids` must be topic names".to_owned()),
            None => return Err("an OPENSOURCEKAFKA trigger needs `topic_ids`".to_owned()),
        };
        if topics.is_empty() || topics.len() > MAX_TOPICS || !topics.iter().all(|t| is_name(t)) {
            return Err(format!(
                "OPENSOURCEKAFKA `topic_ids` must be 1 to {MAX_TOPICS} topic names (letters, digits, `.`, `_`, `-`)"
            ));
        }
        let group = string(data, &["consumer_group_id", "group"])?;
        if group.is_some_and(|g| !is_name(g)) {
            return Err("OPENSOURCEKAFKA `consumer_group_id` must be 1 to 249 letters, digits, `.`, `_` or `-`".to_owned());
        }
        let batch_size = match data.get("batch_size") {
            None | Some(Value::Null) => 100,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_BATCH).contains(n))
                .ok_or(format!(
                    "OPENSOURCEKAFKA `batch_size` must be 1 to {MAX_BATCH}"
                ))?,
        } as usize;
        let earliest = match string(data, &["start", "offset_reset"])? {
            None | Some("latest") => false,
            Some("earliest") => true,
            Some(other) => {
                return Err(format!(
                    "OPENSOURCEKAFKA `start` `{other}` is not latest or earliest"
                ))
            }
        };
        let user = string(data, &["kafka_user", "sasl_user"])?;
        let password = string(data, &["kafka_password", "sasl_password"])?;
        let sasl = match (user, password) {
            (None, None) => None,
            (Some(u), Some(p)) if u.len() <= 256 && p.len() <= 1024 => {
                Some((u.to_owned(), p.to_owned()))
            }
            _ => {
                return Err(
                    "OPENSOURCEKAFKA SASL needs both `kafka_user` and `kafka_password`".to_owned(),
                )
            }
        };
        let dead_letter_topic = string(data, &["dead_letter_topic"])?;
        if let Some(t) = dead_letter_topic {
            if !is_name(t) || topics.iter().any(|s| s == t) {
                return Err("OPENSOURCEKAFKA `dead_letter_topic` must be a topic name other than the consumed ones".to_owned());
            }
        }
        Ok(Settings {
            brokers: brokers.to_owned(),
            topics,
            group: group.map(str::to_owned),
            batch_size,
            earliest,
            sasl,
            dead_letter_topic: dead_letter_topic.map(str::to_owned),
        })
    }

    /// The client configuration both the consumer and the dead-letter
    /// producer start from.
    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("socket.connection.setup.timeout.ms", "5000")
            .set("reconnect.backoff.max.ms", "10000")
            .set("log_level", "3");
        if let Some((user, password)) = &self.sasl {
            config
                .set("security.protocol", "SASL_PLAINTEXT")
                .set("sasl.mechanisms", "PLAIN")
                .set("sasl.username", user)
                .set("sasl.password", password);
        }
        config
    }
}

/// What librdkafka reports about the consumer: its errors (no broker up, a
/// missing topic) and statistics (lag), kept in the trigger's status.
struct Reports {
    status: Arc<SourceStatus>,
    topics: Vec<String>,
    broker_down: AtomicBool,
    topic_error: Mutex<Option<String>>,
}

impl Reports {
    fn publish(&self) {
        let error = if self.broker_down.load(Ordering::Relaxed) {
            Some("no Kafka broker is reachable".to_owned())
        } else {
            self.topic_error.lock().clone()
        };
        self.status.set_error(error);
    }
}

impl ClientContext for Reports {
    fn stats(&self, statistics: Statistics) {
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.broker_down.store(!up, Ordering::Relaxed);
        let mut lag = 0u64;
        let mut all_known = true;
        for topic in &self.topics {
            match statistics.topics.get(topic) {
                Some(t) if t.partitions.keys().any(|p| *p >= 0) => {
                    for (id, p) in &t.partitions {
                        if *id >= 0 && p.consumer_lag > 0 {
                            lag = lag.saturating_add(p.consumer_lag.unsigned_abs());
                        }
                    }
                }
                _ => all_known = false,
            }
        }
        if all_known {
            *self.topic_error.lock() = None;
        }
        self.status.lag.store(lag, Ordering::Relaxed);
        self.publish();
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log::debug!(target: "fnhost::trigger", "Kafka: {error}: {reason}");
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.broker_down.store(true, Ordering::Relaxed);
            self.publish();
        }
    }
}

impl ConsumerContext for Reports {}

/// One trigger's consumer.
pub(crate) struct Consumer {
    pub(crate) state: Shared,
    pub(crate) function: String,
    pub(crate) trigger_id: String,
    pub(crate) settings: Settings,
    pub(crate) status: Arc<SourceStatus>,
}

impl Consumer {
    /// Consumes until the task is aborted; a consumer that cannot be made
    /// is made again with backoff, and the trigger shows `ERROR` meanwhile.
    pub(crate) async fn run(self) {
        super::keep_consuming(
            "OPENSOURCEKAFKA",
            &self.trigger_id,
            &self.function,
            &self.status,
            || self.consume(),
        )
        .await;
    }

    async fn consume(&self) -> Result<(), String> {
        let s = &self.settings;
        let group = s
            .group
            .clone()
            .unwrap_or_else(|| format!("fnhost-{}", self.trigger_id));
        let reports = Reports {
            status: Arc::clone(&self.status),
            topics: s.topics.clone(),
            broker_down: AtomicBool::new(false),
            topic_error: Mutex::new(None),
        };
        let queued_kb = 16 * 1024;
        let consumer: StreamConsumer<Reports> = s
            .client()
            .set("group.id", &group)
            .set(
                "client.id",
                format!("fnhost-{}-{}", self.state.node_name, self.trigger_id),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                if s.earliest { "earliest" } else { "latest" },
            )
            // A node that dies leaves the group within seconds.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("max.poll.interval.ms", "900000")
            .set("statistics.interval.ms", "1000")
            // An idle fetch returns within 100 ms: a record published to an
            // idle topic reaches the function that soon.
            .set("fetch.wait.max.ms", "100")
            .set("queued.min.messages", (s.batch_size * 2).to_string())
            .set("queued.max.messages.kbytes", queued_kb.to_string())
            .set("fetch.message.max.bytes", "1048576")
            .set("fetch.max.bytes", "16777216")
            .set("receive.message.max.bytes", "16778240")
            .create_with_context(reports)
            .map_err(|e| format!("consumer: {e}"))?;
        let topics: Vec<&str> = s.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| format!("subscribe: {e}"))?;
        let producer: Option<FutureProducer> = match &s.dead_letter_topic {
            Some(_) => Some(
                s.client()
                    .set("message.timeout.ms", "5000")
                    .create()
                    .map_err(|e| format!("dead-letter producer: {e}"))?,
            ),
            None => None,
        };
        loop {
            let first = match consumer.recv().await {
                Ok(m) => m.detach(),
                Err(e) => {
                    self.note_error(&consumer, &e);
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < s.batch_size {
                match consumer.recv().now_or_never() {
                    Some(Ok(m)) => batch.push(m.detach()),
                    Some(Err(e)) => {
                        self.note_error(&consumer, &e);
                        break;
                    }
                    None => break,
                }
            }
            *consumer.context().topic_error.lock() = None;
            consumer.context().publish();
            let started = Instant::now();
            self.handle_round(&consumer, producer.as_ref(), batch)
                .await?;
            self.status.batch_done(started.elapsed());
        }
    }

    /// A consumption error: a missing topic shows on the trigger; others
    /// are librdkafka's to recover from.
    fn note_error(&self, consumer: &StreamConsumer<Reports>, error: &KafkaError) {
        log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: {error}", self.trigger_id);
        *consumer.context().topic_error.lock() = Some(error.to_string());
        consumer.context().publish();
    }

    /// Runs one polled batch: each partition's records side by side, then
    /// commits each partition past what succeeded or was dead-lettered.
    async fn handle_round(
        &self,
        consumer: &StreamConsumer<Reports>,
        producer: Option<&FutureProducer>,
        batch: Vec<OwnedMessage>,
    ) -> Result<(), String> {
        let mut partitions: BTreeMap<(String, i32), Vec<OwnedMessage>> = BTreeMap::new();
        for m in batch {
            partitions
                .entry((m.topic().to_owned(), m.partition()))
                .or_default()
                .push(m);
        }
        let runs = partitions.into_iter().map(|(key, messages)| async move {
            let items: Vec<Item> = messages.iter().map(record).collect();
            let failed =
                handle_batch(&self.state, &self.function, &self.status, items, event).await;
            let mut next = messages.last().map_or(0, |m| m.offset() + 1);
            let mut redo = None;
            for m in &messages {
                let id = record_id(m);
                let Some(f) = failed.iter().find(|f| f.item.id == id) else {
                    continue;
                };
                if let Err(e) = self.dead_letter(producer, m, f).await {
                    log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: record {id} failed ({}) and could not be dead-lettered: {e}; it comes again", self.trigger_id, f.reason);
                    next = m.offset();
                    redo = Some(m.offset());
                    break;
                }
                self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            (key, next, redo)
        });
        // At most the function's concurrency of partitions at once.
        let limit = super::in_flight_limit(&self.state, &self.function);
        let done: Vec<_> = futures_util::stream::iter(runs)
            .buffer_unordered(limit)
            .collect()
            .await;
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), next, _) in &done {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|e| format!("commit: {e}"))?;
        }
        if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
            // Lost partitions (a rebalance) are the new owner's to redo.
            log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: commit: {e}", self.trigger_id);
        }
        for ((topic, partition), _, redo) in done {
            if let Some(offset) = redo {
                if let Err(e) = consumer.seek(&topic, partition, Offset::Offset(offset), KAFKA_WAIT)
                {
                    return Err(format!("seek {topic}/{partition} back to {offset}: {e}"));
                }
            }
        }
        Ok(())
    }

    /// Gives up on a record: to the dead-letter topic, else to the
    /// function's `on_failure` destination.
    async fn dead_letter(
        &self,
        producer: Option<&FutureProducer>,
        message: &OwnedMessage,
        failed: &Failed,
    ) -> Result<(), String> {
        let (Some(producer), Some(topic)) = (producer, &self.settings.dead_letter_topic) else {
            return to_on_failure(&self.state, &self.function, "kafka", failed).await;
        };
        let reason: String = failed.reason.chars().take(1024).collect();
        let source = record_id(message);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "fnhost-error",
                value: Some(reason.as_bytes()),
            })
            .insert(Header {
                key: "fnhost-source",
                value: Some(source.as_bytes()),
            });
        let mut produced = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(payload) = message.payload() {
            produced = produced.payload(payload);
        }
        if let Some(key) = message.key() {
            produced = produced.key(key);
        }
        producer
            .send(produced, KAFKA_WAIT)
            .await
            .map(drop)
            .map_err(|(e, _)| format!("produce to {topic}: {e}"))
    }
}

/// A record's id: `topic/partition/offset`.
fn record_id(message: &OwnedMessage) -> String {
    format!(
        "{}/{}/{}",
        message.topic(),
        message.partition(),
        message.offset()
    )
}

/// A message as a record of FunctionGraph's KAFKA event: one per message,
/// its value in `messages` (base64 when not UTF-8, `data_encoding`), with
/// its id, partition, offset and key beside.
fn record(message: &OwnedMessage) -> Item {
    let id = record_id(message);
    let (data, encoding) = text_or_base64(message.payload().unwrap_or_default());
    let key = message.key().map(|k| text_or_base64(k).0);
    let mut headers = serde_json::Map::new();
    if let Some(h) = message.headers() {
        for header in h.iter() {
            let value = header.value.map(|v| text_or_base64(v).0);
            headers.insert(header.key.to_owned(), Value::from(value));
        }
    }
    Item {
        id: id.clone(),
        record: json!({
            "messages": [data],
            "topic_id": message.topic(),
            "id": id,
            "partition": message.partition(),
            "offset": message.offset(),
            "key": key,
            "data_encoding": encoding,
            "headers": headers,
        }),
    }
}

/// The `KafkaEvent` of a batch.
fn event(items: &[Item]) -> Value {
    super::dms_event("KAFKA", items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_take_functiongraphs_names_and_are_checked() {
        let s = Settings::parse(&json!({
            "connect_address": "127.0.0.1:9092,localhost:9093",
            "topic_ids": ["orders", "refunds"],
            "kafka_user": "u", "kafka_password": "secret",
        }))
        .unwrap();
        assert_eq!(s.topics, ["orders", "refunds"]);
        assert_eq!(
            (s.batch_size, s.earliest, s.group.as_deref()),
            (100, false, None)
        );
        assert!(!format!("{s:?}").contains("secret"));
        let s = Settings::parse(
            &json!({"connect_address": "h:1", "topic_id": "a,b", "consumer_group_id": "g", "start": "earliest"}),
        )
        .unwrap();
        assert_eq!(
            (s.topics.len(), s.group.as_deref(), s.earliest),
            (2, Some("g"), true)
        );
        for (bad, why) in [
            (json!({"topic_ids": ["t"]}), "needs `connect_address`"),
            (
                json!({"connect_address": "h", "topic_ids": ["t"]}),
                "host:port",
            ),
            (
                json!({"connect_address": "h:1;rm", "topic_ids": ["t"]}),
                "host:port",
            ),
            (json!({"connect_address": "h:1"}), "needs `topic_ids`"),
            (
                json!({"connect_address": "h:1", "topic_ids": []}),
                "1 to 64",
            ),
            (
                json!({"connect_address": "h:1", "topic_ids": ["a b"]}),
                "topic names",
            ),
            (
                json!({"connect_address": "h:1", "topic_ids": [7]}),
                "topic names",
            ),
            (
                json!({"connect_address": "h:1", "topic_ids": ["t"], "batch_size": 0}),
                "batch_size",
            ),
            (
                json!({"connect_address": "h:1", "topic_ids": ["t"], "kafka_user": "u"}),
                "both",
            ),
            (
                json!({"connect_address": "h:1", "topic_ids": ["t"], "dead_letter_topic": "t"}),
                "other than",
            ),
            (
                json!({"connect_address": "h:1", "topic_ids": ["t"], "start": "middle"}),
                "latest or earliest",
            ),
        ] {
            let e = Settings::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
