//! `MQTT`: a QoS 1 subscription in a persistent session, fnhost's own event
//! source.
//!
//! `event_data`: `url` (`mqtt://[user:password@]host[:port]`), `topic` (a
//! topic filter, wildcards allowed), `qos` (1, the only one accepted: QoS 0
//! would be at most once), `batch_size` (1 to 1000, default 10; the
//! broker's in-flight window may make batches smaller), `batch_window_ms`
//! (see [`super::batch_window`]), `share_group`
//! (subscribe as `$share/GROUP/TOPIC`, so that the nodes of a cluster
//! share the messages instead of each getting all; default none on one
//! node, `fnhost` on a cluster), `client_id` (default: derived from this
//! node's name and the trigger), `dead_letter_topic` (optional).
//!
//! Semantics: at least once. Acknowledgements are manual: a message's
//! `PUBACK` is sent only after the function succeeded, or after its last
//! failure was dead-lettered (published, QoS 1, to `dead_letter_topic`,
//! else delivered to the function's `on_failure` destination). The session
//! is persistent (clean session off, a stable client id): the broker keeps
//! what arrives while fnhost is away, and redelivers what was not
//! acknowledged when it reconnects (a `kill -9` included). One batch is in
//! flight per trigger; messages keep the broker's order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde_json::{json, Value};

use super::{handle_batch, to_on_failure, Failed, Item, MAX_BATCH};
use crate::active_triggers::SourceStatus;
use crate::model::now_rfc3339;
use crate::state::Shared;

/// The longest topic or name accepted.
const MAX_NAME: usize = 256;
/// The most messages handed over and not yet acknowledged (the broker's
/// in-flight window is far smaller: Mosquitto's is 20).
const MAX_UNACKED: u64 = 10_000;
/// The largest MQTT packet read (the server's payload limit, with room).
const MAX_PACKET: usize = 8 * 1024 * 1024;

/// A `MQTT` trigger's settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) topic: String,
    pub(crate) batch_size: usize,
    pub(crate) batch_window: Option<Duration>,
    pub(crate) share_group: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) dead_letter_topic: Option<String>,
}

fn name(data: &Value, key: &str) -> Result<Option<String>, String> {
    let value = match data.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("MQTT `{key}` must be a string")),
    };
    if value.is_empty() || value.len() > MAX_NAME || value.chars().any(char::is_control) {
        return Err(format!(
            "MQTT `{key}` must be 1 to {MAX_NAME} bytes without control characters"
        ));
    }
    Ok(Some(value))
}

impl Settings {
    /// The settings in a trigger's `event_data`, checked.
    pub(crate) fn parse(data: &Value) -> Result<Settings, String> {
        let url = match data.get("url") {
            Some(Value::String(u)) => u.clone(),
            _ => return Err("an MQTT trigger needs `url` (mqtt://host:port)".to_owned()),
        };
        let bad_url = || "MQTT `url` must be mqtt://[user:password@]host[:port]".to_owned();
        let rest = url.strip_prefix("mqtt://").ok_or_else(bad_url)?;
        if url.len() > 1024 || rest.contains(['/', '?', '#']) || url.chars().any(char::is_control) {
            return Err(bad_url());
        }
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((userinfo, address)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((user.to_owned(), password.to_owned())), address)
            }
            None => (None, rest),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad_url())?),
            None => (address, 1883),
        };
        if host.is_empty() {
            return Err(bad_url());
        }
        let topic = name(data, "topic")?.ok_or("an MQTT trigger needs `topic`, a topic filter")?;
        if !filter_is_valid(&topic) {
            return Err(format!(
                "MQTT `topic` `{topic}` is not a valid filter: `+` and `#` stand alone in a level, `#` only last"
            ));
        }
        if topic.starts_with('$') {
            return Err(
                "MQTT `topic` is a filter; use `share_group` for a shared subscription".to_owned(),
            );
        }
        match data.get("qos") {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64() == Some(1) => {}
            Some(_) => {
                return Err(
                    "MQTT `qos` must be 1 (QoS 0 would be at most once; 2 is not offered)"
                        .to_owned(),
                )
            }
        }
        let batch_size = match data.get("batch_size") {
            None | Some(Value::Null) => 10,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_BATCH).contains(n))
                .ok_or(format!("MQTT `batch_size` must be 1 to {MAX_BATCH}"))?,
        } as usize;
        let share_group = name(data, "share_group")?;
        if share_group
            .as_deref()
            .is_some_and(|g| g.contains(['/', '+', '#']))
        {
            return Err("MQTT `share_group` may not contain /, + or #".to_owned());
        }
        let dead_letter_topic = name(data, "dead_letter_topic")?;
        if dead_letter_topic
            .as_deref()
            .is_some_and(|t| t.contains(['+', '#']))
        {
            return Err("MQTT `dead_letter_topic` is a topic: no wildcards".to_owned());
        }
        if dead_letter_topic
            .as_deref()
            .is_some_and(|t| filter_matches(&topic, t))
        {
            // Each failure would come back as a new message: a loop.
            return Err(format!(
                "MQTT `dead_letter_topic` must not match the consumed filter `{topic}`"
            ));
        }
        Ok(Settings {
            host: host.to_owned(),
            port,
            credentials,
            topic,
            batch_size,
            batch_window: super::batch_window(data).map_err(|e| format!("MQTT {e}"))?,
            share_group,
            client_id: name(data, "client_id")?,
            dead_letter_topic,
        })
    }
}

