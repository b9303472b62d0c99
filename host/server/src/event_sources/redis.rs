//! `REDIS`: a Redis Streams consumer group, fnhost's own event source
//! (FunctionGraph has none).
//!
//! `event_data`: `url` (`redis://[user:password@]host:port[/db]`),
//! `stream`, `group` (default `fnhost`), `batch_size` (1 to 1000, default
//! 10), `start` (`latest`, the default, or `earliest`: where a group this
//! trigger creates starts), `dead_letter_stream` (optional), `consumer`
//! (optional; default this node's name).
//!
//! Semantics: at least once, in stream order, one batch in flight per
//! trigger (a stream is one ordered partition). A batch is read with
//! `XREADGROUP` and `XACK`ed only after the function succeeded, or after
//! the records that still failed after the function's retries were
//! dead-lettered: `XADD`ed to `dead_letter_stream` (with `error` and
//! `source_id` fields), else delivered to the function's `on_failure`
//! destination. A record that could be neither stays pending and comes
//! back. At start the consumer first re-reads what it had read and not
//! acknowledged (its own pending entries: a `kill -9` redelivers at most
//! that batch), and every 30 s claims (`XAUTOCLAIM`) entries idle for over
//! a minute in other consumers of the group: nodes that died.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use ::redis::AsyncConnectionConfig;
use serde_json::{json, Value};

use super::{handle_batch, to_on_failure, Failed, Item, MAX_BATCH};
use crate::active_triggers::SourceStatus;
use crate::model::now_rfc3339;
use crate::state::Shared;

/// The longest name (stream, group, consumer) accepted.
const MAX_NAME: usize = 256;
/// How long a read waits for new entries before it looks again.
const BLOCK: Duration = Duration::from_secs(1);
/// How often the group's lag is read.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// How often entries of dead consumers are claimed, and how long they
/// must have been idle.
const CLAIM_EVERY: Duration = Duration::from_secs(30);
const CLAIM_IDLE: Duration = Duration::from_secs(60);

/// A `REDIS` trigger's settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) batch_size: usize,
    pub(crate) earliest: bool,
    pub(crate) dead_letter_stream: Option<String>,
    pub(crate) consumer: Option<String>,
}

fn name(data: &Value, key: &str, default: Option<&str>) -> Result<Option<String>, String> {
    let value = match data.get(key) {
        None | Some(Value::Null) => return Ok(default.map(str::to_owned)),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("REDIS `{key}` must be a string")),
    };
    if value.is_empty() || value.len() > MAX_NAME || value.chars().any(char::is_control) {
        return Err(format!(
            "REDIS `{key}` must be 1 to {MAX_NAME} bytes without control characters"
        ));
    }
    Ok(Some(value))
}

