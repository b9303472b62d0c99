//! `RABBITMQ`: an AMQP 0-9-1 consumer of a RabbitMQ queue, FunctionGraph's
//! RABBITMQ trigger type.
//!
//! `event_data`: `url` (`amqp://user:password@host:port/vhost`), and
//! either `queue` (an existing queue) or `exchange` (FunctionGraph's
//! `exchange_name` too) with `routing_key` (default `#`): then fnhost
//! declares a durable queue (`queue`, or `fnhost.TRIGGER_ID` when none is
//! named) and binds it to the exchange. `batch_size` (1 to 1000, default
//! 10), `batch_window_ms` (see [`super::batch_window`]),
//! `dead_letter_exchange` and `dead_letter_routing_key` (optional).
//!
//! Semantics: at least once, in queue order, one batch in flight per
//! trigger: the channel's prefetch is two batches, so the broker sends the
//! next batch while the function runs one, and no more (competing
//! consumers on several nodes share the queue). A message is acknowledged only
//! after the function succeeded, or after its last failure was
//! dead-lettered: published, with publisher confirms, to
//! `dead_letter_exchange` (headers `x-fnhost-error` and
//! `x-fnhost-source-queue`), else delivered to the function's
//! `on_failure` destination. A message that could be neither is
//! rejected back to the queue (`basic.nack` with requeue) and comes back.
//! A node that dies leaves its batch unacknowledged, and RabbitMQ
//! redelivers it when the connection closes.
//!
//! The event follows FunctionGraph's DMS events (`records[].messages[]`,
//! `topic_id`, `trigger_type`, `event_time`): one record per message, so
//! each carries its `id` (the `itemIdentifier` of a partial-batch answer)
//! and its AMQP metadata beside `messages`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::{Map, Value};

use super::{handle_batch, to_on_failure, Failed, Item, MAX_BATCH};
use crate::active_triggers::SourceStatus;
use crate::state::Shared;

/// The longest name (queue, exchange, routing key) accepted: AMQP's
/// short-string limit.
const MAX_NAME: usize = 255;
/// How long a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest AMQP frame asked for (AMQP's minimum). lapin refuses a
/// larger frame that arrives in pieces (the connection closes with
/// `FRAME-ERROR` and the trigger shows it), but parses one that arrived
/// whole: deep header tables are bounded by the server's thread stacks
/// too (see `fnhost serve`'s `deeper_thread_stacks`).
const MAX_FRAME: u32 = 4096;
/// How often the queue's depth is read while it is idle.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// A `RABBITMQ` trigger's settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) queue: Option<String>,
    pub(crate) exchange: Option<String>,
    pub(crate) routing_key: String,
    pub(crate) batch_size: u16,
    pub(crate) batch_window: Option<Duration>,
    pub(crate) dead_letter_exchange: Option<String>,
    pub(crate) dead_letter_routing_key: Option<String>,
}

fn name(data: &Value, keys: &[&str]) -> Result<Option<String>, String> {
    let Some((key, value)) = keys
        .iter()
        .find_map(|k| data.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
    else {
        return Ok(None);
    };
    let Value::String(value) = value else {
        return Err(format!("RABBITMQ `{key}` must be a string"));
    };
    if value.len() > MAX_NAME || value.chars().any(char::is_control) {
        return Err(format!(
            "RABBITMQ `{key}` must be at most {MAX_NAME} bytes without control characters"
        ));
    }
    Ok(Some(value.clone()))
}

impl Settings {
    /// The settings in a trigger's `event_data`, checked.
    pub(crate) fn parse(data: &Value) -> Result<Settings, String> {
        let url = match data.get("url") {
            Some(Value::String(u)) => u.clone(),
            _ => {
                return Err(
                    "a RABBITMQ trigger needs `url` (amqp://user:password@host:port/vhost)"
                        .to_owned(),
                )
            }
        };
        if !url.starts_with("amqp://") || url.len() > 1024 || url.chars().any(char::is_control) {
            return Err("RABBITMQ `url` must be amqp://user:password@host:port/vhost".to_owned());
        }
        let queue = name(data, &["queue", "queue_name"])?;
        let exchange = name(data, &["exchange", "exchange_name"])?;
        if queue.as_deref().unwrap_or_default().is_empty() && exchange.is_none() {
            return Err(
                "a RABBITMQ trigger needs `queue`, or `exchange` and `routing_key`".to_owned(),
            );
        }
        if exchange.as_deref() == Some("") {
            return Err("RABBITMQ `exchange` must be named (the default exchange routes by queue name: give `queue`)".to_owned());
        }
        let batch_size = match data.get("batch_size") {
            None | Some(Value::Null) => 10,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_BATCH).contains(n))
                .ok_or(format!("RABBITMQ `batch_size` must be 1 to {MAX_BATCH}"))?,
        };
        let dead_letter_exchange = name(data, &["dead_letter_exchange"])?;
        if dead_letter_exchange.is_some() && dead_letter_exchange == exchange {
            return Err(
                "RABBITMQ `dead_letter_exchange` must not be the exchange the trigger consumes"
                    .to_owned(),
            );
        }
        let dead_letter_routing_key = name(data, &["dead_letter_routing_key"])?;
        // The default exchange routes by queue name: dead letters sent
        // there with the consumed queue's name (or a message's own key,
        // which is that name for a message sent to it) would come back.
        if matches!(dead_letter_exchange.as_deref(), Some("" | "amq.default")) {
            // (A trigger on an exchange consumes its own `fnhost.` queue.)
            let comes_back = |k: &str| match &queue {
                Some(q) => k == q,
                None => k.starts_with("fnhost."),
            };
            if dead_letter_routing_key.as_deref().is_none_or(comes_back) {
                return Err("RABBITMQ `dead_letter_exchange` is the default exchange: give `dead_letter_routing_key`, a queue other than the consumed one".to_owned());
            }
        }
        Ok(Settings {
            url,
            queue,
            exchange,
            routing_key: name(data, &["routing_key"])?.unwrap_or_else(|| "#".to_owned()),
            batch_size: u16::try_from(batch_size).unwrap_or(10),
            batch_window: super::batch_window(data).map_err(|e| format!("RABBITMQ {e}"))?,
            dead_letter_exchange,
            dead_letter_routing_key,
        })
    }

    /// The queue consumed: the one named, or the trigger's own.
    fn queue_name(&self, trigger_id: &str) -> String {
        self.queue
            .clone()
            .unwrap_or_else(|| format!("fnhost.{trigger_id}"))
    }
}

