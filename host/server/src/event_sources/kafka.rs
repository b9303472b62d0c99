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
//! Semantics: at least once, in order per partition. Each partition has a
//! lane: the records polled for it wait there in order, and one batch of
//! them (at most `batch_size` records and 6 MB) runs at a time; the lanes'
//! batches run side by side, at most the function's concurrency at once,
//! so a slow partition holds back only its own records. A lane holding
//! two batches (or 4 MB) is paused at the broker and resumed when it has
//! room. A partition's offset is committed after each of its batches, only
//! past records that succeeded or whose last failure was dead-lettered:
//! produced to `dead_letter_topic` (headers `fnhost-error`,
//! `fnhost-source`), else delivered to the function's `on_failure`
//! destination. A record that could be neither stays in its lane and runs
//! again a second later, and the offset stays before it. Offsets are
//! committed asynchronously, so a `kill -9` redelivers at most the batches
//! in flight and held (and a commit not yet sent); a partition taken away
//! by a rebalance drops what its lane held, for its new owner to consume.
//! librdkafka reconnects by itself; the trigger shows `ERROR` while no
//! broker is up or a topic is missing. Memory: librdkafka's prefetch is
//! bounded (16 MB queued per consumer, 1 MB per partition fetch), and so is
//! each lane (above).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};
use parking_lot::Mutex;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde_json::Value;

use super::{handle_batch, text_or_base64, to_on_failure, Failed, Item, MAX_BATCH};
use crate::active_triggers::SourceStatus;
use crate::state::Shared;

/// The longest topic or group name Kafka accepts.
const MAX_NAME: usize = 249;
/// The most topics one trigger consumes.
const MAX_TOPICS: usize = 64;
/// How long a dead-letter produce may take.
const KAFKA_WAIT: Duration = Duration::from_secs(5);
/// How long a record that could not be dead-lettered waits to run again.
const REDO_AFTER: Duration = Duration::from_secs(1);
/// A lane holding this many bytes (or two batches) is paused at the broker.
const LANE_BYTES: usize = 4 * 1024 * 1024;

/// A partition: its topic and number.
type Partition = (String, i32);

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
    /// Partitions a rebalance took away since the consumer last looked.
    revoked: Mutex<Vec<Partition>>,
    /// Partitions a rebalance gave since the consumer last looked.
    assigned: Mutex<Vec<Partition>>,
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

impl ConsumerContext for Reports {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (partitions, into) = match rebalance {
            Rebalance::Revoke(partitions) => (partitions, &self.revoked),
            Rebalance::Assign(partitions) => (partitions, &self.assigned),
            Rebalance::Error(_) => return,
        };
        let mut into = into.lock();
        for p in partitions.elements() {
            into.push((p.topic().to_owned(), p.partition()));
        }
    }
}

/// One partition's records in hand, in order: those not yet run (a record
/// to run again first), and whether a batch of them is running.
#[derive(Default)]
struct Lane {
    queue: VecDeque<OwnedMessage>,
    bytes: usize,
    running: bool,
    paused: bool,
    /// A record that could not be dead-lettered runs again no sooner.
    not_before: Option<tokio::time::Instant>,
}

impl Lane {
    fn push_back(&mut self, m: OwnedMessage) {
        self.bytes += message_bytes(&m);
        self.queue.push_back(m);
    }

    /// The next batch: at most `max` records and about an event's size.
    fn take(&mut self, max: usize) -> Vec<OwnedMessage> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < max {
            let Some(size) = self.queue.front().map(message_bytes) else {
                break;
            };
            if !batch.is_empty() && bytes + size > super::MAX_EVENT_BYTES {
                break;
            }
            bytes += size;
            self.bytes -= size;
            batch.extend(self.queue.pop_front());
        }
        batch
    }
}

