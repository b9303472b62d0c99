//! Event sources: triggers fed by message brokers. Each type has a
//! consumer task per active trigger on every node (the broker balances a
//! group's consumers across nodes), which reads a batch, runs the function
//! on it and acknowledges it only after the function succeeded, or after
//! its last failure was dead-lettered: at least once.
//!
//! What is common to every type is here: the checks of a trigger's
//! settings, starting a consumer, and [`handle_batch`], the run of a batch
//! with the function's asynchronous retry policy (`max_async_retry_attempts`,
//! doubling delays) and the partial-batch answer (`batchItemFailures`).
//! What each broker does is in its module:
//! - [`redis`]: `REDIS`, a Redis Streams consumer group (`XREADGROUP`,
//!   `XACK`, `XAUTOCLAIM`);
//! - [`nats`]: `NATS`, a JetStream durable pull consumer;
//! - [`mqtt`]: `MQTT`, a QoS 1 subscription in a persistent session;
//! - [`rabbitmq`]: `RABBITMQ`, an AMQP queue consumer with prefetch;
//! - [`kafka`]: `OPENSOURCEKAFKA` (and `KAFKA`), a Kafka consumer group.

pub(crate) mod kafka;
pub(crate) mod mqtt;
pub(crate) mod nats;
pub(crate) mod rabbitmq;
pub(crate) mod redis;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;

use crate::active_triggers::{Consumer, SourceStatus};
use crate::state::Shared;

/// The trigger types fed by a broker.
pub(crate) const TYPES: [&str; 6] = [
    "REDIS",
    "NATS",
    "MQTT",
    "RABBITMQ",
    "OPENSOURCEKAFKA",
    "KAFKA",
];

/// The most records in one batch.
pub(crate) const MAX_BATCH: u64 = 1000;

/// Whether `trigger_type` is a broker's.
pub(crate) fn is_source(trigger_type: &str) -> bool {
    TYPES.contains(&trigger_type)
}

/// Checks a trigger's `event_data` before it is stored.
pub(crate) fn check(trigger_type: &str, event_data: &Value) -> Result<(), String> {
    match trigger_type {
        "REDIS" => redis::Settings::parse(event_data).map(drop),
        "NATS" => nats::Settings::parse(event_data).map(drop),
        "MQTT" => mqtt::Settings::parse(event_data).map(drop),
        "RABBITMQ" => rabbitmq::Settings::parse(event_data).map(drop),
        "OPENSOURCEKAFKA" | "KAFKA" => kafka::Settings::parse(event_data).map(drop),
        other => Err(format!("`{other}` is not an event source type")),
    }
}

/// An event-source trigger, as the trigger API stored it.
pub(crate) struct Trigger<'a> {
    pub(crate) id: &'a str,
    pub(crate) function: &'a str,
    pub(crate) trigger_type: &'a str,
    pub(crate) active: bool,
    pub(crate) event_data: &'a Value,
}

impl Trigger<'_> {
    /// What a consumer is started with: a trigger stored again with the
    /// same keeps its running consumer.
    pub(crate) fn started_with(&self) -> String {
        format!(
            "{}|{}|{}",
            self.function, self.trigger_type, self.event_data
        )
    }
}

/// The host a broker URL names (`scheme://[userinfo@]host[:port][/...]`).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = rest.rsplit_once('@').map_or(rest, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Refuses a broker URL whose host the server's `event_source_hosts`
/// policy does not allow: loopback only (`127.0.0.0/8`, `::1`,
/// `localhost`) unless the operator allowed any host. A name that merely
/// resolves to loopback is not loopback here.
pub(crate) fn check_host(
    policy: crate::async_queue::HttpDestinations,
    event_data: &Value,
) -> Result<(), String> {
    if policy == crate::async_queue::HttpDestinations::Any {
        return Ok(());
    }
    // Kafka names its brokers `connect_address` (`host:port,...`); the
    // others a URL.
    let hosts: Vec<&str> = match event_data.get("connect_address").and_then(Value::as_str) {
        Some(brokers) => brokers
            .split(',')
            .map(|b| {
                let b = b.trim();
                let host = b.rsplit_once(':').map_or(b, |(h, _)| h);
                host.strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host)
            })
            .collect(),
        None => vec![url_host(
            event_data.get("url").and_then(Value::as_str).unwrap_or(""),
        )],
    };
    for host in hosts {
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "this server connects event sources to loopback hosts only, not `{host}` (the operator allows any host with \"event_source_hosts\": \"any\")"
            ));
        }
    }
    Ok(())
}