/// The channel's prefetch for a batch size: two batches.
pub(crate) fn prefetch(batch_size: u16) -> u16 {
    batch_size.saturating_mul(2)
}

/// One trigger's consumer.
pub(crate) struct Consumer {
    pub(crate) state: Shared,
    pub(crate) function: String,
    pub(crate) trigger_id: String,
    pub(crate) settings: Settings,
    pub(crate) status: Arc<SourceStatus>,
}

fn amqp(what: &str, e: lapin::Error) -> String {
    format!("{what}: {e}")
}

impl Consumer {
    /// Consumes until the task is aborted, reconnecting with backoff; the
    /// trigger shows `ERROR` and the reason while it cannot consume.
    pub(crate) async fn run(self) {
        super::keep_consuming(
            "RABBITMQ",
            &self.trigger_id,
            &self.function,
            &self.status,
            || self.consume(),
        )
        .await;
    }

    async fn consume(&self) -> Result<(), String> {
        let s = &self.settings;
        let queue = s.queue_name(&self.trigger_id);
        let properties = ConnectionProperties::default().with_connection_name(
            format!(
                "fnhost {} trigger {}",
                self.state.node_name, self.trigger_id
            )
            .into(),
        );
        let mut uri: lapin::uri::AMQPUri =
            s.url.parse().map_err(|e| format!("cannot connect: {e}"))?;
        // A small frame bounds how deeply an attacker can nest header
        // tables, which lapin's parser reads by recursion on its I/O thread
        // (a table nested 300 deep overflowed that thread's 2 MB stack and
        // aborted the server). Bodies are split into more frames.
        uri.query.frame_max = Some(MAX_FRAME);
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties))
                .await
                .map_err(|_| "cannot connect: timed out".to_owned())?
                .map_err(|e| amqp("cannot connect", e))?;
        let result = self.consume_on(&connection, &queue).await;
        // Closing returns the unacknowledged messages to the queue at once.
        let _ = connection.close(200, "fnhost trigger stopped".into()).await;
        result
    }

    async fn consume_on(&self, connection: &Connection, queue: &str) -> Result<(), String> {
        let s = &self.settings;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| amqp("channel", e))?;
        if let Some(exchange) = &s.exchange {
            channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions::durable(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp(&format!("queue {queue}"), e))?;
            channel
                .queue_bind(
                    queue.into(),
                    exchange.as_str().into(),
                    s.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp(&format!("bind {queue} to {exchange}"), e))?;
        } else {
            channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions::default().passive(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp(&format!("queue {queue}"), e))?;
        }
        // Two batches: the broker sends the next while the function runs
        // this one (a prefetch of one batch left it idle between batches).
        channel
            .basic_qos(prefetch(s.batch_size), BasicQosOptions::default())
            .await
            .map_err(|e| amqp("prefetch", e))?;
        // Dead letters go through a channel of their own, with confirms,
        // so a publish is known to be taken before the source is acked.
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| amqp("channel", e))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp("confirm", e))?;
        let mut deliveries = channel
            .basic_consume(
                queue.into(),
                format!("fnhost-{}-{}", self.state.node_name, self.trigger_id).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp(&format!("consume {queue}"), e))?;
        self.status.set_error(None);
        let mut depth_read = Instant::now() - LAG_EVERY;
        loop {
            if depth_read.elapsed() >= LAG_EVERY {
                self.update_lag(&channel, queue).await;
                depth_read = Instant::now();
            }
            let first = match tokio::time::timeout(LAG_EVERY, deliveries.next()).await {
                Err(_) => continue,
                Ok(None) => return Err("the broker ended the consumer".to_owned()),
                Ok(Some(d)) => d.map_err(|e| amqp("delivery", e))?,
            };
            // What the broker already sent joins the batch, and what it
            // is still sending (a prefetch of two batches), for a moment.
            let (gathered, ended) = super::gather(
                Ok(first),
                usize::from(s.batch_size),
                s.batch_window,
                &mut deliveries,
            )
            .await;
            let mut batch = Vec::with_capacity(gathered.len());
            for d in gathered {
                batch.push(d.map_err(|e| amqp("delivery", e))?);
            }
            if ended {
                // Ending with messages in hand: they go back to the queue
                // when the connection closes, unacknowledged.
                return Err("the broker ended the consumer".to_owned());
            }
            let started = Instant::now();
            let items: Vec<Item> = batch.iter().map(|d| record(d, queue)).collect();
            let failed =
                handle_batch(&self.state, &self.function, &self.status, items, event).await;
            self.settle(&channel, &publisher, &batch, &failed, queue)
                .await?;
            self.status.batch_done(started.elapsed());
        }
    }

    /// Acknowledges a handled batch: every message that succeeded or was
    /// dead-lettered; a failed one that could not be is requeued.
    async fn settle(
        &self,
        channel: &Channel,
        publisher: &Channel,
        batch: &[Delivery],
        failed: &[Failed],
        queue: &str,
    ) -> Result<(), String> {
        if failed.is_empty() {
            // Everything up to the batch's last delivery is this batch (the
            // next one, prefetched, comes after it): one frame acknowledges
            // it.
            if let Some(last) = batch.last() {
                channel
                    .basic_ack(last.delivery_tag, BasicAckOptions { multiple: true })
                    .await
                    .map_err(|e| amqp("ack", e))?;
            }
            return Ok(());
        }
        for delivery in batch {
            let id = delivery.delivery_tag.to_string();
            if let Some(f) = failed.iter().find(|f| f.item.id == id) {
                if let Err(e) = self.dead_letter(publisher, delivery, f, queue).await {
                    log::warn!(target: "fnhost::trigger", "RABBITMQ trigger {}: message {id} failed ({}) and could not be dead-lettered: {e}; it goes back to the queue", self.trigger_id, f.reason);
                    channel
                        .basic_nack(
                            delivery.delivery_tag,
                            BasicNackOptions {
                                multiple: false,
                                requeue: true,
                            },
                        )
                        .await
                        .map_err(|e| amqp("nack", e))?;
                    continue;
                }
                self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            channel
                .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                .await
                .map_err(|e| amqp("ack", e))?;
        }
        Ok(())
    }

    /// Gives up on a message: to the dead-letter exchange, else to the
    /// function's `on_failure` destination.
    async fn dead_letter(
        &self,
        publisher: &Channel,
        delivery: &Delivery,
        failed: &Failed,
        queue: &str,
    ) -> Result<(), String> {
        let Some(exchange) = &self.settings.dead_letter_exchange else {
            return to_on_failure(&self.state, &self.function, "rabbitmq", failed).await;
        };
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let reason: String = failed.reason.chars().take(1024).collect();
        headers.insert(
            "x-fnhost-error".into(),
            AMQPValue::LongString(reason.into()),
        );
        headers.insert(
            "x-fnhost-source-queue".into(),
            AMQPValue::LongString(queue.into()),
        );
        let routing_key = self
            .settings
            .dead_letter_routing_key
            .clone()
            .unwrap_or_else(|| delivery.routing_key.to_string());
        let properties = delivery.properties.clone().with_headers(headers);
        let confirm = publisher
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await
            .map_err(|e| amqp(&format!("publish to {exchange}"), e))?
            .await
            .map_err(|e| amqp(&format!("publish to {exchange}"), e))?;
        if confirm.is_nack() {
            return Err(format!("the broker refused the publish to {exchange}"));
        }
        Ok(())
    }

    /// The queue's depth (ready messages) plus the batch in flight.
    async fn update_lag(&self, channel: &Channel, queue: &str) {
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::default().passive(),
                FieldTable::default(),
            )
            .await;
        if let Ok(q) = declared {
            self.status
                .lag
                .store(u64::from(q.message_count()), Ordering::Relaxed);
        }
    }
}

