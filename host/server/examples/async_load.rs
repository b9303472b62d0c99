//! The load and the floors of `scripts/bench-async.sh`.
//!
//! ```text
//! async_load accept URL CONNECTIONS SECONDS IDS_FILE
//! async_load verify BASE_URL FUNCTION IDS_FILE
//! async_load floor-sqlite PATH SECONDS BATCH
//! async_load floor-postgres DATABASE_URL SECONDS BATCH
//! ```
//! - `accept`: `CONNECTIONS` keep-alive connections each POST a 1 KiB body
//!   to `URL` (an `invocations-async` path) back to back for `SECONDS`;
//!   prints one JSON line (accepted per second, accept latency p50/p99,
//!   refusals and errors) and writes the request id of every 202 to
//!   `IDS_FILE`. A connection that breaks (the server was killed) stops.
//! - `verify`: every id in `IDS_FILE` must be listed `SUCCESS` among
//!   `FUNCTION`'s asynchronous invocations (the kill -9 check): prints how
//!   many were acknowledged, ran, and are missing; exits 1 if any is.
//! - `floor-*`: the store's own floor: a loop of durable inserts of rows of
//!   the same shape and size as an accepted invocation, `BATCH` rows a
//!   transaction (1: one commit, one sync, per row), for `SECONDS`; prints
//!   rows per second and the p50/p99 of one transaction's time. SQLite with
//!   the server's settings (WAL, `synchronous=FULL`), in a fresh file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The payload: what a client sends, 1 KiB of JSON.
fn payload() -> Vec<u8> {
    let mut body = b"{\"k\":\"".to_vec();
    body.resize(1024 - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["accept", url, connections, seconds, ids] => {
            accept(url, connections.parse()?, seconds.parse()?, ids).await
        }
        ["verify", base, function, ids] => verify(base, function, ids).await,
        ["floor-sqlite", path, seconds, batch] => {
            let (path, seconds, batch) = (path.to_string(), seconds.parse()?, batch.parse()?);
            tokio::task::spawn_blocking(move || floor_sqlite(&path, seconds, batch)).await?
        }
        ["floor-postgres", url, seconds, batch] => {
            floor_postgres(url, seconds.parse()?, batch.parse()?).await
        }
        _ => {
            Err("async_load accept|verify|floor-sqlite|floor-postgres ... (see the source)".into())
        }
    }
}

/// `host:port` and path of an `http://` URL.
fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("http://").ok_or("an http:// URL")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Ok((
        host.to_owned(),
        if path.is_empty() { "/" } else { path }.to_owned(),
    ))
}

/// One HTTP/1.1 exchange on a keep-alive connection: status and body.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(u16, Vec<u8>)> {
    stream.write_all(request).await?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])?;
            let status: u16 = head.split(' ').nth(1).ok_or("no status")?.parse()?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err("connection closed".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, buf[end + 4..end + 4 + length].to_vec()));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The `p` quantile (0 to 1) of sorted microseconds, in milliseconds (0
/// when there are none).
fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    let i = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len().max(1));
    sorted_us.get(i - 1).copied().unwrap_or(0) as f64 / 1000.0
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    ids: Vec<String>,
    refused: u64,
    errors: u64,
}

