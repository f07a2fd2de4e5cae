//! `POST /v1/campaigns/{id}/issue-batch`: many users' decisions in one atomic group.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::crash::{spawn_configured, terminate};
use crate::helpers::{
    ADMIN_KEY, ISSUER_KEY, TestServer, all_coupons, assert_problem, client, send,
};

async fn batch(t: &TestServer, cid: &str, users: &[&str]) -> (StatusCode, Value) {
    send(
        t.admin(Method::POST, &format!("/v1/campaigns/{cid}/issue-batch"))
            .json(&json!({ "user_ids": users })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_of_a_batch_gets_the_decision_a_single_issue_would_give() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "vip", "total_stock": 3}))
        .await;
    let cid = c["id"].as_str().unwrap();
    let (_, bob) = t.issue(cid, "bob").await;
    let bobs = bob["coupon"]["id"].clone();

    let (status, body) = batch(&t, cid, &["alice", "bob", "carol", "alice", "dave"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued"], 2);
    let results = body["results"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("alice", "issued"),
            ("bob", "already_issued"),
            ("carol", "issued"),
            ("alice", "already_issued"),
            ("dave", "sold_out"),
        ]
    );
    assert_eq!(results[1]["coupon_ids"], json!([bobs]));
    assert_eq!(
        results[3]["coupon_ids"],
        json!([results[0]["coupon"]["id"]])
    );
    // The coupons are the ones the users now hold, and the stock is spent exactly.
    assert_eq!(
        t.user_coupons("alice").await,
        vec![results[0]["coupon"].clone()]
    );
    assert_eq!(
        t.user_coupons("carol").await,
        vec![results[2]["coupon"].clone()]
    );
    assert!(t.user_coupons("dave").await.is_empty());
    let view = t.campaign(cid).await;
    assert_eq!(view["issued"], 3);
    assert_eq!(view["status"], "sold_out");

    // Outside the window every user hears why.
    let later = t
        .create_campaign(json!({
            "name": "later", "total_stock": 10, "starts_at": "2999-01-01T00:00:00Z"
        }))
        .await;
    let (status, body) = batch(&t, later["id"].as_str().unwrap(), &["erin", "frank"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued"], 0);
    for r in body["results"].as_array().unwrap() {
        assert_eq!(r["outcome"], "not_active", "{r}");
        assert_eq!(r["reason"], "not_started", "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_retried_with_its_key_is_answered_the_same_bytes() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "retry", "total_stock": 100}))
        .await;
    let cid = c["id"].as_str().unwrap();
    let post = |users: Value| {
        t.admin(Method::POST, &format!("/v1/campaigns/{cid}/issue-batch"))
            .header("Idempotency-Key", "vip-list-1")
            .json(&json!({ "user_ids": users }))
            .send()
    };
    let first = post(json!(["a", "b", "c"])).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let first = first.bytes().await.unwrap();
    let t = t.restart().await;
    let retry = t
        .admin(Method::POST, &format!("/v1/campaigns/{cid}/issue-batch"))
        .header("Idempotency-Key", "vip-list-1")
        .json(&json!({ "user_ids": ["a", "b", "c"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.bytes().await.unwrap(), first);
    assert_eq!(t.campaign(cid).await["issued"], 3);
    // The key with other users: refused, nothing issued.
    let (status, body) = send(
        t.admin(Method::POST, &format!("/v1/campaigns/{cid}/issue-batch"))
            .header("Idempotency-Key", "vip-list-1")
            .json(&json!({ "user_ids": ["a", "b", "d"] })),
    )
    .await;
    assert_problem(status, &body, 422, "idempotency_key_reused");
    assert_eq!(t.campaign(cid).await["issued"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_is_refused_whole_and_issues_nothing() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "bad", "total_stock": 5000}))
        .await;
    let cid = c["id"].as_str().unwrap();
    let path = format!("/v1/campaigns/{cid}/issue-batch");
    let too_many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    for body in [
        json!({"user_ids": []}),
        json!({"user_ids": too_many}),
        json!({"user_ids": ["ok", ""]}),
        json!({"user_ids": ["ok", "x".repeat(129)]}),
        json!({"user_ids": ["ok", "tab\there"]}),
        json!({"user_ids": "alice"}),
        json!({"user_ids": ["ok"], "extra": 1}),
    ] {
        let (status, problem) = send(t.admin(Method::POST, &path).json(&body)).await;
        assert_problem(status, &problem, 400, "invalid_request");
    }
    assert_eq!(t.campaign(cid).await["issued"], 0);
    // Admin only; an unknown campaign.
    let (status, body) = send(
        t.issuer(Method::POST, &path)
            .json(&json!({"user_ids": ["a"]})),
    )
    .await;
    assert_problem(status, &body, 403, "forbidden");
    let (status, body) = batch(&t, "0000000000000000", &["a"]).await;
    assert_problem(status, &body, 404, "campaign_not_found");

    // 1,000 long user ids are far above the server-wide body limit (16 KiB), and within
    // this route's; a body over 1 MiB is 413.
    let users: Vec<String> = (0..1000).map(|i| format!("{i:0>120}")).collect();
    let (status, body) = send(
        t.admin(Method::POST, &path)
            .json(&json!({"user_ids": users})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued"], 1000);
    let huge = json!({"user_ids": ["a"], "pad": "x".repeat(1 << 20)});
    let (status, body) = send(t.admin(Method::POST, &path).json(&huge)).await;
    assert_problem(status, &body, 413, "payload_too_large");
    assert_eq!(t.campaign(cid).await["issued"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_leaves_each_batch_wholly_durable_or_not_at_all() {
    const BATCH: usize = 100;
    const WORKERS: usize = 8;
    const KILL_AFTER_BATCHES: usize = 20;

    let dir = tempfile::tempdir().unwrap();
    let p1 = spawn_configured(dir.path(), None).await;
    let http = client();
    let (status, c) = send(
        http.post(format!("{}/v1/campaigns", p1.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "batches", "total_stock": 1_000_000})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();

    // Batch "w{w}-{i}" gives users "w{w}-{i}-{0..BATCH}" one coupon each.
    let acked: Arc<Mutex<HashMap<String, Vec<Value>>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    let unanswered: Arc<Mutex<Vec<String>>> = Arc::default();
    let acks = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (http, base, cid) = (http.clone(), p1.base.clone(), cid.clone());
        let (acked, sent, unanswered) = (acked.clone(), sent.clone(), unanswered.clone());
        let (acks, enough, stop) = (acks.clone(), enough.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let name = format!("w{w}-{i}");
                let users: Vec<String> = (0..BATCH).map(|u| format!("{name}-{u}")).collect();
                sent.lock().unwrap().insert(name.clone());
                let resp = http
                    .post(format!("{base}/v1/campaigns/{cid}/issue-batch"))
                    .bearer_auth(ADMIN_KEY)
                    .header("Idempotency-Key", &name)
                    .json(&json!({ "user_ids": users }))
                    .send()
                    .await;
                let body = match resp {
                    Ok(r) if r.status() == StatusCode::OK => r.json::<Value>().await.ok(),
                    _ => None,
                };
                let Some(body) = body else {
                    unanswered.lock().unwrap().push(name);
                    return;
                };
                assert_eq!(body["issued"], BATCH, "{name}");
                let coupons = body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["coupon"].clone())
                    .collect();
                acked.lock().unwrap().insert(name, coupons);
                if acks.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER_BATCHES {
                    enough.notify_one();
                }
            }
        }));
    }
    enough.notified().await;
    let mut p1 = p1;
    p1.child.kill().await.unwrap(); // SIGKILL with batches in flight
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let p2 = spawn_configured(dir.path(), None).await;
    let coupons = all_coupons(&http, &p2.base, &cid).await;
    let mut by_batch: HashMap<String, Vec<Value>> = HashMap::new();
    for c in coupons {
        let user = c["user_id"].as_str().unwrap();
        let name = user.rsplit_once('-').unwrap().0.to_string();
        by_batch.entry(name).or_default().push(c);
    }
    let sent = sent.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    for (name, held) in &by_batch {
        assert!(sent.contains(name), "{name} was never sent");
        assert_eq!(held.len(), BATCH, "batch {name} is partly durable");
    }
    // Every acknowledged batch is there, each coupon exactly as acknowledged.
    for (name, coupons) in &acked {
        let mut held = by_batch[name].clone();
        held.sort_by_key(|c| c["id"].as_str().unwrap().to_string());
        let mut coupons = coupons.clone();
        coupons.sort_by_key(|c| c["id"].as_str().unwrap().to_string());
        assert_eq!(&held, &coupons, "{name}");
    }
    // A batch whose answer the kill took is settled by retrying it with its key: all of
    // it issued (now, or replayed if it was durable), never a second coupon for anyone.
    let unanswered = unanswered.lock().unwrap().clone();
    assert!(!unanswered.is_empty(), "the kill took no answer");
    for name in &unanswered {
        let users: Vec<String> = (0..BATCH).map(|u| format!("{name}-{u}")).collect();
        let (status, body) = send(
            http.post(format!("{}/v1/campaigns/{cid}/issue-batch", p2.base))
                .bearer_auth(ADMIN_KEY)
                .header("Idempotency-Key", name)
                .json(&json!({ "user_ids": users })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["issued"], BATCH, "{name}: {body}");
    }
    let after = all_coupons(&http, &p2.base, &cid).await;
    let holders: HashSet<&str> = after
        .iter()
        .map(|c| c["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(holders.len(), after.len(), "a user holds two coupons");
    assert_eq!(after.len(), (acked.len() + unanswered.len()) * BATCH);
    let view = send(
        http.get(format!("{}/v1/campaigns/{cid}", p2.base))
            .bearer_auth(ISSUER_KEY),
    )
    .await
    .1;
    assert_eq!(view["issued"], after.len());
    terminate(p2).await;
}
