//! `Idempotency-Key` on issue, redeem and cancel-redemption: a retry gets the first
//! response byte for byte (also after a restart), a reused key a 422, and keys are
//! forgotten only after 24 hours.

use std::sync::Arc;
use std::time::Duration;

use firstcome_engine::ManualClock;
use futures::future::join_all;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestServer, assert_problem, send};

const REPLAYED: &str = "idempotent-replayed";

/// One response, as received.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    replayed: bool,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    /// Status, content type and body the same, byte for byte.
    #[track_caller]
    fn assert_same(&self, first: &Answer) {
        assert_eq!(self.status, first.status);
        assert_eq!(self.content_type, first.content_type);
        assert_eq!(
            self.body,
            first.body,
            "{} != {}",
            String::from_utf8_lossy(&self.body),
            String::from_utf8_lossy(&first.body)
        );
    }

    #[track_caller]
    fn assert_problem(&self, want_status: u16, want_code: &str) {
        assert_eq!(self.content_type, "application/problem+json");
        assert_problem(self.status, &self.json(), want_status, want_code);
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status();
    let headers = resp.headers().clone();
    let replayed = match headers.get(REPLAYED) {
        None => false,
        Some(v) => {
            assert_eq!(v, "true");
            true
        }
    };
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.bytes().await.unwrap().to_vec();
    Answer {
        status,
        replayed,
        content_type,
        body,
    }
}

/// POSTs `body` to `path` (issuer key), with `Idempotency-Key: key` if given.
async fn post_raw(t: &TestServer, path: &str, key: Option<HeaderValue>, body: &Value) -> Answer {
    let mut req = t.issuer(Method::POST, path).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    answer(req.send().await.expect("request reaches the server")).await
}

async fn post(t: &TestServer, path: &str, key: Option<&str>, body: &Value) -> Answer {
    post_raw(
        t,
        path,
        key.map(|k| HeaderValue::from_str(k).unwrap()),
        body,
    )
    .await
}

fn issue_path(campaign_id: &str) -> String {
    format!("/v1/campaigns/{campaign_id}/issue")
}

async fn issue(t: &TestServer, campaign_id: &str, user: &str, key: Option<&str>) -> Answer {
    post(
        t,
        &issue_path(campaign_id),
        key,
        &json!({ "user_id": user }),
    )
    .await
}

