//! Issuance over HTTP under contention: exactness is the product.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestServer, assert_problem, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_users_race_for_a_hundred_coupons() {
    let t = Arc::new(TestServer::start().await);
    let c = t
        .create_campaign(json!({"name": "fcfs", "total_stock": 100}))
        .await;
    let cid = c["id"].as_str().unwrap().to_string();

    let results = join_all((0..1000).map(|i| {
        let t = t.clone();
        let cid = cid.clone();
        tokio::spawn(async move {
            let user = format!("user-{i}");
            let (status, body) = t.issue(&cid, &user).await;
            (user, status, body)
        })
    }))
    .await;

    let mut winners = HashMap::new();
    let mut sold_out = 0;
    for r in results {
        let (user, status, body) = r.unwrap();
        match status {
            StatusCode::CREATED => {
                assert_eq!(body["coupon"]["user_id"], user.as_str());
                assert_eq!(body["coupon"]["status"], "issued");
                winners.insert(user, body["coupon"].clone());
            }
            _ => {
                assert_problem(status, &body, 409, "sold_out");
                sold_out += 1;
            }
        }
    }
    assert_eq!(winners.len(), 100);
    assert_eq!(sold_out, 900);
    let codes: HashSet<_> = winners
        .values()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    let ids: HashSet<_> = winners
        .values()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 100, "codes are unique");
    assert_eq!(ids.len(), 100, "ids are unique");

    let view = t.campaign(&cid).await;
    assert_eq!(view["issued"], 100);
    assert_eq!(view["remaining"], 0);
    assert_eq!(view["status"], "sold_out");

    // Stored: every winner holds exactly the coupon they were told of, nobody else
    // holds anything.
    for i in 0..1000 {
        let user = format!("user-{i}");
        let stored = t.user_coupons(&user).await;
        match winners.get(&user) {
            Some(coupon) => assert_eq!(stored, vec![coupon.clone()]),
            None => assert!(stored.is_empty(), "{user} holds {stored:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_storm_gives_each_user_one_coupon() {
    let t = Arc::new(TestServer::start().await);
    let c = t
        .create_campaign(json!({"name": "storm", "total_stock": 1000}))
        .await;
    let cid = c["id"].as_str().unwrap().to_string();

    let results = join_all((0..200).flat_map(|u| (0..5).map(move |_| u)).map(|u| {
        let t = t.clone();
        let cid = cid.clone();
        tokio::spawn(async move {
            let user = format!("dup-{u}");
            let (status, body) = t.issue(&cid, &user).await;
            (user, status, body)
        })
    }))
    .await;

    let mut issued: HashMap<String, Vec<Value>> = HashMap::new();
    let mut refused = 0;
    for r in results {
        let (user, status, body) = r.unwrap();
        if status == StatusCode::CREATED {
            issued.entry(user).or_default().push(body["coupon"].clone());
        } else {
            assert_problem(status, &body, 409, "already_issued");
            assert_eq!(body["coupon_ids"].as_array().unwrap().len(), 1, "{body}");
            refused += 1;
        }
    }
    assert_eq!(issued.len(), 200);
    assert!(issued.values().all(|v| v.len() == 1));
    assert_eq!(refused, 800);
    assert_eq!(t.campaign(&cid).await["issued"], 200);
    for (user, coupons) in &issued {
        assert_eq!(&t.user_coupons(user).await, coupons);
    }
}

#[tokio::test]
async fn the_per_user_limit_allows_exactly_that_many() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "three each", "total_stock": 10, "per_user_limit": 3}))
        .await;
    let cid = c["id"].as_str().unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = t.issue(cid, "greedy").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["coupon"]["id"].clone());
    }
    let (status, body) = t.issue(cid, "greedy").await;
    assert_problem(status, &body, 409, "already_issued");
    assert_eq!(body["coupon_ids"], Value::Array(ids));
    assert_eq!(t.campaign(cid).await["issued"], 3);
}

#[tokio::test]
async fn a_scheduled_campaign_refuses_with_not_active() {
    let t = TestServer::start().await;
    let starts = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let c = t
        .create_campaign(
            json!({"name": "later", "total_stock": 10, "starts_at": starts.to_string()}),
        )
        .await;
    assert_eq!(c["status"], "scheduled");
    let (status, body) = t.issue(c["id"].as_str().unwrap(), "early-bird").await;
    assert_problem(status, &body, 409, "not_active");
    assert_eq!(t.campaign(c["id"].as_str().unwrap()).await["issued"], 0);
}

#[tokio::test]
async fn coupons_are_readable_by_id_and_carry_the_campaign_rules() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({
            "name": "ten percent", "total_stock": 5, "coupon_valid_for_secs": 3600,
            "store_id": "store-9",
            "discount": {"kind": "percent", "value": 10, "max_discount_amount": 5000}
        }))
        .await;
    assert_eq!(c["discount"]["kind"], "percent");
    assert_eq!(c["store_id"], "store-9");
    let (_, body) = t.issue(c["id"].as_str().unwrap(), "reader").await;
    let coupon = &body["coupon"];
    let issued_at: jiff::Timestamp = coupon["issued_at"].as_str().unwrap().parse().unwrap();
    let expires_at: jiff::Timestamp = coupon["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires_at.duration_since(issued_at).as_secs(), 3600);
    assert!(firstcome_engine::is_well_formed_code(
        coupon["code"].as_str().unwrap()
    ));

    let path = format!("/v1/coupons/{}", coupon["id"].as_str().unwrap());
    let (status, read) = send(t.issuer(Method::GET, &path)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&read, coupon);
}

#[tokio::test]
async fn campaigns_and_user_coupons_paginate_with_cursors() {
    let t = TestServer::start().await;
    let mut created = Vec::new();
    for i in 0..5 {
        let c = t
            .create_campaign(json!({"name": format!("c{i}"), "total_stock": 3}))
            .await;
        let (status, _) = t.issue(c["id"].as_str().unwrap(), "collector").await;
        assert_eq!(status, StatusCode::CREATED);
        created.push(c["id"].as_str().unwrap().to_string());
    }
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = t
            .issuer(Method::GET, "/v1/campaigns")
            .query(&[("limit", "2")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let (status, page) = send(req).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["campaigns"].as_array().unwrap();
        assert!(items.len() <= 2);
        for c in items {
            assert_eq!(c["issued"], 1, "live counters in the list");
            listed.push(c["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    created.sort();
    assert_eq!(listed, created);
    // user_coupons() follows next_cursor 100 at a time; ask 2 at a time here.
    let (_, page) = send(
        t.issuer(Method::GET, "/v1/users/collector/coupons")
            .query(&[("limit", "2")]),
    )
    .await;
    assert_eq!(page["coupons"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());
    assert_eq!(t.user_coupons("collector").await.len(), 5);
}

#[tokio::test]
async fn metrics_report_outcomes_routes_and_commit_batches() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "observed", "total_stock": 1}))
        .await;
    let cid = c["id"].as_str().unwrap();
    t.issue(cid, "m1").await;
    t.issue(cid, "m2").await;
    let text = t
        .client
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "firstcome_issue_total{outcome=\"issued\"}",
        "firstcome_issue_total{outcome=\"sold_out\"}",
        "firstcome_issue_duration_seconds_bucket",
        "route=\"/v1/campaigns/{id}/issue\"",
        "firstcome_commit_batch_requests_bucket",
        "firstcome_commit_flush_seconds_bucket",
        "firstcome_campaigns",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    for path in ["/healthz", "/readyz"] {
        let s = t
            .client
            .get(format!("{}{path}", t.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, StatusCode::OK, "{path}");
    }
}