async fn accept(url: &str, connections: usize, seconds: f64, ids_file: &str) -> Result<()> {
    let (host, path) = split_url(url)?;
    let body = payload();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let request = std::sync::Arc::new(request);
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (host, request) = (host.clone(), std::sync::Arc::clone(&request));
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let Ok(mut stream) = tokio::net::TcpStream::connect(&host).await else {
                    tally.errors += 1;
                    return tally;
                };
                let _ = stream.set_nodelay(true);
                let mut buf = Vec::with_capacity(16 * 1024);
                while Instant::now() < until {
                    let sent = Instant::now();
                    match exchange(&mut stream, &request, &mut buf).await {
                        Ok((202, body)) => {
                            tally.latencies_us.push(sent.elapsed().as_micros() as u64);
                            let v: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            if let Some(id) = v["request_id"].as_str() {
                                tally.ids.push(id.to_owned());
                            }
                        }
                        Ok(_) => tally.refused += 1,
                        Err(_) => {
                            tally.errors += 1;
                            break;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await?;
        all.latencies_us.extend(t.latencies_us);
        all.ids.extend(t.ids);
        all.refused += t.refused;
        all.errors += t.errors;
    }
    let elapsed = started
        .elapsed()
        .as_secs_f64()
        .min(seconds.max(0.001) + 1.0);
    all.latencies_us.sort_unstable();
    let pct = |p| percentile_ms(&all.latencies_us, p);
    std::fs::write(ids_file, all.ids.join("\n") + "\n")?;
    println!(
        "{}",
        serde_json::json!({
            "accepted": all.ids.len(),
            "per_second": all.ids.len() as f64 / elapsed,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "refused": all.refused,
            "errors": all.errors,
        })
    );
    Ok(())
}

async fn verify(base: &str, function: &str, ids_file: &str) -> Result<()> {
    let (host, prefix) = split_url(base)?;
    let wanted: Vec<String> = std::fs::read_to_string(ids_file)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut succeeded = std::collections::HashSet::new();
    let mut stream = tokio::net::TcpStream::connect(&host).await?;
    let mut buf = Vec::new();
    let mut marker = 0u64;
    loop {
        let request = format!(
            "GET {}/v2/bench/fgs/functions/{function}/async-invocations?status=SUCCESS&limit=500&marker={marker} HTTP/1.1\r\nHost: {host}\r\n\r\n",
            prefix.trim_end_matches('/')
        );
        let (status, body) = exchange(&mut stream, request.as_bytes(), &mut buf).await?;
        if status != 200 {
            return Err(format!(
                "listing answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let page = v["invocations"].as_array().cloned().unwrap_or_default();
        for i in &page {
            if let Some(id) = i["request_id"].as_str() {
                succeeded.insert(id.to_owned());
            }
        }
        let next = v["next_marker"].as_u64().unwrap_or(0);
        if page.is_empty() || next <= marker || next >= v["count"].as_u64().unwrap_or(0) {
            break;
        }
        marker = next;
    }
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|id| !succeeded.contains(*id))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "acknowledged": wanted.len(),
            "ran": wanted.len() - missing.len(),
            "missing": missing.len(),
            "first_missing": missing.first(),
        })
    );
    if missing.is_empty() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// Rows of an accepted invocation's shape (`async_invocations`' columns).
const FLOOR_TABLE: &str = "CREATE TABLE IF NOT EXISTS fnhost_bench_floor (
    request_id TEXT PRIMARY KEY, function TEXT NOT NULL, target TEXT NOT NULL,
    payload BYTEA NOT NULL, status TEXT NOT NULL, accepted_ms BIGINT NOT NULL,
    next_ms BIGINT NOT NULL, traceparent TEXT NOT NULL, tracestate TEXT NOT NULL,
    source TEXT NOT NULL, depth INTEGER NOT NULL)";
const FLOOR_INSERT_SQLITE: &str = "INSERT INTO fnhost_bench_floor VALUES
    (?1, 'echo', 'echo', ?2, 'WAIT', ?3, ?3, ?4, '', 'api', 0)";
const FLOOR_INSERT_POSTGRES: &str = "INSERT INTO fnhost_bench_floor VALUES
    ($1, 'echo', 'echo', $2, 'WAIT', $3, $3, $4, '', 'api', 0)";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn report(rows: usize, elapsed: f64, mut commits_us: Vec<u64>) {
    commits_us.sort_unstable();
    let pct = |p| percentile_ms(&commits_us, p);
    println!(
        "{}",
        serde_json::json!({
            "rows": rows,
            "per_second": rows as f64 / elapsed,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        })
    );
}

fn floor_sqlite(path: &str, seconds: f64, batch: usize) -> Result<()> {
    let db = rusqlite::Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.execute_batch(FLOOR_TABLE)?;
    let body = payload();
    let started = Instant::now();
    let mut rows = 0usize;
    let mut commits = Vec::new();
    while started.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        let tx = db.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(FLOOR_INSERT_SQLITE)?;
            for _ in 0..batch.max(1) {
                let id = uuid::Uuid::new_v4().to_string();
                stmt.execute(rusqlite::params![id, body, now_ms(), TRACEPARENT])?;
            }
        }
        tx.commit()?;
        commits.push(t.elapsed().as_micros() as u64);
        rows += batch.max(1);
    }
    report(rows, started.elapsed().as_secs_f64(), commits);
    Ok(())
}

async fn floor_postgres(url: &str, seconds: f64, batch: usize) -> Result<()> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(FLOOR_TABLE).await?;
    client.batch_execute("TRUNCATE fnhost_bench_floor").await?;
    let insert = client.prepare(FLOOR_INSERT_POSTGRES).await?;
    let body = payload();
    let started = Instant::now();
    let mut rows = 0usize;
    let mut commits = Vec::new();
    while started.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        let tx = client.transaction().await?;
        // The batch's inserts pipelined on the connection.
        let ids: Vec<String> = (0..batch.max(1))
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let at = now_ms();
        {
            let (tx, insert, body, at) = (&tx, &insert, &body, &at);
            futures_util::future::try_join_all(
                ids.iter().map(|id| async move {
                    tx.execute(insert, &[id, body, at, &TRACEPARENT]).await
                }),
            )
            .await?;
        }
        tx.commit().await?;
        commits.push(t.elapsed().as_micros() as u64);
        rows += batch.max(1);
    }
    report(rows, started.elapsed().as_secs_f64(), commits);
    client
        .batch_execute("DROP TABLE fnhost_bench_floor")
        .await?;
    Ok(())
}
