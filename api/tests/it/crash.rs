//! The real `firstcome` binary, killed with SIGKILL under load, then restarted.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::process::Child;

use crate::helpers::{
    ADMIN_KEY, ISSUER_KEY, client, listening_address, send, serve_command, user_coupons,
};

/// A running `firstcome serve`. `kill_on_drop`: a failing test leaves no process behind.
pub struct Process {
    pub child: Child,
    pub base: String,
}

/// Starts `firstcome serve` on port 0 and waits for the line that names its address.
async fn spawn_server(data_dir: &Path) -> Process {
    spawn_configured(data_dir, None).await
}

/// [`spawn_server`] with a configuration file (settings the environment does not set).
pub async fn spawn_configured(data_dir: &Path, config: Option<&Path>) -> Process {
    let mut cmd = serve_command(data_dir);
    if let Some(c) = config {
        cmd.env("FIRSTCOME_CONFIG", c);
    }
    let mut child = cmd
        .env("FIRSTCOME_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the firstcome binary starts");
    let base = listening_address(&mut child).await;
    Process { child, base }
}

async fn campaign(c: &Client, base: &str, id: &str) -> Value {
    let (status, v) = send(
        c.get(format!("{base}/v1/campaigns/{id}"))
            .bearer_auth(ISSUER_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_coupon_and_oversells_nothing() {
    const STOCK: u64 = 3000;
    const WORKERS: usize = 32;
    const KILL_AFTER_ACKS: usize = 400;

    let dir = tempfile::tempdir().unwrap();
    let mut p1 = spawn_server(dir.path()).await;
    let http = client();
    let (status, c) = send(
        http.post(format!("{}/v1/campaigns", p1.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "crash", "total_stock": STOCK})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();

    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let refused_dup: Arc<Mutex<Vec<String>>> = Arc::default();
    let attempted: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Requests whose answer the kill took: (Idempotency-Key, user).
    let lost: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let ack_count = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (http, base, cid) = (http.clone(), p1.base.clone(), cid.clone());
        let (acked, attempted, ack_count, enough, stop) = (
            acked.clone(),
            attempted.clone(),
            ack_count.clone(),
            enough.clone(),
            stop.clone(),
        );
        let (refused_dup, lost) = (refused_dup.clone(), lost.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Every fourth request repeats the worker's previous user: duplicates
                // race with the kill too.
                let user = if i % 4 == 3 {
                    format!("w{w}-{}", i - 1)
                } else {
                    format!("w{w}-{i}")
                };
                // One key per request: a repeated user is another request, so it has
                // its own key ("w{w}-{user's i}-{i}").
                let key = format!("{user}-{i}");
                i += 1;
                attempted.lock().unwrap().insert(user.clone());
                let resp = http
                    .post(format!("{base}/v1/campaigns/{cid}/issue"))
                    .bearer_auth(ISSUER_KEY)
                    .header("Idempotency-Key", &key)
                    .json(&json!({ "user_id": user }))
                    .send()
                    .await;
                let Ok(resp) = resp else {
                    // The server is gone: the request may or may not have been decided.
                    lost.lock().unwrap().push((key, user));
                    break;
                };
                if resp.status() == StatusCode::CONFLICT {
                    // Only already_issued can happen here (stock is not reached).
                    refused_dup.lock().unwrap().push(user);
                } else if resp.status() == StatusCode::CREATED {
                    let Ok(body) = resp.json::<Value>().await else {
                        // A 201 whose coupon never arrived.
                        lost.lock().unwrap().push((key, user));
                        break;
                    };
                    acked.lock().unwrap().push(body["coupon"].clone());
                    if ack_count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER_ACKS {
                        enough.notify_one();
                    }
                }
            }
        }));
    }
    enough.notified().await;
    p1.child.kill().await.unwrap(); // SIGKILL, mid-run: workers still have requests in flight
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    assert!(acked.len() >= KILL_AFTER_ACKS);

    let p2 = spawn_server(dir.path()).await;
    let view = campaign(&http, &p2.base, &cid).await;
    let issued = view["issued"].as_u64().unwrap();
    assert!(
        issued >= acked.len() as u64,
        "issued {issued} < acknowledged {}",
        acked.len()
    );
    assert!(issued <= STOCK);

    // Every acknowledged coupon is there, exactly as acknowledged.
    for coupon in &acked {
        let (status, stored) = send(
            http.get(format!(
                "{}/v1/coupons/{}",
                p2.base,
                coupon["id"].as_str().unwrap()
            ))
            .bearer_auth(ISSUER_KEY),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&stored, coupon);
    }
    // Nobody holds two, and every stored coupon belongs to someone who asked.
    let mut held = 0u64;
    for user in &attempted {
        let coupons = user_coupons(&http, &p2.base, ISSUER_KEY, user).await;
        assert!(coupons.len() <= 1, "{user} holds {coupons:?}");
        held += coupons.len() as u64;
    }
    assert_eq!(held, issued, "the counter matches the stored coupons");
    // No refusal contradicts what is durable: everyone told already_issued holds one.
    let refused_dup = refused_dup.lock().unwrap().clone();
    assert!(!refused_dup.is_empty());
    for user in &refused_dup {
        let coupons = user_coupons(&http, &p2.base, ISSUER_KEY, user).await;
        assert_eq!(
            coupons.len(),
            1,
            "{user} was told already_issued but holds {coupons:?}"
        );
    }

    // A lost answer is recovered by retrying with its key: either the coupon the user
    // now holds (replayed if the first attempt was durable, else issued now), or a
    // definite refusal that names what the user holds. Never a second coupon.
    let lost = lost.lock().unwrap().clone();
    assert!(!lost.is_empty(), "the kill took no answer");
    let mut issued_by_retries = 0u64;
    for (key, user) in &lost {
        let retry = || {
            http.post(format!("{}/v1/campaigns/{cid}/issue", p2.base))
                .bearer_auth(ISSUER_KEY)
                .header("Idempotency-Key", key)
                .json(&json!({ "user_id": user }))
                .send()
        };
        let resp = retry().await.expect("the restarted server answers");
        let (status, replayed) = (
            resp.status(),
            resp.headers().contains_key("idempotent-replayed"),
        );
        let first = resp.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&first).unwrap();
        let held = user_coupons(&http, &p2.base, ISSUER_KEY, user).await;
        assert!(
            held.len() <= 1,
            "{user} holds {held:?} after retrying {key}"
        );
        match status {
            StatusCode::CREATED => {
                assert_eq!(
                    held,
                    vec![body["coupon"].clone()],
                    "{key}: the retry's coupon is not the one {user} holds"
                );
                if !replayed {
                    issued_by_retries += 1;
                }
            }
            StatusCode::CONFLICT => {
                assert_eq!(body["code"], "already_issued", "{key}: {body}");
                let ids: Vec<Value> = held.iter().map(|c| c["id"].clone()).collect();
                assert_eq!(
                    body["coupon_ids"],
                    json!(ids),
                    "{key}: {user} holds {held:?}"
                );
            }
            other => panic!("{key}: retry answered {other}: {body}"),
        }
        // The retry's answer is now the key's answer, byte for byte.
        let again = retry().await.unwrap();
        assert_eq!(again.status(), status, "{key}");
        assert_eq!(again.headers()["idempotent-replayed"], "true", "{key}");
        assert_eq!(again.bytes().await.unwrap(), first, "{key}");
    }
    let view = campaign(&http, &p2.base, &cid).await;
    let issued = view["issued"].as_u64().unwrap();
    assert_eq!(issued, held + issued_by_retries);
    for (_, user) in &lost {
        let coupons = user_coupons(&http, &p2.base, ISSUER_KEY, user).await;
        assert!(coupons.len() <= 1, "{user} holds {coupons:?}");
    }

    // Issuing continues from the right stock: exactly STOCK in the end, never more.
    let mut more = 0u64;
    for i in 0.. {
        let (status, body) = send(
            http.post(format!("{}/v1/campaigns/{cid}/issue", p2.base))
                .bearer_auth(ISSUER_KEY)
                .json(&json!({ "user_id": format!("after-{i}") })),
        )
        .await;
        if status == StatusCode::CREATED {
            more += 1;
        } else {
            assert_eq!(body["code"], "sold_out", "{body}");
            break;
        }
    }
    assert_eq!(issued + more, STOCK);

    // SIGTERM is a clean stop (exit 0) that keeps everything.
    terminate(p2).await;
    let p3 = spawn_server(dir.path()).await;
    let view = campaign(&http, &p3.base, &cid).await;
    assert_eq!(view["issued"], STOCK);
    assert_eq!(view["status"], "sold_out");
}

/// SIGTERM is a clean stop: exit 0, within 60 s.
pub async fn terminate(mut p: Process) {
    let pid = p.child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(60), p.child.wait())
        .await
        .expect("firstcome stops in time after SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}