/// Whether a topic filter is well formed (MQTT 3.1.1, 4.7.1): `+` and `#`
/// fill a level alone, and `#` is the last level.
fn filter_is_valid(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// Whether an MQTT topic filter (`+` one level, `#` the rest) matches a
/// topic.
fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match (level, topic_levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (l, Some(t)) if l == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
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
            "MQTT",
            &self.trigger_id,
            &self.function,
            &self.status,
            || self.consume(),
        )
        .await;
    }

    /// The subscription: the topic filter, shared in a group when one is
    /// named (always on a cluster).
    fn subscription(&self) -> String {
        let s = &self.settings;
        let group = s.share_group.clone().or_else(|| {
            self.state
                .management
                .store()
                .is_shared()
                .then(|| "fnhost".to_owned())
        });
        match group {
            Some(g) => format!("$share/{g}/{}", s.topic),
            None => s.topic.clone(),
        }
    }

    fn client_id(&self) -> String {
        use sha2::Digest;
        self.settings.client_id.clone().unwrap_or_else(|| {
            let digest =
                sha2::Sha256::digest(format!("{}\0{}", self.state.node_name, self.trigger_id));
            format!("fnhost-{}", hex::encode(&digest[..8]))
        })
    }

    async fn consume(&self) -> Result<(), String> {
        let s = &self.settings;
        let mut options = MqttOptions::new(self.client_id(), s.host.clone(), s.port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some((user, password)) = &s.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, mut events) = AsyncClient::new(options, 64);
        // Messages handed over and not acknowledged (the trigger's lag).
        self.status.lag.store(0, Ordering::Relaxed);
        // The event loop runs on its own and never waits for the consumer:
        // it keeps the connection alive while a batch runs, and sends the
        // acknowledgements the consumer queues. What it hands over is
        // bounded by the broker's in-flight window (messages it sent and we
        // did not acknowledge); past `MAX_UNACKED` the connection ends.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Publish>();
        let status = Arc::clone(&self.status);
        let mut poller = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => status.set_error(None),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send(p).is_err() {
                            return "the consumer stopped".to_owned();
                        }
                        if status.lag.fetch_add(1, Ordering::Relaxed) + 1 > MAX_UNACKED {
                            return format!(
                                "the broker sent over {MAX_UNACKED} messages not yet acknowledged"
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return format!("connection: {e}"),
                }
            }
        });
        // Aborted when this future is dropped too (the trigger disabled):
        // the connection must not outlive its consumer.
        struct AbortOnDrop(tokio::task::AbortHandle);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _guard = AbortOnDrop(poller.abort_handle());
        self.serve(&client, &mut rx, &mut poller).await
    }

    async fn serve(
        &self,
        client: &AsyncClient,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Publish>,
        poller: &mut tokio::task::JoinHandle<String>,
    ) -> Result<(), String> {
        let s = &self.settings;
        client
            .subscribe(self.subscription(), QoS::AtLeastOnce)
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        let counter = AtomicU64::new(0);
        loop {
            let first = tokio::select! {
                message = rx.recv() => message.ok_or("the connection ended")?,
                ended = &mut *poller => return Err(ended.unwrap_or_else(|e| e.to_string())),
            };
            // The connection's task ending ends the channel too: the
            // next wait for a first message answers why.
            let (batch, _) = super::gather(
                first,
                s.batch_size,
                s.batch_window,
                &mut futures_util::stream::poll_fn(|cx| rx.poll_recv(cx)),
            )
            .await;
            let started = Instant::now();
            let items: Vec<Item> = batch
                .iter()
                .map(|p| record(p, counter.fetch_add(1, Ordering::Relaxed)))
                .collect();
            let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
            let filter = s.topic.clone();
            let failed = handle_batch(&self.state, &self.function, &self.status, items, |items| {
                event(&filter, items)
            })
            .await;
            for (publish, id) in batch.iter().zip(&ids) {
                // Acknowledged now, or left for the broker to redeliver:
                // either way no longer this connection's.
                let _ = self
                    .status
                    .lag
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1))
                    });
                if let Some(f) = failed.iter().find(|f| &f.item.id == id) {
                    if let Err(e) = self.dead_letter(client, publish, f).await {
                        // Not acknowledged: the broker redelivers it when
                        // this session reconnects.
                        log::warn!(target: "fnhost::trigger", "MQTT trigger {}: a message on {} failed ({}) and could not be dead-lettered: {e}; it is not acknowledged", self.trigger_id, publish.topic, f.reason);
                        continue;
                    }
                    self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                client.ack(publish).await.map_err(|e| format!("ack: {e}"))?;
            }
            self.status.batch_done(started.elapsed());
        }
    }

    /// Gives up on a message: to the dead-letter topic, else to the
    /// function's `on_failure` destination.
    async fn dead_letter(
        &self,
        client: &AsyncClient,
        publish: &Publish,
        failed: &Failed,
    ) -> Result<(), String> {
        let Some(topic) = &self.settings.dead_letter_topic else {
            return to_on_failure(&self.state, &self.function, "mqtt", failed).await;
        };
        client
            .publish_bytes(
                topic.clone(),
                QoS::AtLeastOnce,
                false,
                publish.payload.clone(),
            )
            .await
            .map_err(|e| format!("publish to {topic}: {e}"))
    }
}

