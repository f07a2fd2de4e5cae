//! Redeem and cancel-redemption, with lazy expiry (the first part of the lifecycle).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode as AxumStatus;
use firstcome_engine::ManualClock;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::handlers::{call, state};
use crate::helpers::{ISSUER_KEY, TestServer, assert_problem, send};

async fn use_coupon(
    t: &TestServer,
    coupon_id: &str,
    action: &str,
    body: Value,
) -> (StatusCode, Value) {
    send(
        t.issuer(Method::POST, &format!("/v1/coupons/{coupon_id}/{action}"))
            .json(&body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_redeems_of_one_coupon_succeed_once() {
    let t = Arc::new(TestServer::start().await);
    let c = t
        .create_campaign(json!({"name": "once", "total_stock": 1}))
        .await;
    let (_, issued) = t.issue(c["id"].as_str().unwrap(), "holder").await;
    let coupon_id = issued["coupon"]["id"].as_str().unwrap().to_string();
    let results = join_all((0..50).map(|i| {
        let t = t.clone();
        let coupon_id = coupon_id.clone();
        tokio::spawn(async move {
            use_coupon(
                &t,
                &coupon_id,
                "redeem",
                json!({"user_id": "holder", "order_id": format!("o{i}")}),
            )
            .await
        })
    }))
    .await;
    let mut ok = Vec::new();
    for r in results {
        let (status, body) = r.unwrap();
        if status == StatusCode::OK {
            ok.push(body);
        } else {
            assert_problem(status, &body, 409, "already_redeemed");
        }
    }
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["status"], "redeemed");
    assert!(ok[0]["redeemed_at"].is_string());
    // The stored coupon is the one redemption that won, also after a restart.
    let t = Arc::into_inner(t).unwrap().restart().await;
    let (_, stored) = send(t.issuer(Method::GET, &format!("/v1/coupons/{coupon_id}"))).await;
    assert_eq!(stored, ok[0]);
}

#[tokio::test]
async fn redeem_and_cancel_refuse_what_they_must() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "rules", "total_stock": 5}))
        .await;
    let (_, issued) = t.issue(c["id"].as_str().unwrap(), "ann").await;
    let id = issued["coupon"]["id"].as_str().unwrap();
    let cid = c["id"].as_str().unwrap();

    for unknown in [
        format!("{cid}-4"),
        "0000000000000000-0".to_string(),
        "junk".to_string(),
    ] {
        let (s, b) = use_coupon(&t, &unknown, "redeem", json!({"user_id": "ann"})).await;
        assert_problem(s, &b, 404, "coupon_not_found");
    }
    let (s, b) = use_coupon(&t, id, "cancel-redemption", json!({"user_id": "ann"})).await;
    assert_problem(s, &b, 409, "not_redeemed");
    let (s, b) = use_coupon(&t, id, "redeem", json!({"user_id": "bob"})).await;
    assert_problem(s, &b, 403, "not_owner");
    let (s, b) = use_coupon(&t, id, "redeem", json!({"user_id": ""})).await;
    assert_problem(s, &b, 400, "invalid_request");

    let (s, b) = use_coupon(
        &t,
        id,
        "redeem",
        json!({"user_id": "ann", "order_id": "order-1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["status"].as_str(), b["order_id"].as_str()),
        (Some("redeemed"), Some("order-1"))
    );
    let (s, b) = use_coupon(&t, id, "redeem", json!({"user_id": "ann"})).await;
    assert_problem(s, &b, 409, "already_redeemed");
    let (s, b) = use_coupon(&t, id, "cancel-redemption", json!({"user_id": "bob"})).await;
    assert_problem(s, &b, 403, "not_owner");
    let (s, b) = use_coupon(
        &t,
        id,
        "cancel-redemption",
        json!({"user_id": "ann", "order_id": "order-2"}),
    )
    .await;
    assert_problem(s, &b, 409, "order_mismatch");

    let (s, b) = use_coupon(
        &t,
        id,
        "cancel-redemption",
        json!({"user_id": "ann", "order_id": "order-1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "issued");
    assert!(b["redeemed_at"].is_null() && b["order_id"].is_null());
    // Usable again.
    let (s, _) = use_coupon(&t, id, "redeem", json!({"user_id": "ann"})).await;
    assert_eq!(s, StatusCode::OK);
    // Prometheus counts outcomes, without per-campaign labels.
    let metrics = t
        .client
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    for needle in [
        "firstcome_coupon_use_total{action=\"redeem\",outcome=\"done\"}",
        "firstcome_coupon_use_total{action=\"redeem\",outcome=\"not_owner\"}",
        "firstcome_coupon_use_total{action=\"cancel_redemption\",outcome=\"order_mismatch\"}",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
}

#[tokio::test]
async fn a_coupon_past_its_validity_is_expired_for_reads_and_operations() {
    let clock = ManualClock::new("2026-11-22T09:00:00Z".parse().unwrap());
    let (state, _dir) = state(10, clock.clone()).await;
    let app = firstcome_api::router(state, firstcome_api::RouterLimits::default());
    let (_, _, c) = call(
        &app,
        "POST",
        "/v1/campaigns",
        crate::helpers::ADMIN_KEY,
        json!({"name": "short", "total_stock": 5, "coupon_valid_for_secs": 60}),
    )
    .await;
    let issue = format!("/v1/campaigns/{}/issue", c["id"].as_str().unwrap());
    let (_, _, a) = call(&app, "POST", &issue, ISSUER_KEY, json!({"user_id": "a"})).await;
    let (_, _, b) = call(&app, "POST", &issue, ISSUER_KEY, json!({"user_id": "b"})).await;
    let a_id = a["coupon"]["id"].as_str().unwrap();
    let b_id = b["coupon"]["id"].as_str().unwrap();
    // b redeems before expiry; a does not.
    let (s, _, _) = call(
        &app,
        "POST",
        &format!("/v1/coupons/{b_id}/redeem"),
        ISSUER_KEY,
        json!({"user_id": "b"}),
    )
    .await;
    assert_eq!(s, AxumStatus::OK);

    clock.advance(Duration::from_secs(60));
    let (_, _, read) = call(
        &app,
        "GET",
        &format!("/v1/coupons/{a_id}"),
        ISSUER_KEY,
        Value::Null,
    )
    .await;
    assert_eq!(read["status"], "expired");
    let (s, _, body) = call(
        &app,
        "POST",
        &format!("/v1/coupons/{a_id}/redeem"),
        ISSUER_KEY,
        json!({"user_id": "a"}),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (AxumStatus::CONFLICT, Some("expired"))
    );
    let (_, _, list) = call(&app, "GET", "/v1/users/a/coupons", ISSUER_KEY, Value::Null).await;
    assert_eq!(list["coupons"][0]["status"], "expired");

    // A redeemed coupon stays redeemed; cancelling it after expiry makes it expired.
    let (_, _, read) = call(
        &app,
        "GET",
        &format!("/v1/coupons/{b_id}"),
        ISSUER_KEY,
        Value::Null,
    )
    .await;
    assert_eq!(read["status"], "redeemed");
    let (s, _, body) = call(
        &app,
        "POST",
        &format!("/v1/coupons/{b_id}/cancel-redemption"),
        ISSUER_KEY,
        json!({"user_id": "b"}),
    )
    .await;
    assert_eq!(s, AxumStatus::OK, "{body}");
    assert_eq!(body["status"], "expired");
    let (s, _, body) = call(
        &app,
        "POST",
        &format!("/v1/coupons/{b_id}/redeem"),
        ISSUER_KEY,
        json!({"user_id": "b"}),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (AxumStatus::CONFLICT, Some("expired"))
    );
}