impl Settings {
    /// The settings in a trigger's `event_data`, checked.
    pub(crate) fn parse(data: &Value) -> Result<Settings, String> {
        let url = match data.get("url") {
            Some(Value::String(u)) => u.clone(),
            _ => return Err("a REDIS trigger needs `url` (redis://host:port)".to_owned()),
        };
        if !url.starts_with("redis://") || url.len() > 1024 || url.chars().any(char::is_control) {
            return Err("REDIS `url` must be redis://[user:password@]host:port[/db]".to_owned());
        }
        ::redis::Client::open(url.as_str()).map_err(|e| format!("REDIS `url`: {e}"))?;
        let stream = name(data, "stream", None)?
            .ok_or("a REDIS trigger needs `stream`, the stream's key")?;
        let group = name(data, "group", Some("fnhost"))?.unwrap_or_default();
        let batch_size = match data.get("batch_size") {
            None | Some(Value::Null) => 10,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_BATCH).contains(n))
                .ok_or(format!("REDIS `batch_size` must be 1 to {MAX_BATCH}"))?,
        } as usize;
        let earliest = match data.get("start").and_then(Value::as_str) {
            None | Some("latest") => false,
            Some("earliest") => true,
            Some(other) => {
                return Err(format!("REDIS `start` `{other}` is not latest or earliest"))
            }
        };
        let dead_letter_stream = name(data, "dead_letter_stream", None)?;
        if dead_letter_stream.as_deref() == Some(stream.as_str()) {
            return Err("REDIS `dead_letter_stream` must not be the stream itself".to_owned());
        }
        Ok(Settings {
            url,
            stream,
            group,
            batch_size,
            earliest,
            dead_letter_stream,
            consumer: name(data, "consumer", None)?,
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
    /// Consumes until the task is aborted (the trigger disabled or
    /// deleted), reconnecting with backoff; the trigger shows `ERROR` and
    /// the reason while it cannot consume.
    pub(crate) async fn run(self) {
        super::keep_consuming(
            "REDIS",
            &self.trigger_id,
            &self.function,
            &self.status,
            || self.consume(),
        )
        .await;
    }

    async fn consume(&self) -> Result<(), String> {
        let s = &self.settings;
        let client = ::redis::Client::open(s.url.as_str()).map_err(|e| e.to_string())?;
        // A read blocks for `BLOCK`: the answer may take that long.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(10)));
        let mut con = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let created: Result<(), ::redis::RedisError> = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&s.stream)
            .arg(&s.group)
            .arg(if s.earliest { "0" } else { "$" })
            .arg("MKSTREAM")
            .query_async(&mut con)
            .await;
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(format!("cannot create group {}: {e}", s.group));
            }
        }
        self.status.set_error(None);
        let consumer = s
            .consumer
            .clone()
            .unwrap_or_else(|| self.state.node_name.clone());
        // First what this consumer had read and not acknowledged.
        let mut backlog = true;
        let mut claimed_at = Instant::now() - CLAIM_EVERY;
        let mut lag_read = Instant::now() - LAG_EVERY;
        loop {
            let mut entries: Vec<StreamId> = Vec::new();
            if claimed_at.elapsed() >= CLAIM_EVERY {
                claimed_at = Instant::now();
                let reply: StreamAutoClaimReply = ::redis::cmd("XAUTOCLAIM")
                    .arg(&s.stream)
                    .arg(&s.group)
                    .arg(&consumer)
                    .arg(CLAIM_IDLE.as_millis() as u64)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(s.batch_size)
                    .query_async(&mut con)
                    .await
                    .map_err(|e| format!("XAUTOCLAIM: {e}"))?;
                entries = reply.claimed;
                if !entries.is_empty() {
                    log::info!(target: "fnhost::trigger", "REDIS trigger {}: claimed {} entries of a consumer idle for {CLAIM_IDLE:?}", self.trigger_id, entries.len());
                }
            }
            let redelivered = backlog || !entries.is_empty();
            if entries.is_empty() {
                let mut read = ::redis::cmd("XREADGROUP");
                read.arg("GROUP")
                    .arg(&s.group)
                    .arg(&consumer)
                    .arg("COUNT")
                    .arg(s.batch_size);
                if !backlog {
                    read.arg("BLOCK").arg(BLOCK.as_millis() as u64);
                }
                read.arg("STREAMS")
                    .arg(&s.stream)
                    .arg(if backlog { "0" } else { ">" });
                let reply: Option<StreamReadReply> = read
                    .query_async(&mut con)
                    .await
                    .map_err(|e| format!("XREADGROUP: {e}"))?;
                entries = reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .collect();
                if backlog && entries.is_empty() {
                    backlog = false;
                    continue;
                }
            }
            // The lag costs a round trip: read at most once a second.
            if lag_read.elapsed() >= LAG_EVERY {
                self.update_lag(&mut con).await;
                lag_read = Instant::now();
            }
            if entries.is_empty() {
                continue;
            }
            let started = Instant::now();
            let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
            let items: Vec<Item> = entries
                .iter()
                .map(|e| record(e, if redelivered { 2 } else { 1 }))
                .collect();
            let (stream, group) = (s.stream.clone(), s.group.clone());
            let failed = handle_batch(&self.state, &self.function, &self.status, items, |items| {
                event(&stream, &group, items)
            })
            .await;
            let mut keep_pending = Vec::new();
            for f in &failed {
                match self.dead_letter(&mut con, f).await {
                    Ok(()) => {
                        self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        log::warn!(target: "fnhost::trigger", "REDIS trigger {}: entry {} failed ({}) and could not be dead-lettered: {e}; it stays pending", self.trigger_id, f.item.id, f.reason);
                        keep_pending.push(f.item.id.clone());
                    }
                }
            }
            let ack: Vec<&String> = ids.iter().filter(|id| !keep_pending.contains(id)).collect();
            if !ack.is_empty() {
                let _: u64 = ::redis::cmd("XACK")
                    .arg(&s.stream)
                    .arg(&s.group)
                    .arg(&ack)
                    .query_async(&mut con)
                    .await
                    .map_err(|e| format!("XACK: {e}"))?;
            }
            self.status.batch_done(started.elapsed());
        }
    }

    /// Gives up on a record: to the dead-letter stream, else to the
    /// function's `on_failure` destination.
    async fn dead_letter(
        &self,
        con: &mut ::redis::aio::MultiplexedConnection,
        failed: &Failed,
    ) -> Result<(), String> {
        let Some(dlq) = &self.settings.dead_letter_stream else {
            return to_on_failure(&self.state, &self.function, "redis", failed).await;
        };
        let mut add = ::redis::cmd("XADD");
        add.arg(dlq)
            .arg("*")
            .arg("source_id")
            .arg(&failed.item.id)
            .arg("error")
            .arg(&failed.reason);
        let record = failed.item.record();
        if let Some(fields) = record.get("fields").and_then(Value::as_object) {
            for (k, v) in fields {
                if k != "source_id" && k != "error" {
                    add.arg(k).arg(v.as_str().unwrap_or_default());
                }
            }
        }
        add.query_async::<String>(con)
            .await
            .map(drop)
            .map_err(|e| format!("XADD {dlq}: {e}"))
    }

    /// The group's lag (entries not yet read) plus its pending count.
    async fn update_lag(&self, con: &mut ::redis::aio::MultiplexedConnection) {
        let s = &self.settings;
        let groups: Result<::redis::streams::StreamInfoGroupsReply, _> = ::redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&s.stream)
            .query_async(con)
            .await;
        if let Ok(groups) = groups {
            if let Some(g) = groups.groups.iter().find(|g| g.name == s.group) {
                let lag = g.lag.unwrap_or(0) + g.pending;
                self.status.lag.store(lag as u64, Ordering::Relaxed);
            }
        }
    }
}