/// A message as a record: its payload as text, or base64 when it is not
/// UTF-8 (`payload_encoding`).
fn record(publish: &Publish, n: u64) -> Item {
    /// A record of the `MqttEvent`, borrowed from its message.
    #[derive(serde::Serialize)]
    struct Record<'a> {
        id: &'a str,
        topic: &'a str,
        payload: &'a str,
        payload_encoding: &'static str,
        retain: bool,
        duplicate: bool,
    }
    let (payload, encoding) = super::text_or_base64(&publish.payload);
    let id = n.to_string();
    let record = Record {
        id: &id,
        topic: &publish.topic,
        payload: &payload,
        payload_encoding: encoding,
        retain: publish.retain,
        duplicate: publish.dup,
    };
    Item::new(id.clone(), &record)
}

/// The `MqttEvent` of a batch.
fn event(filter: &str, items: &[Item]) -> Value {
    json!({
        "trigger_type": "MQTT",
        "event_time": now_rfc3339(),
        "topic_filter": filter,
        "records": items.iter().map(Item::record).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_topic_the_filter_matches_is_refused() {
        assert!(filter_matches("fa/#", "fa/dlq"));
        assert!(filter_matches("fa/+", "fa/dlq"));
        assert!(filter_matches("#", "x"));
        assert!(!filter_matches("fa/+", "fa/dlq/x"));
        assert!(!filter_matches("fa/in", "fa/dlq"));
        let loop_ =
            json!({"url": "mqtt://127.0.0.1", "topic": "fa/#", "dead_letter_topic": "fa/dlq"});
        assert!(Settings::parse(&loop_)
            .unwrap_err()
            .contains("must not match"));
        let fine =
            json!({"url": "mqtt://127.0.0.1", "topic": "fa/in", "dead_letter_topic": "fa/dlq"});
        assert!(Settings::parse(&fine).is_ok());
    }

    #[test]
    fn settings_are_checked_and_defaulted() {
        let s =
            Settings::parse(&json!({"url": "mqtt://u:p@127.0.0.1", "topic": "orders/#"})).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.batch_size),
            ("127.0.0.1", 1883, 10)
        );
        assert_eq!(s.credentials, Some(("u".to_owned(), "p".to_owned())));
        for (bad, why) in [
            (json!({"topic": "t"}), "needs `url`"),
            (json!({"url": "tcp://h", "topic": "t"}), "mqtt://"),
            (json!({"url": "mqtt://h:x", "topic": "t"}), "mqtt://"),
            (json!({"url": "mqtt://h/x", "topic": "t"}), "mqtt://"),
            (json!({"url": "mqtt://h"}), "needs `topic`"),
            (
                json!({"url": "mqtt://h", "topic": "$share/g/t"}),
                "share_group",
            ),
            (
                json!({"url": "mqtt://h", "topic": "t", "qos": 0}),
                "at most once",
            ),
            (
                json!({"url": "mqtt://h", "topic": "t", "batch_size": 0}),
                "batch_size",
            ),
            (
                json!({"url": "mqtt://h", "topic": "t", "share_group": "a/b"}),
                "share_group",
            ),
            (
                json!({"url": "mqtt://h", "topic": "t", "dead_letter_topic": "d/#"}),
                "wildcards",
            ),
        ] {
            let e = Settings::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