/// Starts the consumer of an active event-source trigger (the caller
/// stopped any running one).
pub(crate) fn start(state: &Shared, record: Trigger<'_>) -> Result<(), String> {
    if !record.active {
        return Ok(());
    }
    check_host(state.event_source_hosts, record.event_data)?;
    let status = Arc::new(SourceStatus {
        trigger_type: record.trigger_type.to_owned(),
        function: record.function.to_owned(),
        ..SourceStatus::default()
    });
    // Every type's consumer has the same fields and a `run` task.
    macro_rules! spawn {
        ($source:ident) => {
            tokio::spawn(
                $source::Consumer {
                    state: Arc::clone(state),
                    function: record.function.to_owned(),
                    trigger_id: record.id.to_owned(),
                    settings: $source::Settings::parse(record.event_data)?,
                    status: Arc::clone(&status),
                }
                .run(),
            )
        };
    }
    let task = match record.trigger_type {
        "REDIS" => spawn!(redis),
        "MQTT" => spawn!(mqtt),
        "NATS" => spawn!(nats),
        "RABBITMQ" => spawn!(rabbitmq),
        "OPENSOURCEKAFKA" | "KAFKA" => spawn!(kafka),
        other => return Err(format!("`{other}` is not an event source type")),
    };
    let replaced = state.timers.consumers.lock().insert(
        record.id.to_owned(),
        Consumer {
            function: record.function.to_owned(),
            started_with: record.started_with(),
            task,
            status,
        },
    );
    // Two starts of one trigger at once (a resync beside the API's own
    // start) each stopped nothing and started a consumer: the one replaced
    // ends here. Left running, it was a second client of the trigger (MQTT
    // brokers then drop one of two sessions with the same client id, in
    // turn, forever).
    if let Some(old) = replaced {
        old.task.abort();
    }
    Ok(())
}

/// Reconnecting waits this long at first, doubling up to the most.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs `consume` (one connection's consumption) until it ends well (the
/// task is aborted when the trigger is disabled or deleted), reconnecting
/// after each failure with doubling backoff; the trigger shows `ERROR` and
/// the reason meanwhile. Every event source's consumer runs in this.
pub(crate) async fn keep_consuming<F, Fut>(
    kind: &str,
    trigger_id: &str,
    function: &str,
    status: &SourceStatus,
    mut consume: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = std::time::Instant::now();
        let error = match consume().await {
            Ok(()) => return,
            Err(e) => e,
        };
        log::warn!(target: "fnhost::trigger", "{kind} trigger {trigger_id} of {function}: {error}; reconnecting in {backoff:?}");
        status.set_error(Some(error));
        if started.elapsed() > MAX_BACKOFF * 3 {
            backoff = FIRST_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Bytes as text (borrowed), or as base64 when they are not UTF-8, and
/// which (`text` or `base64`: a record's `data_encoding`).
pub(crate) fn text_or_base64(bytes: &[u8]) -> (std::borrow::Cow<'_, str>, &'static str) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), "text"),
        Err(_) => {
            use base64::Engine as _;
            (
                std::borrow::Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes)),
                "base64",
            )
        }
    }
}

/// The event of a batch in the shape of FunctionGraph's DMS events
/// (Kafka, RabbitMQ): `event_time` in seconds, `region` and `instance_id`
/// as fnhost has them, the records under `records`.
pub(crate) fn dms_event(trigger_type: &str, items: &[Item]) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    serde_json::json!({
        "event_version": "v1.0",
        "event_time": now,
        "trigger_type": trigger_type,
        "region": "local",
        "instance_id": "fnhost",
        "records": items.iter().map(Item::record).collect::<Vec<_>>(),
    })
}

/// One record of a batch: its id (the `itemIdentifier` of a partial-batch
/// answer) and its JSON in the event, written once, straight from the
/// message (a record built as a [`Value`] first, then written, cost about
/// a microsecond a message, a sixth of what a whole batch of 100 costs
/// fnhost per message).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) id: String,
    pub(crate) json: String,
}

impl Item {
    /// An item of `record`, written as JSON.
    pub(crate) fn new(id: String, record: &impl serde::Serialize) -> Item {
        Item {
            id,
            // Writing a struct of strings, numbers and maps with string
            // keys into a String cannot fail.
            json: serde_json::to_string(record).unwrap_or_else(|_| "{}".to_owned()),
        }
    }