/// An AMQP header value as JSON: text, numbers and booleans as they are,
/// anything else as its debug form.
fn header_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::LongString(s) => Value::from(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Value::from(s.as_str()),
        AMQPValue::Boolean(b) => Value::from(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        other => Value::from(format!("{other:?}")),
    }
}

/// A record of the `RabbitMqEvent`, borrowed from its delivery.
#[derive(serde::Serialize)]
struct Record<'a> {
    messages: [&'a str; 1],
    topic_id: &'a str,
    id: &'a str,
    data_encoding: &'static str,
    exchange: &'a str,
    routing_key: &'a str,
    redelivered: bool,
    message_id: Option<&'a str>,
    headers: Map<String, Value>,
}

/// A delivery as a record of the event: its body as text, or base64 when
/// it is not UTF-8 (`data_encoding`), and its AMQP metadata.
fn record(delivery: &Delivery, queue: &str) -> Item {
    let id = delivery.delivery_tag.to_string();
    let (data, encoding) = super::text_or_base64(&delivery.data);
    let mut headers = Map::new();
    if let Some(table) = delivery.properties.headers() {
        for (name, value) in table.inner() {
            headers.insert(name.to_string(), header_value(value));
        }
    }
    let record = Record {
        messages: [&data],
        topic_id: queue,
        id: &id,
        data_encoding: encoding,
        exchange: delivery.exchange.as_str(),
        routing_key: delivery.routing_key.as_str(),
        redelivered: delivery.redelivered,
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        headers,
    };
    Item::new(id.clone(), &record)
}