/// A record of the `RedisEvent`, borrowed from its entry.
#[derive(serde::Serialize)]
struct Record<'a> {
    id: &'a str,
    fields: std::collections::BTreeMap<&'a str, std::borrow::Cow<'a, str>>,
    delivery_count: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    binary_fields: Vec<&'a str>,
}

/// An entry as a record of the event: its fields as text, or base64 for a
/// value that is not UTF-8 (named in `binary_fields`).
fn record(entry: &StreamId, delivery_count: u64) -> Item {
    use std::borrow::Cow;
    let mut fields = std::collections::BTreeMap::new();
    let mut binary = Vec::new();
    for (name, value) in &entry.map {
        let text = match value {
            ::redis::Value::BulkString(b) => {
                let (text, encoding) = super::text_or_base64(b);
                if encoding == "base64" {
                    binary.push(name.as_str());
                }
                text
            }
            ::redis::Value::SimpleString(s) => Cow::Borrowed(s.as_str()),
            ::redis::Value::Int(i) => Cow::Owned(i.to_string()),
            _ => Cow::Borrowed(""),
        };
        fields.insert(name.as_str(), text);
    }
    binary.sort_unstable();
    let record = Record {
        id: &entry.id,
        fields,
        delivery_count,
        binary_fields: binary,
    };
    Item::new(entry.id.clone(), &record)
}

/// The `RedisEvent` of a batch.
fn event(stream: &str, group: &str, items: &[Item]) -> Value {
    json!({
        "trigger_type": "REDIS",
        "event_time": now_rfc3339(),
        "stream": stream,
        "group": group,
        "records": items.iter().map(Item::record).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_defaulted() {
        let s =
            Settings::parse(&json!({"url": "redis://127.0.0.1:6379", "stream": "orders"})).unwrap();
        assert_eq!(
            (s.group.as_str(), s.batch_size, s.earliest),
            ("fnhost", 10, false)
        );
        for (bad, why) in [
            (json!({"stream": "s"}), "needs `url`"),
            (json!({"url": "http://x", "stream": "s"}), "redis://"),
            (json!({"url": "redis://h:1"}), "needs `stream`"),
            (json!({"url": "redis://h:1", "stream": ""}), "1 to 256"),
            (json!({"url": "redis://h:1", "stream": "s\n"}), "control"),
            (
                json!({"url": "redis://h:1", "stream": "s", "batch_size": 0}),
                "batch_size",
            ),
            (
                json!({"url": "redis://h:1", "stream": "s", "batch_size": 1001}),
                "batch_size",
            ),
            (
                json!({"url": "redis://h:1", "stream": "s", "start": "middle"}),
                "start",
            ),
            (
                json!({"url": "redis://h:1", "stream": "s", "dead_letter_stream": "s"}),
                "itself",
            ),
            (json!({"url": "redis://h:1", "stream": 7}), "string"),
        ] {
            let e = Settings::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_base64_and_named() {
        let mut map = std::collections::HashMap::new();
        map.insert(
            "text".to_owned(),
            ::redis::Value::BulkString(b"hello".to_vec()),
        );
        map.insert(
            "blob".to_owned(),
            ::redis::Value::BulkString(vec![0xff, 0xfe]),
        );
        let entry = StreamId {
            id: "1-0".to_owned(),
            map,
            ..StreamId::default()
        };
        let item = record(&entry, 1);
        let record = item.record();
        assert_eq!(record["fields"]["text"], "hello");
        assert_eq!(record["fields"]["blob"], "//4=");
        assert_eq!(record["binary_fields"], json!(["blob"]));
        assert_eq!(record["delivery_count"], 1);
        // It parses as the handler's event type.
        let event: fnhost_api::events::RedisEvent =
            serde_json::from_value(event("s", "g", &[item])).unwrap();
        assert_eq!(event.records[0].binary_fields, ["blob"]);
    }
}