    /// The record as a JSON value (for the rare paths: a dead letter, an
    /// `on_failure` delivery, tests).
    pub(crate) fn record(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// A record given up on after the function's last attempt, and why.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) item: Item,
    pub(crate) reason: String,
}

/// The delay before retry `n` (1-based): the asynchronous queue's base,
/// doubling, at most a minute.
fn retry_delay(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(Duration::from_secs(60))
}

/// Which items of `pending` a handler's answer names as failed
/// (`{"batchItemFailures": [{"itemIdentifier": ID}]}`), or `None` when the
/// whole batch succeeded: the answer is not a partial-batch answer (no
/// top-level `batchItemFailures`), or its list is empty or null. As
/// Lambda does, an answer that is malformed or names an id that is empty
/// or not in the batch fails the whole batch: acknowledging what a
/// confused handler did not vouch for would lose it.
pub(crate) fn partial_failures(body: &[u8], pending: &[Item]) -> Option<Vec<usize>> {
    // Most answers are not partial-batch answers: no need to parse them.
    memchr::memmem::find(body, b"batchItemFailures")?;
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let everything = || Some((0..pending.len()).collect());
    match answer.get("batchItemFailures")? {
        Value::Null => None,
        Value::Array(list) if list.is_empty() => None,
        Value::Array(list) => {
            let mut failed = Vec::with_capacity(list.len());
            for failure in list {
                let named = failure
                    .get("itemIdentifier")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .and_then(|id| pending.iter().position(|item| item.id == id));
                match named {
                    Some(i) => failed.push(i),
                    None => return everything(),
                }
            }
            failed.sort_unstable();
            failed.dedup();
            Some(failed)
        }
        _ => everything(),
    }
}

/// How long a batch that is not yet full waits for its next message
/// before it goes to the function (while messages keep coming, it fills).
pub(crate) const GATHER_GAP: Duration = Duration::from_millis(1);
/// How long after its first message a batch goes to the function however
/// full it is, unless the trigger sets `batch_window_ms`.
pub(crate) const GATHER_WINDOW: Duration = Duration::from_millis(20);

/// A trigger's `batch_window_ms` (0 to 10,000): how long a batch waits for
/// more messages after its first. Unset, a batch goes to the function when
/// full, [`GATHER_GAP`] after the last message that joined it, or
/// [`GATHER_WINDOW`] after its first: full under load, at once when idle.
pub(crate) fn batch_window(data: &Value) -> Result<Option<Duration>, String> {
    match data.get("batch_window_ms") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|ms| *ms <= 10_000)
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| "`batch_window_ms` must be 0 to 10000".to_owned()),
    }
}

/// Gathers a batch: `first`, then what `more` yields until the batch has
/// `max` items, `more` ends, or the batch's time is up (see
/// [`batch_window`]). Answers the batch and whether `more` ended.
pub(crate) async fn gather<T, S>(
    first: T,
    max: usize,
    window: Option<Duration>,
    more: &mut S,
) -> (Vec<T>, bool)
where
    S: futures_util::Stream<Item = T> + Unpin,
{
    use futures_util::StreamExt as _;
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + window.unwrap_or(GATHER_WINDOW);
    while batch.len() < max {
        let until = match window {
            Some(_) => deadline,
            None => deadline.min(tokio::time::Instant::now() + GATHER_GAP),
        };
        match tokio::time::timeout_at(until, more.next()).await {
            Ok(Some(item)) => batch.push(item),
            Ok(None) => return (batch, true),
            Err(_) => break,
        }
    }
    (batch, false)
}

/// The largest event one batch makes: FunctionGraph's synchronous request
/// limit. A batch over it is run in consecutive parts; a record that alone
/// would be over it fails at once (`FunctionRequestTooLarge`, not retried)
/// and is dead-lettered.
pub(crate) const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// Room for the event's own fields around its records.
const EVENT_ROOM: usize = 4096;

