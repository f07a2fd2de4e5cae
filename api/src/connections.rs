//! The HTTP server's accept loop: what a connection may hold and for how long.
//!
//! `axum::serve` accepts every connection and sets no timer, so idle sockets pile up to
//! the descriptor limit (and then no client gets in), and a client that sends its
//! headers a byte a second keeps its connection forever. This loop is the same hyper
//! HTTP/1 connection axum uses, with:
//! - a cap on open connections ([`ConnectionLimits::max_connections`]), kept below the
//!   descriptor limit (raised to the hard limit at start, [`raise_open_files_limit`]): a
//!   connection over it waits for a place for [`ConnectionLimits::over_cap_wait`], and
//!   the connections behind it in the listen queue; without one they are answered
//!   `503 overloaded` and closed, so there are always descriptors left for the store
//!   and for accepting;
//! - a header-read timeout, which hyper also applies while a kept-alive connection waits
//!   for its next request: the idle timeout;
//! - accept errors logged at most once a second.
//!
//! The body and the handler are bounded by the router's request timeout (`lib.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::error::ApiError;
use crate::log_limit::OncePerSecond;

/// Descriptors kept for everything but client connections: the store's files, the
/// SMTP pool, the accept itself.
pub const RESERVED_DESCRIPTORS: u64 = 256;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open client connections at most; one more waits for a place (`over_cap_wait`).
    pub max_connections: usize,
    /// How long connections over the cap wait in the listen queue for a place before
    /// they are accepted, answered `503 overloaded` and closed (by default a second,
    /// the answer's `Retry-After`).
    pub over_cap_wait: Duration,
    /// A request's headers must arrive within this, and a kept-alive connection is
    /// closed after this long without a new request.
    pub header_read_timeout: Duration,
}

/// Raises the soft limit on open files to the hard limit, and returns the limit now in
/// effect (`None` if it cannot be read).
pub fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the limit on open files");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// `wanted`, lowered so that the connections and [`RESERVED_DESCRIPTORS`] fit in
/// `open_files` (logged when lowered).
pub fn fit_connections(wanted: usize, open_files: Option<u64>) -> usize {
    let Some(limit) = open_files else {
        return wanted;
    };
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if wanted as u64 > room {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = limit,
            using = room,
            "max_connections lowered to fit the limit on open files"
        );
        return room as usize;
    }
    wanted
}

/// Serves `app` until `stop` completes; then accepts no more, lets each connection
/// finish the request it is on, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let refused = metrics::counter!("firstcome_http_connections_refused_total");
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Over the cap, the connection waits for a place, and accepting waits with it:
        // the connections behind it wait in the kernel's listen queue, which costs
        // nothing here. Refusing each at once instead had every client over the cap
        // reconnect at once, and that churn cost a tenth of the throughput under
        // overload (docs/performance.md, Overload). It holds one descriptor, of the
        // reserved ones.
        let place = match permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => tokio::select! {
                p = tokio::time::timeout(limits.over_cap_wait, permits.clone().acquire_owned()) => {
                    p.ok().and_then(Result::ok)
                }
                () = &mut stop => break,
            },
        };
        if let Some(permit) = place {
            serve_one(&http, &graceful, &app, stream, permit);
            continue;
        }
        // No place came: this one and those queued behind it, which have waited as
        // long or less, are answered 503 (as many as Tokio's accept gives at once
        // before it yields; the rest wait their turn).
        let refuse_one = |stream| {
            refused.increment(1);
            tokio::spawn(refuse(stream));
        };
        refuse_one(stream);
        while let Some(accepted) = listener.accept().now_or_never() {
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    break;
                }
            };
            match permits.clone().try_acquire_owned() {
                Ok(permit) => serve_one(&http, &graceful, &app, stream, permit),
                Err(_) => refuse_one(stream),
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves one accepted connection in a task of its own, holding its place under the cap
/// until it closes.
fn serve_one(
    http: &hyper::server::conn::http1::Builder,
    graceful: &GracefulShutdown,
    app: &Router,
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
) {
    // Replies are written whole; waiting to fill a segment only delays them.
    let _ = stream.set_nodelay(true);
    let service = app
        .clone()
        .map_request(|req: hyper::Request<Incoming>| req.map(Body::new));
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        // A client's broken connection or timeout: nothing to report.
        let _ = conn.await;
        drop(permit);
    });
}

/// The answer to a connection over the cap: `503 overloaded` as every other refusal,
/// then closed, with a deadline, so a client that reads nothing holds the descriptor for
/// a second at most. The request is not parsed (that is what is refused), but what the
/// client sent is read and dropped until it closes: a connection closed with unread data
/// is reset, and a reset can reach the client before the 503 does. Refused connections
/// have waited for a place, so they have usually sent their request by now.
async fn refuse(mut stream: TcpStream) {
    let answer = async {
        // One write: with TCP_NODELAY two would be two segments, thousands of times a
        // second under a flood.
        stream.write_all(refusal()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = REFUSED_READ_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// The most of a refused connection's bytes read before it is closed anyway.
const REFUSED_READ_BYTES: usize = 64 * 1024;

/// The whole response `refuse` writes, rendered once.
fn refusal() -> &'static [u8] {
    static RESPONSE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    RESPONSE.get_or_init(|| {
        let body = ApiError::Overloaded.problem();
        let mut response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            crate::error::PROBLEM_JSON,
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(&body);
        response
    })
}

/// An accept that failed: logged at most once a second. Out of descriptors (which the
/// cap should prevent), wait a little for some to free rather than spin.
async fn accept_failed(e: &std::io::Error) {
    static LIMIT: OncePerSecond = OncePerSecond::new();
    if let Some(skipped) = LIMIT.allow() {
        tracing::warn!(error = %e, skipped, "accepting a connection failed");
    }
    let out_of_descriptors = matches!(e.raw_os_error(), Some(23 | 24)); // ENFILE, EMFILE
    if out_of_descriptors {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_reserved_descriptors() {
        assert_eq!(fit_connections(4096, Some(100_000)), 4096);
        assert_eq!(fit_connections(4096, Some(1024)), 1024 - 256);
        assert_eq!(fit_connections(4096, Some(100)), 1);
        assert_eq!(fit_connections(10, None), 10);
    }
}
