//! Request ids over real HTTP, and the log lines of the real binary: plain text without
//! ANSI codes when stderr is not a terminal, one JSON object per line with
//! `FIRSTCOME_LOG_FORMAT=json`, and the request id on the lines of its request.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr};

use crate::helpers::{ISSUER_KEY, TestServer, listening_address, serve_command};

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

async fn request_id(server: &TestServer, path: &str, sent: Option<HeaderValue>) -> String {
    let mut req = server.client.get(format!("{}{path}", server.base));
    if let Some(v) = sent {
        req = req.header("x-request-id", v);
    }
    let resp = req.send().await.unwrap();
    let id = resp
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{path}: no x-request-id in {:?}", resp.headers()));
    id.to_str().unwrap().to_string()
}

#[tokio::test]
async fn every_response_has_a_request_id_the_clients_when_valid() {
    let server = TestServer::start().await;
    // None sent: a fresh UUID each time, on answers of every kind (a 404 from the
    // fallback and a 401 included).
    let a = request_id(&server, "/healthz", None).await;
    let b = request_id(&server, "/healthz", None).await;
    assert!(is_uuid(&a) && is_uuid(&b), "{a} {b}");
    assert_ne!(a, b);
    assert!(is_uuid(&request_id(&server, "/no-such-route", None).await));
    assert!(is_uuid(&request_id(&server, "/v1/campaigns", None).await));

    // A valid one is kept.
    for kept in [
        "client-id-123",
        "0d9e4f3c-6a8b-4a52-9a3b-2f8e1c7d5b6a",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
    ] {
        let got = request_id(&server, "/healthz", Some(HeaderValue::from_static(kept))).await;
        assert_eq!(got, kept);
    }

    // An invalid one is replaced (not refused): too long, a space, a quote, not ASCII.
    let long = "x".repeat(129);
    for bad in [
        HeaderValue::from_str(&long).unwrap(),
        HeaderValue::from_static("a b"),
        HeaderValue::from_static("a\"b"),
        HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
    ] {
        let got = request_id(&server, "/healthz", Some(bad.clone())).await;
        assert!(is_uuid(&got), "{bad:?} gave {got}");
    }

    // Two ids: which one would the client expect back? Neither.
    let resp = server
        .client
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "one")
        .header("x-request-id", "two")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ids: Vec<_> = resp.headers().get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(is_uuid(ids[0].to_str().unwrap()), "{ids:?}");
}

/// `firstcome serve` with `env`, its stderr piped (so not a terminal), and its address.
async fn spawn_logging(
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Child, String, Lines<BufReader<ChildStderr>>) {
    let mut child = serve_command(data_dir)
        // tower_http at debug: the line each request ends with, in its span.
        .env("FIRSTCOME_LOG", "info,tower_http=debug")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = listening_address(&mut child).await;
    let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, base, stderr)
}

/// Sends a request with `id`, then reads log lines up to the first that mentions it.
async fn lines_up_to(
    base: &str,
    id: &str,
    stderr: &mut Lines<BufReader<ChildStderr>>,
) -> Vec<String> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/campaigns"))
        .bearer_auth(ISSUER_KEY)
        .header("x-request-id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], id);
    let mut lines = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = stderr.next_line().await.unwrap().expect("stderr closed");
            let done = line.contains(id);
            lines.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no log line with {id}; got {lines:#?}"));
    lines
}

#[tokio::test]
async fn text_logs_have_no_colours_off_a_terminal_and_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, mut stderr) = spawn_logging(dir.path(), &[]).await;
    let lines = lines_up_to(&base, "it-text-log-1", &mut stderr).await;
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "ANSI code in {l:?}");
    }
    let last = lines.last().unwrap();
    assert!(last.contains("request_id=it-text-log-1"), "{last}");
    assert!(last.contains("path=/v1/campaigns"), "{last}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_span() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, mut stderr) =
        spawn_logging(dir.path(), &[("FIRSTCOME_LOG_FORMAT", "json")]).await;
    let lines = lines_up_to(&base, "it-json-log-1", &mut stderr).await;
    // The start-up lines too: every line is an object.
    assert!(lines.len() > 1, "{lines:#?}");
    let objects: Vec<Value> = lines
        .iter()
        .map(|l| {
            assert!(!l.contains('\u{1b}'), "ANSI code in {l:?}");
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            assert!(v.is_object() && v["level"].is_string(), "{l}");
            v
        })
        .collect();
    let last = objects.last().unwrap();
    assert_eq!(last["span"]["name"], "request", "{last}");
    assert_eq!(last["span"]["request_id"], "it-json-log-1", "{last}");
    assert_eq!(last["span"]["method"], "GET", "{last}");
}