/// Runs `function` on `items` (see [`run_with_retries`]), in parts of at
/// most [`MAX_EVENT_BYTES`], in order. `event` builds the event of some
/// records; it is called once, without records, for the event's own
/// fields, and each record is written as JSON once. Answers the records
/// still failing after the last attempt; every other one succeeded.
pub(crate) async fn handle_batch(
    state: &Shared,
    function: &str,
    status: &SourceStatus,
    items: Vec<Item>,
    event: impl Fn(&[Item]) -> Value,
) -> Vec<Failed> {
    let mut head = event(&[]);
    if let Some(fields) = head.as_object_mut() {
        fields.remove("records");
    }
    let head = head.to_string();
    let (parts, mut failed) = split_batch(items, MAX_EVENT_BYTES - EVENT_ROOM);
    for part in parts {
        failed.extend(run_with_retries(state, function, status, part, &head).await);
    }
    failed
}

/// The event's JSON: `head` (an object of the event's own fields) with
/// the records' JSON as its `records`.
fn event_payload(head: &str, records: &[Item]) -> Bytes {
    let fields = head.strip_suffix('}').unwrap_or("{");
    let size = head.len() + 16 + records.iter().map(|r| r.json.len() + 1).sum::<usize>();
    let mut out = String::with_capacity(size);
    out.push_str(fields);
    if fields.len() > 1 {
        out.push(',');
    }
    out.push_str("\"records\":[");
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&record.json);
    }
    out.push_str("]}");
    Bytes::from(out)
}

/// Splits a batch into consecutive parts whose records' JSON is at most
/// `limit` bytes together; a record over `limit` alone fails.
fn split_batch(items: Vec<Item>, limit: usize) -> (Vec<Vec<Item>>, Vec<Failed>) {
    let mut parts = Vec::new();
    let mut failed = Vec::new();
    let mut part = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        let size = item.json.len() + 1;
        if size > limit {
            failed.push(Failed {
                reason: format!(
                    "FunctionRequestTooLarge: the record is {size} bytes as JSON, over the {limit}-byte limit of an event"
                ),
                item,
            });
            continue;
        }
        if bytes + size > limit && !part.is_empty() {
            parts.push(std::mem::take(&mut part));
            bytes = 0;
        }
        bytes += size;
        part.push(item);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    (parts, failed)
}

/// Runs `function` on `items`, the event `head` with their records, with
/// the function's retry policy: after a failure the failed records (all of
/// them, or those a partial-batch answer names) are tried again, after
/// a doubling delay, up to `max_async_retry_attempts` times. Answers the
/// records still failing after the last attempt; every other one
/// succeeded.
async fn run_with_retries(
    state: &Shared,
    function: &str,
    status: &SourceStatus,
    items: Vec<Item>,
    head: &str,
) -> Vec<Failed> {
    // The retry policy is read from the store only when a batch fails: a
    // store read per batch was a good part of a one-message batch's cost.
    let mut policy = None;
    let base = state.asynchronous.settings.retry_base;
    let mut pending = items;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let payload = event_payload(head, &pending);
        let (failed, reason) = match invoke(state, function, payload).await {
            Ok(body) => match partial_failures(&body, &pending) {
                None => (Vec::new(), String::new()),
                Some(failed) => (failed, "the handler reported it failed".to_owned()),
            },
            Err(reason) => ((0..pending.len()).collect(), reason),
        };
        let succeeded = pending.len() - failed.len();
        status
            .succeeded
            .fetch_add(succeeded as u64, Ordering::Relaxed);
        let mut keep = Vec::with_capacity(failed.len());
        for (i, prepared) in pending.into_iter().enumerate() {
            if failed.contains(&i) {
                keep.push(prepared);
            }
        }
        pending = keep;
        if pending.is_empty() {
            return Vec::new();
        }
        let retries = policy
            .get_or_insert_with(|| {
                crate::asynchronous::config::policy_for(state, function, function)
            })
            .retries;
        if attempt > retries {
            return pending
                .into_iter()
                .map(|item| Failed {
                    item,
                    reason: reason.clone(),
                })
                .collect();
        }
        status.retried.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(retry_delay(base, attempt)).await;
    }
}

/// How many batches of one trigger may run at once: the function's
/// concurrency (`max_instance_num` × `concurrent_num`), at least 1, at
/// most [`MAX_BATCH`]. Only Kafka runs several (one per partition).
pub(crate) fn in_flight_limit(state: &Shared, function: &str) -> usize {
    let Some(name) = crate::urn::FunctionRefStr::parse(function).map(|r| r.name) else {
        return 1;
    };
    state.management.record(name).map_or(1, |r| {
        let instances = if r.max_instance_num == 0 {
            fnhost::InstanceConfig::default().max_instances
        } else {
            r.max_instance_num
        };
        let per_instance = r.concurrent_num.max(1);
        usize::try_from(u64::from(instances) * u64::from(per_instance))
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_BATCH as usize)
    })
}

