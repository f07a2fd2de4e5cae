//! What a connection may hold: the connection cap, the header, idle and request
//! timeouts, an oversized body refused from its headers, and the open-files limit. Raw
//! TCP on loopback, as a misbehaving client sends it.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestServer, listening_address, serve_command_under};

async fn connect(t: &TestServer) -> TcpStream {
    TcpStream::connect(t.server.addr).await.unwrap()
}

/// A health check on a kept-alive connection, and one that asks the server to close.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
const HEALTHZ_CLOSE: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

/// A server with `max_connections` open at most, where one over it waits
/// `over_cap_wait_ms` for a place.
async fn capped(max_connections: usize, over_cap_wait_ms: u64) -> TestServer {
    TestServer::start_configured(|c| firstcome_api::Config {
        max_connections,
        over_cap_wait_ms,
        ..c
    })
    .await
}

/// Reads until the server closes the connection (bounded: 20 s), and returns it all.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code and the problem body of a raw response.
fn status_and_problem(response: &str) -> (u16, Value) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {response:?}"));
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{response}"
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_answered_503_and_the_cap_frees_as_they_close() {
    let t = capped(4, 100).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&t).await);
    }
    // Two over the cap, both with their request sent (as a client that waited has): the
    // first waits for a place, the second behind it in the listen queue; no place
    // comes, and both hear 503, whole (the unread request does not reset it).
    let mut over = Vec::new();
    for _ in 0..2 {
        let mut s = connect(&t).await;
        s.write_all(HEALTHZ).await.unwrap();
        over.push(s);
    }
    for s in &mut over {
        let (status, problem) = status_and_problem(&read_to_close(s).await);
        assert_eq!(
            (status, problem["code"].as_str()),
            (503, Some("overloaded"))
        );
    }
    // One idle connection goes: a new one is served.
    drop(idle.pop());
    let healthy = crate::helpers::eventually("a connection slot to free", || async {
        let mut s = connect(&t).await;
        s.write_all(HEALTHZ_CLOSE).await.ok()?;
        let r = read_to_close(&mut s).await;
        r.starts_with("HTTP/1.1 200").then_some(r)
    })
    .await;
    assert!(healthy.ends_with("ok"), "{healthy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_waits_for_a_place_and_is_served_when_one_frees() {
    // A wait far longer than the test: the connection is served by the place that
    // frees, not by chance of timing.
    let t = capped(2, 60_000).await;
    let mut idle = vec![connect(&t).await, connect(&t).await];
    let mut waiting = connect(&t).await;
    waiting.write_all(HEALTHZ_CLOSE).await.unwrap();
    // Both places are held: nothing is read from it yet. One goes: it is served.
    let held = tokio::time::timeout(Duration::from_millis(200), waiting.read_u8()).await;
    assert!(
        held.is_err(),
        "a connection over the cap was answered at once"
    );
    // Paired with the accept: the two held connections are both served (a request on
    // each), so the waiting one is the third, over the cap.
    for s in &mut idle {
        s.write_all(HEALTHZ).await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    drop(idle.pop());
    let r = read_to_close(&mut waiting).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("ok"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let t = TestServer::start_configured(|c| firstcome_api::Config {
        header_timeout_secs: 1,
        ..c
    })
    .await;
    // Headers a byte at a time, 200 ms apart: closed after about a second, long before
    // the 40 bytes are out.
    let mut slow = connect(&t).await;
    let started = std::time::Instant::now();
    let sender = async {
        for b in b"GET /healthz HTTP/1.1\r\nhost: example\r\n\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), sender).await;
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "the slow client was served for {:?}",
        started.elapsed()
    );
    // A kept-alive connection that sends nothing more is closed too.
    let mut kept = connect(&t).await;
    kept.write_all(HEALTHZ).await.unwrap();
    let all = read_to_close(&mut kept).await;
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_408_and_an_oversized_one_413_before_it_is_sent() {
    let t = TestServer::start_configured(|c| firstcome_api::Config {
        request_timeout_secs: 1,
        ..c
    })
    .await;
    let head = |len: usize| {
        format!(
            "POST /v1/campaigns HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: {len}\r\n\r\n",
            crate::helpers::ADMIN_KEY
        )
    };
    // A body that never comes: 408.
    let mut slow = connect(&t).await;
    slow.write_all(head(40).as_bytes()).await.unwrap();
    slow.write_all(b"{\"na").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buf))
        .await
        .expect("answered before the body is complete")
        .unwrap();
    let (status, problem) = status_and_problem(&String::from_utf8_lossy(&buf[..n]));
    assert_eq!(
        (status, problem["code"].as_str()),
        (408, Some("request_timeout"))
    );

    // Ten megabytes announced, none sent: 413 at once.
    let mut big = connect(&t).await;
    big.write_all(head(10_000_000).as_bytes()).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(20), big.read(&mut buf))
        .await
        .expect("answered from the headers")
        .unwrap();
    let (status, problem) = status_and_problem(&String::from_utf8_lossy(&buf[..n]));
    assert_eq!(
        (status, problem["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_files_limit_is_raised_and_the_cap_fits_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_command_under(&["prlimit", "--nofile=300:700", "--"], dir.path())
        .env("FIRSTCOME_LOG", "warn")
        .env("FIRSTCOME_MAX_CONNECTIONS", "100000")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the binary");
    let _base = listening_address(&mut child).await;
    let pid = child.id().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(open_files[3..5], ["700", "700"], "{limits}");
    child.kill().await.unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(err.contains("max_connections lowered"), "{err}");
    assert!(err.contains("using=444"), "{err}");
}