async fn coupon(t: &TestServer, coupon_id: &str) -> Value {
    let (status, v) = send(t.issuer(Method::GET, &format!("/v1/coupons/{coupon_id}"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn campaign_with_stock(t: &TestServer, name: &str, stock: u64) -> String {
    let c = t
        .create_campaign(json!({ "name": name, "total_stock": stock }))
        .await;
    c["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_issue_retried_with_its_key_gets_the_first_coupon_again() {
    let t = TestServer::start().await;
    let cid = campaign_with_stock(&t, "retry", 10).await;

    let first = issue(&t, &cid, "ann", Some("issue-ann-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.replayed, "a first response is not a replay");
    assert_eq!(first.content_type, "application/json");
    let again = issue(&t, &cid, "ann", Some("issue-ann-1")).await;
    assert!(again.replayed);
    again.assert_same(&first);
    let third = issue(&t, &cid, "ann", Some("issue-ann-1")).await;
    assert!(third.replayed);
    third.assert_same(&first);

    // One coupon, the one the first response named.
    let issued = first.json()["coupon"].clone();
    assert!(issued["id"].is_string() && issued["code"].is_string());
    assert_eq!(t.user_coupons("ann").await, vec![issued.clone()]);
    assert_eq!(coupon(&t, issued["id"].as_str().unwrap()).await, issued);
    assert_eq!(t.campaign(&cid).await["issued"], 1);

    // Without the key, the same request is decided afresh: a refusal.
    let fresh = issue(&t, &cid, "ann", None).await;
    fresh.assert_problem(409, "already_issued");
    assert!(!fresh.replayed);
}

#[tokio::test]
async fn a_refusal_is_replayed_as_it_was_even_when_the_state_has_changed() {
    let t = TestServer::start().await;
    let cid = campaign_with_stock(&t, "one", 1).await;
    let a = issue(&t, &cid, "a", None).await;
    assert_eq!(a.status, StatusCode::CREATED);

    // Sold out for b, and the refusal is kept for b's key.
    let sold = issue(&t, &cid, "b", Some("k2")).await;
    sold.assert_problem(409, "sold_out");
    assert!(!sold.replayed);
    let replay = issue(&t, &cid, "b", Some("k2")).await;
    assert!(replay.replayed);
    replay.assert_same(&sold);

    // a already holds the only coupon.
    let dup = issue(&t, &cid, "a", Some("k3")).await;
    dup.assert_problem(409, "already_issued");
    assert_eq!(
        dup.json()["coupon_ids"],
        json!([a.json()["coupon"]["id"].clone()])
    );
    let replay = issue(&t, &cid, "a", Some("k3")).await;
    assert!(replay.replayed);
    replay.assert_same(&dup);

    // More stock: b's retry with k2 still hears the first answer (sold out), while a
    // new request (a new key) is decided now.
    let (status, v) = send(
        t.admin(Method::PATCH, &format!("/v1/campaigns/{cid}"))
            .json(&json!({ "total_stock": 2 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let replay = issue(&t, &cid, "b", Some("k2")).await;
    assert!(replay.replayed);
    replay.assert_same(&sold);
    assert!(t.user_coupons("b").await.is_empty());
    let fresh = issue(&t, &cid, "b", Some("k4")).await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    assert!(!fresh.replayed);
    assert_eq!(t.campaign(&cid).await["issued"], 2);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_does_nothing() {
    let t = TestServer::start().await;
    let c1 = campaign_with_stock(&t, "c1", 10).await;
    let c2 = campaign_with_stock(&t, "c2", 10).await;
    let first = issue(&t, &c1, "a", Some("K")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let coupon_id = first.json()["coupon"]["id"].as_str().unwrap().to_string();

    // Another body.
    let other_user = issue(&t, &c1, "b", Some("K")).await;
    other_user.assert_problem(422, "idempotency_key_reused");
    assert!(!other_user.replayed);
    // Another campaign.
    let other_campaign = issue(&t, &c2, "a", Some("K")).await;
    other_campaign.assert_problem(422, "idempotency_key_reused");
    // Another operation on the coupon it issued.
    let redeem = post(
        &t,
        &format!("/v1/coupons/{coupon_id}/redeem"),
        Some("K"),
        &json!({ "user_id": "a" }),
    )
    .await;
    redeem.assert_problem(422, "idempotency_key_reused");

    // None of them did anything.
    assert_eq!(t.campaign(&c1).await["issued"], 1);
    assert_eq!(t.campaign(&c2).await["issued"], 0);
    assert!(t.user_coupons("b").await.is_empty());
    assert_eq!(t.user_coupons("a").await.len(), 1);
    assert_eq!(coupon(&t, &coupon_id).await["status"], "issued");

    // And the key still answers the request it was first used for.
    let replay = issue(&t, &c1, "a", Some("K")).await;
    assert!(replay.replayed);
    replay.assert_same(&first);

    // Redeem and cancel-redemption keys differ by operation and body too.
    let use_path = |action: &str| format!("/v1/coupons/{coupon_id}/{action}");
    let redeemed = post(
        &t,
        &use_path("redeem"),
        Some("R"),
        &json!({ "user_id": "a", "order_id": "o1" }),
    )
    .await;
    assert_eq!(redeemed.status, StatusCode::OK);
    for (action, body) in [
        ("redeem", json!({ "user_id": "a", "order_id": "o2" })),
        ("redeem", json!({ "user_id": "a" })),
        (
            "cancel-redemption",
            json!({ "user_id": "a", "order_id": "o1" }),
        ),
    ] {
        let a = post(&t, &use_path(action), Some("R"), &body).await;
        a.assert_problem(422, "idempotency_key_reused");
    }
    assert_eq!(coupon(&t, &coupon_id).await["status"], "redeemed");
}

#[tokio::test]
async fn a_replay_survives_a_restart() {
    let t = TestServer::start().await;
    let cid = campaign_with_stock(&t, "durable", 1).await;
    let first = issue(&t, &cid, "ann", Some("before-restart")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let refused = issue(&t, &cid, "bob", Some("refused-before-restart")).await;
    refused.assert_problem(409, "sold_out");

    let t = t.restart().await;
    let again = issue(&t, &cid, "ann", Some("before-restart")).await;
    assert!(again.replayed);
    again.assert_same(&first);
    let again = issue(&t, &cid, "bob", Some("refused-before-restart")).await;
    assert!(again.replayed);
    again.assert_same(&refused);
    let reused = issue(&t, &cid, "bob", Some("before-restart")).await;
    reused.assert_problem(422, "idempotency_key_reused");
    assert_eq!(t.campaign(&cid).await["issued"], 1);
    assert_eq!(
        t.user_coupons("ann").await,
        vec![first.json()["coupon"].clone()]
    );
}

#[tokio::test]
async fn redeem_and_cancel_retried_with_their_key_replay_and_change_nothing() {
    let t = TestServer::start().await;
    let cid = campaign_with_stock(&t, "use", 10).await;
    let issued = issue(&t, &cid, "ann", None).await;
    let id = issued.json()["coupon"]["id"].as_str().unwrap().to_string();
    let redeem_path = format!("/v1/coupons/{id}/redeem");
    let cancel_path = format!("/v1/coupons/{id}/cancel-redemption");
    let body = json!({ "user_id": "ann", "order_id": "order-1" });

    // Redeem with a key; the redemption is then cancelled (no key).
    let redeemed = post(&t, &redeem_path, Some("redeem-1"), &body).await;
    assert_eq!(redeemed.status, StatusCode::OK);
    assert!(!redeemed.replayed);
    assert_eq!(redeemed.json()["status"], "redeemed");
    let cancelled = post(&t, &cancel_path, None, &body).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(coupon(&t, &id).await["status"], "issued");
    // The retry hears the first 200, and does not redeem again.
    let retry = post(&t, &redeem_path, Some("redeem-1"), &body).await;
    assert!(retry.replayed);
    retry.assert_same(&redeemed);
    let stored = coupon(&t, &id).await;
    assert_eq!(stored["status"], "issued", "{stored}");
    assert!(stored["order_id"].is_null());

    // The same for cancel-redemption with a key.
    let body2 = json!({ "user_id": "ann", "order_id": "order-2" });
    let redeemed2 = post(&t, &redeem_path, None, &body2).await;
    assert_eq!(redeemed2.status, StatusCode::OK);
    let cancelled = post(&t, &cancel_path, Some("cancel-1"), &body2).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert!(!cancelled.replayed);
    assert_eq!(cancelled.json()["status"], "issued");
    let redeemed3 = post(&t, &redeem_path, None, &body2).await;
    assert_eq!(redeemed3.status, StatusCode::OK);
    let retry = post(&t, &cancel_path, Some("cancel-1"), &body2).await;
    assert!(retry.replayed);
    retry.assert_same(&cancelled);
    let stored = coupon(&t, &id).await;
    assert_eq!(stored["status"], "redeemed", "{stored}");
    assert_eq!(stored["order_id"], "order-2");

    // A refusal of a redeem is replayed too (already redeemed now).
    let refused = post(&t, &redeem_path, Some("redeem-2"), &body2).await;
    refused.assert_problem(409, "already_redeemed");
    let cancelled = post(&t, &cancel_path, None, &body2).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let retry = post(&t, &redeem_path, Some("redeem-2"), &body2).await;
    assert!(retry.replayed);
    retry.assert_same(&refused);
    assert_eq!(coupon(&t, &id).await["status"], "issued");

    // After a restart, still the first answers.
    let t = t.restart().await;
    let retry = post(&t, &redeem_path, Some("redeem-1"), &body).await;
    assert!(retry.replayed);
    retry.assert_same(&redeemed);
    assert_eq!(coupon(&t, &id).await["status"], "issued");
}

#[tokio::test]
async fn an_invalid_key_is_a_bad_request_and_does_nothing() {
    let t = TestServer::start().await;
    let cid = campaign_with_stock(&t, "keys", 10).await;
    let issued = issue(&t, &cid, "holder", None).await;
    let id = issued.json()["coupon"]["id"].as_str().unwrap().to_string();

    let too_long = "k".repeat(256);
    let bad: Vec<HeaderValue> = vec![
        HeaderValue::from_static(""),
        HeaderValue::from_str(&too_long).unwrap(),
        HeaderValue::from_bytes("clé-unique".as_bytes()).unwrap(),
        HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    ];
    for key in &bad {
        let a = post_raw(
            &t,
            &issue_path(&cid),
            Some(key.clone()),
            &json!({ "user_id": "nobody" }),
        )
        .await;
        a.assert_problem(400, "invalid_request");
        for action in ["redeem", "cancel-redemption"] {
            let a = post_raw(
                &t,
                &format!("/v1/coupons/{id}/{action}"),
                Some(key.clone()),
                &json!({ "user_id": "holder" }),
            )
            .await;
            a.assert_problem(400, "invalid_request");
        }
    }
    assert!(t.user_coupons("nobody").await.is_empty());
    assert_eq!(t.campaign(&cid).await["issued"], 1);
    assert_eq!(coupon(&t, &id).await["status"], "issued");

    // The longest valid key (255 characters) works, and is replayed.
    let longest = "k".repeat(255);
    let first = issue(&t, &cid, "longest", Some(&longest)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = issue(&t, &cid, "longest", Some(&longest)).await;
    assert!(again.replayed);
    again.assert_same(&first);
    // A one-character key too.
    let first = issue(&t, &cid, "shortest", Some("x")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = issue(&t, &cid, "shortest", Some("x")).await;
    assert!(again.replayed);
    again.assert_same(&first);
}

#[tokio::test]
async fn keys_are_kept_a_day_then_pruned_and_decided_afresh() {
    let clock = ManualClock::new("2026-11-22T09:00:00Z".parse().unwrap());
    let t = TestServer::start_with_clock(tempfile::tempdir().unwrap(), clock.clone()).await;
    let cid = campaign_with_stock(&t, "ttl", 10).await;
    let first = issue(&t, &cid, "ann", Some("K")).await;
    assert_eq!(first.status, StatusCode::CREATED);

    // 23 hours later the key is still kept, also across a restart.
    clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(t.server.engine.prune_idempotency().await.unwrap(), 0);
    let again = issue(&t, &cid, "ann", Some("K")).await;
    assert!(again.replayed);
    again.assert_same(&first);
    let t = t.restart_with_clock(clock.clone()).await;
    assert_eq!(t.server.engine.prune_idempotency().await.unwrap(), 0);
    let again = issue(&t, &cid, "ann", Some("K")).await;
    assert!(again.replayed);
    again.assert_same(&first);

    // Past 24 hours it is pruned, and the same request is decided afresh.
    clock.advance(Duration::from_secs(2 * 3600));
    let pruned = t.server.engine.prune_idempotency().await.unwrap();
    assert!(pruned >= 1, "pruned {pruned}");
    let fresh = issue(&t, &cid, "ann", Some("K")).await;
    assert!(!fresh.replayed);
    fresh.assert_problem(409, "already_issued");
    assert_eq!(
        fresh.json()["coupon_ids"],
        json!([first.json()["coupon"]["id"].clone()])
    );
    // The new answer is what the key replays now.
    let again = issue(&t, &cid, "ann", Some("K")).await;
    assert!(again.replayed);
    again.assert_same(&fresh);
    assert_eq!(t.campaign(&cid).await["issued"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_retries_with_one_key_issue_one_coupon() {
    let t = Arc::new(TestServer::start().await);
    let cid = campaign_with_stock(&t, "race", 100).await;
    let answers = join_all((0..20).map(|_| {
        let (t, cid) = (t.clone(), cid.clone());
        tokio::spawn(async move { issue(&t, &cid, "racer", Some("same-key")).await })
    }))
    .await;
    let answers: Vec<Answer> = answers.into_iter().map(|r| r.unwrap()).collect();
    let created: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    for a in &answers {
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
    }
    // One decision; every other answer is its replay.
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    for a in &created {
        a.assert_same(created[0]);
    }
    let held = t.user_coupons("racer").await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0], created[0].json()["coupon"]);
    assert_eq!(t.campaign(&cid).await["issued"], 1);
}

/// The same key sent at the same time to two campaigns: one target must win and the
/// other hear 422 (the key is global, so one key can never stand for two decisions).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_concurrently_to_two_campaigns_decides_once() {
    let t = Arc::new(TestServer::start().await);
    let c1 = campaign_with_stock(&t, "left", 1000).await;
    let c2 = campaign_with_stock(&t, "right", 1000).await;
    let mut both = Vec::new();
    for i in 0..50 {
        let key = format!("shared-{i}");
        let user = format!("u{i}");
        let (a, b) = tokio::join!(
            issue(&t, &c1, &user, Some(&key)),
            issue(&t, &c2, &user, Some(&key)),
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        if statuses != [201, 422] {
            // What a retry of each then hears: the key can replay only one of them.
            let ra = issue(&t, &c1, &user, Some(&key)).await;
            let rb = issue(&t, &c2, &user, Some(&key)).await;
            both.push((key, a.status, b.status, ra.status, rb.status));
        }
    }
    assert!(
        both.is_empty(),
        "{} of 50 keys decided twice (want one 201 and one 422); \
         (key, first left, first right, retry left, retry right): {both:?}",
        both.len()
    );
}