/// Runs the function once on `payload`: its output, or why it failed.
async fn invoke(state: &Shared, function: &str, payload: Bytes) -> Result<Vec<u8>, String> {
    let (name, route) = crate::invoke::route_for(state, function).map_err(|e| e.message)?;
    let result = crate::invoke::run_route(state, name, route, payload)
        .await
        .map_err(|e| e.message)?;
    match result.outcome {
        fnhost::Outcome::Success(body) => Ok(body.bytes),
        fnhost::Outcome::Failure(e) => Err(format!("{}: {}", e.error_type, e.message)),
    }
}

/// Delivers failed records to the function's `on_failure` destination,
/// when it has one (the broker had no dead-letter target of its own);
/// whether each was taken.
pub(crate) async fn to_on_failure(
    state: &Shared,
    function: &str,
    source: &str,
    failed: &Failed,
) -> Result<(), String> {
    let policy = crate::asynchronous::config::policy_for(state, function, function);
    let Some(destination) = policy.on_failure else {
        return Err("no dead-letter target and no on_failure destination".to_owned());
    };
    let payload = failed.item.json.clone();
    let ending = crate::asynchronous::destinations::Ending {
        request_id: &failed.item.id,
        function_urn: function.to_owned(),
        status: "FAILED",
        condition: "RetriesExhausted",
        attempts: 0,
        traceparent: "",
        source,
        payload: payload.as_bytes(),
        response: None,
        error: Some((1, &failed.reason)),
    };
    let record = crate::asynchronous::destinations::record(&ending);
    crate::asynchronous::destinations::deliver(state, &destination, record, "", "", 0).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(
        ready: &[u32],
    ) -> (
        tokio::sync::mpsc::UnboundedSender<u32>,
        impl futures_util::Stream<Item = u32> + Unpin,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for n in ready {
            tx.send(*n).unwrap();
        }
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (tx, stream)
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_ready_up_to_its_size() {
        let (_tx, mut more) = channel(&[2, 3, 4, 5]);
        let (batch, ended) = gather(1, 3, None, &mut more).await;
        assert_eq!((batch, ended), (vec![1, 2, 3], false));
        // The rest waits for the next batch.
        let (batch, _) = gather(9, 10, None, &mut more).await;
        assert_eq!(batch, vec![9, 4, 5]);
    }

    #[tokio::test]
    async fn a_batch_goes_when_nothing_more_comes_for_a_moment() {
        let (tx, mut more) = channel(&[2]);
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = tx.send(3);
            tx
        });
        let started = std::time::Instant::now();
        let (batch, ended) = gather(1, 10, None, &mut more).await;
        assert_eq!((batch, ended), (vec![1, 2], false));
        assert!(
            started.elapsed() < Duration::from_millis(80),
            "{:?}",
            started.elapsed()
        );
        drop(late.await.unwrap());
    }

    #[tokio::test]
    async fn a_batch_window_waits_for_more_and_an_ended_stream_says_so() {
        let (tx, mut more) = channel(&[2]);
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = tx.send(3);
            tx
        });
        let started = std::time::Instant::now();
        let window = Some(Duration::from_millis(150));
        let (batch, ended) = gather(1, 10, window, &mut more).await;
        assert_eq!((batch, ended), (vec![1, 2, 3], false));
        assert!(
            started.elapsed() >= Duration::from_millis(140),
            "{:?}",
            started.elapsed()
        );
        drop(late.await.unwrap());
        let (batch, ended) = gather(4, 10, window, &mut more).await;
        assert_eq!((batch, ended), (vec![4], true));
        assert_eq!(batch_window(&serde_json::json!({})), Ok(None));
        assert_eq!(
            batch_window(&serde_json::json!({"batch_window_ms": 500})),
            Ok(Some(Duration::from_millis(500)))
        );
        assert!(batch_window(&serde_json::json!({"batch_window_ms": 10001})).is_err());
        assert!(batch_window(&serde_json::json!({"batch_window_ms": "5"})).is_err());
    }

    fn items(ids: &[&str]) -> Vec<Item> {
        ids.iter()
            .map(|id| Item::new((*id).to_owned(), &serde_json::json!({ "id": id })))
            .collect()
    }

    #[test]
    fn the_event_is_its_own_fields_and_the_records_json() {
        let records = items(&["1-0", "2-0"]);
        let event = event_payload(r#"{"stream":"s","trigger_type":"REDIS"}"#, &records);
        let parsed: Value = serde_json::from_slice(&event).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"stream": "s", "trigger_type": "REDIS", "records": [{"id": "1-0"}, {"id": "2-0"}]})
        );
        assert_eq!(&event_payload("{}", &[])[..], br#"{"records":[]}"#);
    }

    #[test]
    fn a_partial_answer_fails_only_the_records_it_names_in_the_batch() {
        let batch = items(&["1-0", "2-0", "3-0"]);
        let answer =
            br#"{"batchItemFailures": [{"itemIdentifier": "2-0"}, {"itemIdentifier": "3-0"}, {"itemIdentifier": "2-0"}]}"#;
        assert_eq!(partial_failures(answer, &batch), Some(vec![1, 2]));
        // Anything that is not a partial-batch answer, an empty list or
        // null is the whole batch's success.
        for body in [
            &b"ok"[..],
            b"{}",
            br#"{"batchItemFailures": []}"#,
            br#"{"batchItemFailures": null}"#,
            br#"["batchItemFailures"]"#,
            b"\xff batchItemFailures",
        ] {
            assert_eq!(partial_failures(body, &batch), None);
        }
        // An answer that is malformed, or names an id that is empty or not
        // in the batch, fails the whole batch (as Lambda does): a malformed
        // answer acknowledged everything, so nothing was retried (an
        // outsider's attack found it).
        for body in [
            &br#"{"batchItemFailures": "x"}"#[..],
            br#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            br#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            br#"{"batchItemFailures": [{}]}"#,
            br#"{"batchItemFailures": [{"itemIdentifier": 2}]}"#,
            br#"{"batchItemFailures": [{"itemIdentifier": "2-0"}, {"itemIdentifier": "9-9"}]}"#,
        ] {
            assert_eq!(
                partial_failures(body, &batch),
                Some(vec![0, 1, 2]),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn only_loopback_brokers_unless_any_host_is_allowed() {
        use crate::async_queue::HttpDestinations::{Any, Loopback};
        let data = |url: &str| serde_json::json!({ "url": url });
        for ok in [
            "redis://127.0.0.1:6379",
            "redis://u:p@localhost",
            "nats://[::1]:4222",
            "mqtt://127.9.9.9",
        ] {
            assert!(check_host(Loopback, &data(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "redis://10.0.0.1:6379",
            "nats://user:pw@169.254.169.254:80",
            "mqtt://broker.example.com",
            "redis://127.0.0.1@evil.example:6379",
            "redis://localhost.evil.example",
        ] {
            assert!(check_host(Loopback, &data(bad)).is_err(), "{bad}");
            assert!(check_host(Any, &data(bad)).is_ok(), "{bad}");
        }
        let kafka = |brokers: &str| serde_json::json!({ "connect_address": brokers });
        assert!(check_host(Loopback, &kafka("127.0.0.1:9092,localhost:9093,[::1]:9094")).is_ok());
        for bad in ["127.0.0.1:9092,10.0.0.1:9092", "kafka.example:9092"] {
            assert!(check_host(Loopback, &kafka(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_batch_over_the_event_limit_runs_in_parts_and_an_oversized_record_fails_alone() {
        let item = |id: &str, len: usize| Item::new(id.to_owned(), &"x".repeat(len));
        // Each record is its length + 2 quotes + 1 separator as JSON.
        let batch = vec![
            item("a", 40),
            item("b", 40),
            item("huge", 200),
            item("c", 40),
        ];
        let (parts, failed) = split_batch(batch, 100);
        let ids: Vec<Vec<&str>> = parts
            .iter()
            .map(|p| p.iter().map(|i| i.id.as_str()).collect())
            .collect();
        assert_eq!(ids, [vec!["a", "b"], vec!["c"]]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].item.id, "huge");
        assert!(failed[0].reason.starts_with("FunctionRequestTooLarge"));
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_a_minute() {
        let base = Duration::from_millis(100);
        assert_eq!(retry_delay(base, 1), Duration::from_millis(100));
        assert_eq!(retry_delay(base, 3), Duration::from_millis(400));
        assert_eq!(retry_delay(base, 40), Duration::from_secs(60));
    }
}
