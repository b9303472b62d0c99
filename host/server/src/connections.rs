//! The accept loop and the life of each connection: a cap on connections
//! served at once, a few priority connections beyond it for health checks
//! and management calls, a quick 503 beyond those, header and idle
//! timeouts, and graceful shutdown.
//!
//! A flood of idle connections fills the cap, then the priority
//! connections; a new connection then takes the place of the oldest
//! priority connection that has sent nothing yet, so that a health check
//! still gets through. Only when every priority connection is sending a
//! request is a new one refused without being read.
//!
//! Each connection is served by hyper's HTTP/1 server on a [`LinkedStream`]
//! (see [`super::link`]). Its timeouts are kept by the connection's own task
//! from the phase its [`Link`] records ([`Link::expiry`]): hyper's header
//! timer would also end kept-alive connections as soon as the header
//! timeout passed, and its idle and header timeouts are different numbers.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt as _;

use super::connection_counts::Counts;
use super::front::Front;
use super::limits::Limits;
use super::link::{Expiry, Link, LinkedStream, Mode};

/// The longest a priority connection may take to send its request head.
const PRIORITY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest read or write buffer of a connection (bounds what a client
/// can make it hold for a request head; hyper's default is ≈400 KB).
const MAX_BUF_BYTES: usize = 64 * 1024;
/// Connections refused at once while their request is drained (so they
/// read the 503 instead of a reset); beyond these, refused ones are closed.
const REFUSING_AT_ONCE: usize = 64;

/// The priority connections, oldest first, each with the signal that ends
/// it early (only the accept loop uses this).
#[derive(Default)]
struct PriorityQueue(VecDeque<(Weak<Link>, Arc<Notify>)>);

impl PriorityQueue {
    /// Ends the oldest priority connection that has sent nothing yet;
    /// whether there was one.
    fn evict_one(&mut self) -> bool {
        self.0.retain(|(link, _)| link.strong_count() > 0);
        let fresh = self
            .0
            .iter()
            .position(|(link, _)| link.upgrade().is_some_and(|l| l.is_fresh()));
        match fresh.and_then(|i| self.0.remove(i)) {
            Some((_, evict)) => {
                evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One connection's place in [`Counts`], given back when it ends.
struct Counted {
    counts: Arc<Counts>,
    mode: Mode,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counts.of(self.mode).fetch_sub(1, Ordering::Relaxed);
        self.counts.ended.notify_waiters();
    }
}

/// Serves connections from `listener` until `shutdown` completes, then
/// stops accepting, lets every connection finish its request in flight,
/// and returns once all have closed.
pub(crate) async fn serve(
    listener: TcpListener,
    front: Front,
    limits: Arc<Limits>,
    cap: usize,
    counts: Arc<Counts>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut priority = PriorityQueue::default();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        // Only this loop adds connections: the counts cannot grow between
        // the check and the increment.
        let mode = if counts.normal.load(Ordering::Relaxed) < cap {
            Mode::Normal
        } else if counts.priority.load(Ordering::Relaxed) < limits.priority_connections
            || priority.evict_one()
        {
            Mode::Priority
        } else {
            refuse(stream, &counts);
            continue;
        };
        counts.of(mode).fetch_add(1, Ordering::Relaxed);
        let counted = Counted {
            counts: Arc::clone(&counts),
            mode,
        };
        let stream = LinkedStream::new(stream);
        let link = Arc::clone(stream.link());
        let evict = Arc::new(Notify::new());
        if mode == Mode::Priority {
            priority
                .0
                .push_back((Arc::downgrade(&link), Arc::clone(&evict)));
        }
        let front = front.for_connection(peer, Arc::clone(&link), mode);
        tokio::spawn(connection(
            stream,
            front,
            Arc::clone(&limits),
            mode,
            stopped.clone(),
            Ending { counted, evict },
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    loop {
        let ended = counts.ended.notified();
        if counts.open() == 0 {
            return;
        }
        ended.await;
    }
}

/// What ends a connection besides its client: its place in the counts is
/// given back, and (for a priority one) a newer connection may evict it.
struct Ending {
    counted: Counted,
    evict: Arc<Notify>,
}

async fn connection(
    stream: LinkedStream,
    front: Front,
    limits: Arc<Limits>,
    mode: Mode,
    mut stop: watch::Receiver<bool>,
    ending: Ending,
) {
    let Ending {
        counted: _counted,
        evict,
    } = ending;
    let link: Arc<Link> = Arc::clone(stream.link());
    let header_timeout = match mode {
        Mode::Normal => limits.header_timeout,
        Mode::Priority => limits.header_timeout.min(PRIORITY_HEADER_TIMEOUT),
    };
    let service = TowerToHyperService::new(
        front.map_request(|request: Request<Incoming>| request.map(Body::new)),
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .header_read_timeout(None)
        .keep_alive(mode == Mode::Normal)
        .max_buf_size(MAX_BUF_BYTES);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut watchdog = pin!(tokio::time::sleep(header_timeout));
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            // The connection first: the other branches are rare.
            biased;
            served = conn.as_mut() => {
                if let Err(e) = served {
                    log::debug!(target: "fnhost::http", "connection ended: {e}");
                }
                return;
            }
            () = &mut watchdog => match link.expiry(header_timeout, limits.idle_timeout, limits.body_timeout) {
                // Dropping the connection closes it.
                Expiry::Now => return,
                Expiry::At(at) => watchdog.as_mut().reset(tokio::time::Instant::from_std(at)),
            },
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            // Taken over by a newer priority connection (only while this
            // one has sent nothing).
            () = evict.notified(), if mode == Mode::Priority => {
                if link.is_fresh() {
                    return;
                }
            }
        }
    }
}

/// The answer to a connection beyond every cap.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 90\r\nconnection: close\r\nretry-after: 1\r\n\r\n{\"error_code\":\"FSS.0503\",\"error_msg\":\"the server is at its connection limit; retry later\"}";

/// Answers 503 without reading the request; a few refused connections are
/// drained for a moment first, so the client reads the answer rather than
/// a reset.
fn refuse(stream: TcpStream, counts: &Arc<Counts>) {
    log::debug!(target: "fnhost::http", "connection refused: at the connection limit");
    counts.refused.fetch_add(1, Ordering::Relaxed);
    let _ = stream.try_write(REFUSAL);
    if counts.refusing.fetch_add(1, Ordering::Relaxed) >= REFUSING_AT_ONCE {
        counts.refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let counts = Arc::clone(counts);
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            let mut sink = [0u8; 4096];
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        counts.refusing.fetch_sub(1, Ordering::Relaxed);
    });
}

/// An accept error: out of descriptors is waited out (retrying at once
/// would spin); others are transient (a connection reset before accept).
async fn accept_failed(e: &io::Error) {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            log::warn!(target: "fnhost::http", "cannot accept a connection: {e}; waiting 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        _ => log::debug!(target: "fnhost::http", "accept failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_http_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error_code"], "FSS.0503");
    }
}
