//! The floor of `scripts/bench-triggers.sh`: a broker's own
//! consume-and-acknowledge loop, in the same client library fnhost's
//! trigger uses (lapin, async-nats, redis), with the same batch size and
//! acknowledgement (after the batch), and no function. Also publishes the
//! messages the benchmark consumes, through the same library.
//!
//! ```text
//! broker_floor publish rabbitmq|nats|redis URL NAME COUNT
//! broker_floor consume rabbitmq|nats|redis URL NAME COUNT BATCH
//! ```
//! `NAME` is a queue (RabbitMQ), a stream whose subject is `NAME.in`
//! (NATS), or a stream key (Redis). `consume` prints the seconds from
//! connecting to the last acknowledgement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use futures_util::StreamExt as _;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, kind, url, name, count, rest @ ..] = args.as_slice() else {
        return Err(
            "broker_floor publish|consume rabbitmq|nats|redis URL NAME COUNT [BATCH]".into(),
        );
    };
    let count: usize = count.parse()?;
    let batch: usize = rest.first().map_or(Ok(1), |b| b.parse())?;
    match (mode.as_str(), kind.as_str()) {
        ("publish", "rabbitmq") => rabbitmq_publish(url, name, count).await,
        ("publish", "nats") => nats_publish(url, name, count).await,
        ("publish", "redis") => redis_publish(url, name, count).await,
        ("consume", kind) => {
            let started = Instant::now();
            match kind {
                "rabbitmq" => rabbitmq_consume(url, name, count, batch).await?,
                "nats" => nats_consume(url, name, count, batch).await?,
                "redis" => redis_consume(url, name, count, batch).await?,
                other => return Err(format!("unknown broker {other}").into()),
            }
            println!("{:.6}", started.elapsed().as_secs_f64());
            Ok(())
        }
        _ => Err("broker_floor publish|consume rabbitmq|nats|redis ...".into()),
    }
}

fn body(i: usize) -> Vec<u8> {
    format!("{{\"n\": {i}}}").into_bytes()
}

async fn rabbitmq_publish(url: &str, queue: &str, count: usize) -> Result<()> {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
    let connection =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    for i in 0..count {
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &body(i),
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
    }
    channel.wait_for_confirms().await?;
    connection.close(200, "done".into()).await?;
    Ok(())
}

async fn rabbitmq_consume(url: &str, queue: &str, count: usize, batch: usize) -> Result<()> {
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    let connection =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    // The prefetch fnhost's trigger uses: two batches.
    channel
        .basic_qos(u16::try_from(batch * 2)?, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "floor".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    let mut seen = 0;
    let mut pending = 0;
    while seen < count {
        let delivery = deliveries.next().await.ok_or("consumer ended")??;
        seen += 1;
        pending += 1;
        if pending == batch || seen == count {
            channel
                .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true })
                .await?;
            pending = 0;
        }
    }
    connection.close(200, "done".into()).await?;
    Ok(())
}

async fn nats_publish(url: &str, stream: &str, count: usize) -> Result<()> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: stream.to_owned(),
        subjects: vec![format!("{stream}.in")],
        ..Default::default()
    })
    .await?;
    // Acknowledgements are awaited 200 at a time: the client bounds the
    // publishes it has in flight.
    let mut acks = Vec::with_capacity(200);
    for i in 0..count {
        acks.push(js.publish(format!("{stream}.in"), body(i).into()).await?);
        if acks.len() == 200 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

async fn nats_consume(url: &str, stream: &str, count: usize, batch: usize) -> Result<()> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(stream).await?;
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            "floor",
            pull::Config {
                durable_name: Some("floor".to_owned()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                max_ack_pending: i64::try_from(batch)?,
                ..Default::default()
            },
        )
        .await?;
    let mut seen = 0;
    while seen < count {
        let mut messages = consumer
            .fetch()
            .max_messages(batch)
            .expires(std::time::Duration::from_secs(1))
            .messages()
            .await?;
        let mut got = Vec::new();
        while let Some(m) = messages.next().await {
            got.push(m?);
        }
        for m in &got {
            m.ack().await?;
        }
        seen += got.len();
    }
    Ok(())
}

async fn redis_publish(url: &str, key: &str, count: usize) -> Result<()> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let mut pipe = redis::pipe();
    for i in 0..count {
        pipe.cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("body")
            .arg(body(i))
            .ignore();
    }
    if count > 0 {
        pipe.query_async::<()>(&mut con).await?;
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("floor")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut con)
        .await?;
    Ok(())
}

async fn redis_consume(url: &str, key: &str, count: usize, batch: usize) -> Result<()> {
    use redis::streams::StreamReadReply;
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let mut seen = 0;
    while seen < count {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("floor")
            .arg("floor")
            .arg("COUNT")
            .arg(batch)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(&mut con)
            .await?;
        let ids: Vec<String> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| e.id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let _: u64 = redis::cmd("XACK")
            .arg(key)
            .arg("floor")
            .arg(&ids)
            .query_async(&mut con)
            .await?;
        seen += ids.len();
    }
    Ok(())
}