/// The `RabbitMqEvent` of a batch.
fn event(items: &[Item]) -> Value {
    super::dms_event("RABBITMQ", items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dead_letters_to_the_consumed_queue_through_the_default_exchange_are_refused() {
        let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
        for (data, ok) in [
            (
                json!({"url": url, "queue": "q", "dead_letter_exchange": ""}),
                false,
            ),
            (
                json!({"url": url, "queue": "q", "dead_letter_exchange": "", "dead_letter_routing_key": "q"}),
                false,
            ),
            (
                json!({"url": url, "queue": "q", "dead_letter_exchange": "amq.default", "dead_letter_routing_key": "q"}),
                false,
            ),
            (
                json!({"url": url, "exchange": "e", "dead_letter_exchange": "", "dead_letter_routing_key": "fnhost.x"}),
                false,
            ),
            (
                json!({"url": url, "queue": "q", "dead_letter_exchange": "", "dead_letter_routing_key": "q-dlq"}),
                true,
            ),
            (
                json!({"url": url, "queue": "q", "dead_letter_exchange": "dlx"}),
                true,
            ),
        ] {
            assert_eq!(Settings::parse(&data).is_ok(), ok, "{data}");
        }
    }

    #[test]
    fn settings_are_checked_and_defaulted() {
        let s = Settings::parse(&json!({"url": "amqp://g:g@127.0.0.1:5672/%2f", "queue": "q"}))
            .unwrap();
        assert_eq!(
            (s.queue.as_deref(), s.batch_size, s.routing_key.as_str()),
            (Some("q"), 10, "#")
        );
        assert_eq!(s.queue_name("t1"), "q");
        // FunctionGraph's name for the exchange; the trigger's own queue.
        let s = Settings::parse(
            &json!({"url": "amqp://h", "exchange_name": "orders", "routing_key": "new"}),
        )
        .unwrap();
        assert_eq!(s.exchange.as_deref(), Some("orders"));
        assert_eq!(s.queue_name("t1"), "fnhost.t1");
        for (bad, why) in [
            (json!({"queue": "q"}), "needs `url`"),
            (json!({"url": "redis://x", "queue": "q"}), "amqp://"),
            (json!({"url": "amqp://h"}), "needs `queue`"),
            (json!({"url": "amqp://h", "queue": ""}), "needs `queue`"),
            (json!({"url": "amqp://h", "exchange": ""}), "must be named"),
            (
                json!({"url": "amqp://h", "queue": "q", "batch_size": 1001}),
                "batch_size",
            ),
            (
                json!({"url": "amqp://h", "queue": "q\n"}),
                "control characters",
            ),
            (
                json!({"url": "amqp://h", "queue": "x".repeat(256)}),
                "at most 255",
            ),
            (
                json!({"url": "amqp://h", "exchange": "e", "dead_letter_exchange": "e"}),
                "must not be the exchange",
            ),
            (json!({"url": "amqp://h", "queue": 7}), "must be a string"),
        ] {
            let e = Settings::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