/// What a record costs to hold: its value, key and headers' bytes.
fn message_bytes(m: &OwnedMessage) -> usize {
    let headers = m.headers().map_or(0, |h| {
        h.iter()
            .map(|x| x.key.len() + x.value.map_or(0, <[u8]>::len))
            .sum()
    });
    m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len) + headers + m.topic().len()
}

/// A batch that ran: its partition, the offset to commit, and the records
/// to run again (failed and not dead-lettered), in order.
struct Ran {
    partition: Partition,
    next: i64,
    redo: Vec<OwnedMessage>,
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
            revoked: Mutex::new(Vec::new()),
            assigned: Mutex::new(Vec::new()),
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
        let mut lanes: BTreeMap<Partition, Lane> = BTreeMap::new();
        let mut runs = futures_util::stream::FuturesUnordered::new();
        // Where the last batch started: lanes take turns.
        let mut turn: Option<Partition> = None;
        loop {
            let wake = lanes
                .values()
                .filter(|l| !l.running && !l.queue.is_empty())
                .filter_map(|l| l.not_before)
                .min();
            tokio::select! {
                received = consumer.recv() => {
                    let mut received = Some(received);
                    let mut any = false;
                    // What librdkafka already holds joins it.
                    while let Some(r) = received {
                        match r {
                            Ok(m) => {
                                let m = m.detach();
                                lanes.entry((m.topic().to_owned(), m.partition())).or_default().push_back(m);
                                any = true;
                            }
                            Err(e) => {
                                self.note_error(&consumer, &e);
                                break;
                            }
                        }
                        received = consumer.recv().now_or_never();
                    }
                    // A record came: the topics are there (an error just
                    // noted stays shown until one does).
                    if any {
                        *consumer.context().topic_error.lock() = None;
                        consumer.context().publish();
                    }
                }
                Some(ran) = runs.next(), if !runs.is_empty() => {
                    self.finish(&consumer, &mut lanes, ran);
                }
                () = sleep_until(wake), if wake.is_some() => {}
            }
            // A partition taken away drops what it held: its new owner
            // consumes it from the committed offset.
            for p in std::mem::take(&mut *consumer.context().revoked.lock()) {
                if let Some(lane) = lanes.get_mut(&p) {
                    lane.queue.clear();
                    lane.bytes = 0;
                    lane.paused = false;
                    lane.not_before = None;
                }
            }
            // A partition given (again) is consumed: whether librdkafka
            // kept a pause across the rebalance or not, it is resumed.
            let given = std::mem::take(&mut *consumer.context().assigned.lock());
            if !given.is_empty() {
                let mut resume = TopicPartitionList::new();
                for p in given {
                    resume.add_partition(&p.0, p.1);
                    lanes.entry(p).or_default().paused = false;
                }
                if let Err(e) = consumer.resume(&resume) {
                    log::debug!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: resume: {e}", self.trigger_id);
                }
            }
            self.pause_or_resume(&consumer, &mut lanes);
            // Batches start in turn, at most the function's concurrency.
            let limit = super::in_flight_limit(&self.state, &self.function);
            let now = tokio::time::Instant::now();
            let ready: Vec<Partition> = {
                let (after, upto): (Vec<_>, Vec<_>) = lanes
                    .iter()
                    .filter(|(_, l)| {
                        !l.running && !l.queue.is_empty() && l.not_before.is_none_or(|t| t <= now)
                    })
                    .map(|(p, _)| p.clone())
                    .partition(|p| turn.as_ref().is_some_and(|t| p > t));
                after.into_iter().chain(upto).collect()
            };
            for p in ready {
                if runs.len() >= limit {
                    break;
                }
                let Some(lane) = lanes.get_mut(&p) else {
                    continue;
                };
                let batch = lane.take(s.batch_size);
                lane.running = true;
                lane.not_before = None;
                turn = Some(p.clone());
                runs.push(self.run_batch(producer.as_ref(), p, batch));
            }
        }
    }

    /// Pauses at the broker each lane that holds two batches (or
    /// [`LANE_BYTES`]), and resumes each paused one that holds less than
    /// one batch (and half as many bytes).
    fn pause_or_resume(
        &self,
        consumer: &StreamConsumer<Reports>,
        lanes: &mut BTreeMap<Partition, Lane>,
    ) {
        let batch = self.settings.batch_size;
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for ((topic, partition), lane) in lanes.iter_mut() {
            let full = lane.queue.len() >= 2 * batch || lane.bytes >= LANE_BYTES;
            if full && !lane.paused {
                pause.add_partition(topic, *partition);
                lane.paused = true;
            } else if lane.paused && lane.queue.len() < batch && lane.bytes < LANE_BYTES / 2 {
                resume.add_partition(topic, *partition);
                lane.paused = false;
            }
        }
        if pause.count() > 0 {
            if let Err(e) = consumer.pause(&pause) {
                log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: pause: {e}", self.trigger_id);
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: resume: {e}", self.trigger_id);
            }
        }
    }

    /// A batch ran: its partition's offset is committed past what is done,
    /// and what must run again goes back to the front of its lane.
    fn finish(
        &self,
        consumer: &StreamConsumer<Reports>,
        lanes: &mut BTreeMap<Partition, Lane>,
        ran: Ran,
    ) {
        let (topic, partition) = &ran.partition;
        let mut offsets = TopicPartitionList::new();
        if let Err(e) = offsets.add_partition_offset(topic, *partition, Offset::Offset(ran.next)) {
            log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: commit: {e}", self.trigger_id);
        } else if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
            // A lost partition (a rebalance) is its new owner's to redo.
            log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: commit: {e}", self.trigger_id);
        }
        let lane = lanes.entry(ran.partition).or_default();
        lane.running = false;
        if !ran.redo.is_empty() {
            for m in ran.redo.into_iter().rev() {
                lane.bytes += message_bytes(&m);
                lane.queue.push_front(m);
            }
            lane.not_before = Some(tokio::time::Instant::now() + REDO_AFTER);
        }
    }

    /// A consumption error: a missing topic shows on the trigger; others
    /// are librdkafka's to recover from.
    fn note_error(&self, consumer: &StreamConsumer<Reports>, error: &KafkaError) {
        log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: {error}", self.trigger_id);
        *consumer.context().topic_error.lock() = Some(error.to_string());
        consumer.context().publish();
    }

    /// Runs one partition's batch: the offset past what is done, and the
    /// records that failed and could not be dead-lettered.
    async fn run_batch(
        &self,
        producer: Option<&FutureProducer>,
        partition: Partition,
        messages: Vec<OwnedMessage>,
    ) -> Ran {
        let started = Instant::now();
        let items: Vec<Item> = messages.iter().map(record).collect();
        let failed = handle_batch(&self.state, &self.function, &self.status, items, event).await;
        let mut next = messages.last().map_or(0, |m| m.offset() + 1);
        let mut redo = Vec::new();
        if !failed.is_empty() {
            for m in messages {
                let id = record_id(&m);
                let Some(f) = failed.iter().find(|f| f.item.id == id) else {
                    continue;
                };
                // Once one could not be dead-lettered, the others are not
                // tried (the target is likely down): they run again too.
                if redo.is_empty() {
                    match self.dead_letter(producer, &m, f).await {
                        Ok(()) => {
                            self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(e) => {
                            log::warn!(target: "fnhost::trigger", "OPENSOURCEKAFKA trigger {}: record {id} failed ({}) and could not be dead-lettered: {e}; it runs again", self.trigger_id, f.reason)
                        }
                    }
                }
                next = next.min(m.offset());
                redo.push(m);
            }
        }
        self.status.batch_done(started.elapsed());
        Ran {
            partition,
            next,
            redo,
        }
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

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
    /// A record of the `KafkaEvent`, borrowed from its message.
    #[derive(serde::Serialize)]
    struct Record<'a> {
        messages: [&'a str; 1],
        topic_id: &'a str,
        id: &'a str,
        partition: i32,
        offset: i64,
        key: Option<std::borrow::Cow<'a, str>>,
        data_encoding: &'static str,
        headers: BTreeMap<&'a str, Option<std::borrow::Cow<'a, str>>>,
    }
    let id = record_id(message);
    let (data, encoding) = text_or_base64(message.payload().unwrap_or_default());
    let mut headers = BTreeMap::new();
    if let Some(h) = message.headers() {
        for header in h.iter() {
            headers.insert(header.key, header.value.map(|v| text_or_base64(v).0));
        }
    }
    let record = Record {
        messages: [&data],
        topic_id: message.topic(),
        id: &id,
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(|k| text_or_base64(k).0),
        data_encoding: encoding,
        headers,
    };
    Item::new(id.clone(), &record)
}

/// The `KafkaEvent` of a batch.
fn event(items: &[Item]) -> Value {
    super::dms_event("KAFKA", items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_is_written_as_the_handlers_kafka_event_has_it() {
        let message = OwnedMessage::new(
            Some(vec![0xff, 0xfe]),
            Some(b"k1".to_vec()),
            "orders".to_owned(),
            rdkafka::Timestamp::NotAvailable,
            3,
            42,
            Some(
                OwnedHeaders::new()
                    .insert(Header {
                        key: "trace",
                        value: Some("t-1"),
                    })
                    .insert(Header::<&str> {
                        key: "empty",
                        value: None,
                    }),
            ),
        );
        let item = record(&message);
        let event: fnhost_api::events::KafkaEvent =
            serde_json::from_value(event(std::slice::from_ref(&item))).unwrap();
        let r = &event.records[0];
        assert_eq!(r.messages, ["//4="]);
        assert_eq!(r.data_encoding.as_deref(), Some("base64"));
        assert_eq!(
            (r.topic_id.as_str(), r.partition, r.offset),
            ("orders", Some(3), Some(42))
        );
        assert_eq!(r.key.as_deref(), Some("k1"));
        assert_eq!(r.id.as_deref(), Some(item.id.as_str()));
        let headers = r.headers.clone().unwrap();
        assert_eq!(headers["trace"].as_deref(), Some("t-1"));
        assert_eq!(headers["empty"], None);
    }

    fn message(offset: i64, bytes: usize) -> OwnedMessage {
        OwnedMessage::new(
            Some(vec![b'x'; bytes]),
            None,
            "t".to_owned(),
            rdkafka::Timestamp::NotAvailable,
            0,
            offset,
            None,
        )
    }

    #[test]
    fn a_lane_gives_batches_in_order_of_at_most_a_batch_and_an_events_size() {
        let mut lane = Lane::default();
        for offset in 0..5 {
            lane.push_back(message(offset, 10));
        }
        assert_eq!(lane.bytes, 5 * 11);
        let offsets = |b: &[OwnedMessage]| b.iter().map(|m| m.offset()).collect::<Vec<_>>();
        assert_eq!(offsets(&lane.take(3)), [0, 1, 2]);
        assert_eq!(lane.bytes, 2 * 11);
        assert_eq!(offsets(&lane.take(3)), [3, 4]);
        assert!(lane.take(3).is_empty() && lane.bytes == 0);
        // Records of 4 MB: one per batch (two would pass the 6 MB event),
        // and a record larger than an event still goes, alone.
        let big = 4 * 1024 * 1024;
        for offset in 5..8 {
            lane.push_back(message(offset, big));
        }
        lane.push_back(message(8, 7 * 1024 * 1024));
        assert_eq!(offsets(&lane.take(100)), [5]);
        assert_eq!(offsets(&lane.take(100)), [6]);
        assert_eq!(offsets(&lane.take(100)), [7]);
        assert_eq!(offsets(&lane.take(100)), [8]);
        assert_eq!(lane.bytes, 0);
    }

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
