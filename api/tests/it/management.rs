//! Campaign management (PATCH, close, delete), statistics with expiry, and the
//! filtered user listing, over real HTTP and real sled, with a manual clock so that
//! days pass and coupons expire without sleeping.

use std::time::{Duration, Instant};

use firstcome_engine::ManualClock;
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestServer, assert_problem, send};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A server on a fresh data dir whose engine reads `clock`.
async fn start_at(clock: &ManualClock) -> TestServer {
    TestServer::start_with_clock(tempfile::tempdir().unwrap(), clock.clone()).await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn patch(t: &TestServer, campaign_id: &str, body: Value) -> (StatusCode, Value) {
    send(
        t.admin(Method::PATCH, &format!("/v1/campaigns/{campaign_id}"))
            .json(&body),
    )
    .await
}

async fn get_campaign(t: &TestServer, campaign_id: &str) -> (StatusCode, Value) {
    send(t.admin(Method::GET, &format!("/v1/campaigns/{campaign_id}"))).await
}

async fn stats(t: &TestServer, campaign_id: &str) -> Value {
    let (s, v) = send(t.admin(Method::GET, &format!("/v1/campaigns/{campaign_id}/stats"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Issues to `user` and returns the coupon, asserting 201.
async fn issue_ok(t: &TestServer, campaign_id: &str, user: &str) -> Value {
    let (s, v) = t.issue(campaign_id, user).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["coupon"].clone()
}

async fn use_coupon(
    t: &TestServer,
    coupon_id: &str,
    action: &str,
    user: &str,
) -> (StatusCode, Value) {
    send(
        t.issuer(Method::POST, &format!("/v1/coupons/{coupon_id}/{action}"))
            .json(&json!({ "user_id": user })),
    )
    .await
}

async fn get_coupon(t: &TestServer, coupon_id: &str) -> Value {
    let (s, v) = send(t.issuer(Method::GET, &format!("/v1/coupons/{coupon_id}"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// The ids of all campaigns, following the cursor.
async fn campaign_ids(t: &TestServer) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = t
            .issuer(Method::GET, "/v1/campaigns")
            .query(&[("limit", "100")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let (s, v) = send(req).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        out.extend(v["campaigns"].as_array().unwrap().iter().map(id_of));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// One page of GET /v1/users/{user}/coupons with the given query.
async fn coupons_page(t: &TestServer, user: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    send(
        t.issuer(Method::GET, &format!("/v1/users/{user}/coupons"))
            .query(query),
    )
    .await
}

fn ids(page: &Value) -> Vec<String> {
    page["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn pausing_refuses_issuance_until_resumed_and_survives_a_restart() {
    let clock = ManualClock::new(at("2026-11-20T12:00:00Z"));
    let t = start_at(&clock).await;
    let c = t
        .create_campaign(json!({"name": "pausable", "total_stock": 5}))
        .await;
    let cid = id_of(&c);
    issue_ok(&t, &cid, "early").await;

    let (s, paused) = patch(&t, &cid, json!({"paused": true})).await;
    assert_eq!(s, StatusCode::OK, "{paused}");
    assert_eq!(paused["status"], "paused");
    assert_eq!(
        (paused["issued"].as_u64(), paused["remaining"].as_u64()),
        (Some(1), Some(4))
    );
    let (s, b) = t.issue(&cid, "late").await;
    assert_problem(s, &b, 409, "not_active");
    assert!(b["detail"].as_str().unwrap().contains("paused"), "{b}");

    let t = t.restart_with_clock(clock.clone()).await;
    assert_eq!(t.campaign(&cid).await, paused, "the pause is durable");
    let (s, b) = t.issue(&cid, "late").await;
    assert_problem(s, &b, 409, "not_active");
    assert!(b["detail"].as_str().unwrap().contains("paused"), "{b}");

    let (s, resumed) = patch(&t, &cid, json!({"paused": false})).await;
    assert_eq!(s, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "active");
    let late = issue_ok(&t, &cid, "late").await;
    assert_eq!(late["id"], format!("{cid}-1"));

    let t = t.restart_with_clock(clock.clone()).await;
    let after = t.campaign(&cid).await;
    assert_eq!(
        (after["status"].as_str(), after["issued"].as_u64()),
        (Some("active"), Some(2))
    );
    issue_ok(&t, &cid, "after-restart").await;
    t.server.shutdown().await;
}

#[tokio::test]
async fn patch_changes_stock_name_and_ends_at_atomically_and_durably() {
    let clock = ManualClock::new(at("2026-11-20T12:00:00Z"));
    let t = start_at(&clock).await;
    let c = t
        .create_campaign(json!({
            "name": "promo",
            "total_stock": 2,
            "ends_at": "2026-11-21T12:00:00Z",
        }))
        .await;
    let cid = id_of(&c);
    issue_ok(&t, &cid, "a").await;
    issue_ok(&t, &cid, "b").await;
    let (s, b) = t.issue(&cid, "c").await;
    assert_problem(s, &b, 409, "sold_out");

    // Raising the stock reopens issuance.
    let (s, v) = patch(&t, &cid, json!({"total_stock": 3})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["total_stock"].as_u64(),
            v["remaining"].as_u64(),
            v["status"].as_str()
        ),
        (Some(3), Some(1), Some("active"))
    );
    assert_eq!(issue_ok(&t, &cid, "c").await["id"], format!("{cid}-2"));
    let sold_out = t.campaign(&cid).await;
    assert_eq!(sold_out["status"], "sold_out");

    // Below what was issued, zero, blank names, ends_at not in the future: refused, and
    // a refused patch changes nothing, not even its valid fields.
    for bad in [
        json!({"total_stock": 2}),
        json!({"total_stock": 0}),
        json!({"name": "   "}),
        json!({"ends_at": "2026-11-20T12:00:00Z"}),
        json!({"ends_at": "2026-11-19T00:00:00Z"}),
        json!({"name": "half applied?", "total_stock": 1}),
        json!({"paused": true, "ends_at": "2026-11-20T11:00:00Z"}),
    ] {
        let (s, b) = patch(&t, &cid, bad.clone()).await;
        assert_problem(s, &b, 400, "invalid_request");
        assert_eq!(t.campaign(&cid).await, sold_out, "after {bad}");
    }

    let (s, v) = patch(&t, &cid, json!({"total_stock": 5})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = patch(&t, &cid, json!({"name": "promo, extended"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "promo, extended");
    let (s, last) = patch(&t, &cid, json!({"ends_at": "2026-11-22T12:00:00Z"})).await;
    assert_eq!(s, StatusCode::OK, "{last}");
    assert_eq!(
        (
            last["name"].as_str(),
            last["total_stock"].as_u64(),
            last["issued"].as_u64(),
            last["remaining"].as_u64(),
            last["status"].as_str(),
        ),
        (
            Some("promo, extended"),
            Some(5),
            Some(3),
            Some(2),
            Some("active")
        )
    );
    assert_eq!(
        last["ends_at"].as_str().map(at),
        Some(at("2026-11-22T12:00:00Z"))
    );
    assert_eq!(last["created_at"], c["created_at"]);

    // Every change is durable, exactly.
    let t = t.restart_with_clock(clock.clone()).await;
    assert_eq!(t.campaign(&cid).await, last);
    // Past the old end, before the new one: still issuing, from where it was.
    clock.set(at("2026-11-21T13:00:00Z"));
    assert_eq!(issue_ok(&t, &cid, "d").await["id"], format!("{cid}-3"));
    // Past the new end: ended.
    clock.set(at("2026-11-22T12:00:00Z"));
    let (s, b) = t.issue(&cid, "e").await;
    assert_problem(s, &b, 409, "not_active");
    assert!(b["detail"].as_str().unwrap().contains("ended"), "{b}");
    assert_eq!(t.campaign(&cid).await["status"], "ended");

    // ends_at must also be after starts_at.
    clock.set(at("2026-11-20T12:00:00Z"));
    let later = t
        .create_campaign(json!({
            "name": "later",
            "total_stock": 1,
            "starts_at": "2026-11-21T00:00:00Z",
            "ends_at": "2026-11-23T00:00:00Z",
        }))
        .await;
    let lid = id_of(&later);
    for end in ["2026-11-20T18:00:00Z", "2026-11-21T00:00:00Z"] {
        let (s, b) = patch(&t, &lid, json!({ "ends_at": end })).await;
        assert_problem(s, &b, 400, "invalid_request");
    }
    let (s, v) = patch(&t, &lid, json!({"ends_at": "2026-11-21T00:00:01Z"})).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("scheduled")),
        "{v}"
    );
    t.server.shutdown().await;
}

#[tokio::test]
async fn management_routes_are_admin_only_and_refuse_bad_or_unknown_targets() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "guarded", "total_stock": 3}))
        .await;
    let cid = id_of(&c);
    let original = t.campaign(&cid).await;
    let path = format!("/v1/campaigns/{cid}");

    // The issuer key may read and issue, not manage.
    let (s, b) = send(
        t.issuer(Method::PATCH, &path)
            .json(&json!({"paused": true})),
    )
    .await;
    assert_problem(s, &b, 403, "forbidden");
    let (s, b) = send(t.issuer(Method::POST, &format!("{path}/close"))).await;
    assert_problem(s, &b, 403, "forbidden");
    let (s, b) = send(t.issuer(Method::DELETE, &path)).await;
    assert_problem(s, &b, 403, "forbidden");
    let (s, b) = send(t.issuer(Method::GET, &format!("{path}/stats"))).await;
    assert_problem(s, &b, 403, "forbidden");
    let (s, b) = send(
        t.client
            .patch(format!("{}{path}", t.base))
            .json(&json!({"paused": true})),
    )
    .await;
    assert_problem(s, &b, 401, "unauthorized");

    // Empty, unknown fields, wrong types, not JSON.
    for bad in [
        json!({}),
        json!({"colour": "red"}),
        json!({"paused": true, "per_user_limit": 2}),
        json!({"paused": "yes"}),
        json!({"total_stock": -1}),
        json!({"ends_at": "tomorrow"}),
        json!({"paused": null}),
    ] {
        let (s, b) = patch(&t, &cid, bad.clone()).await;
        assert_problem(s, &b, 400, "invalid_request");
    }
    let (s, b) = send(
        t.admin(Method::PATCH, &path)
            .header("content-type", "application/json")
            .body("{\"paused\": tr"),
    )
    .await;
    assert_problem(s, &b, 400, "invalid_request");
    assert_eq!(t.campaign(&cid).await, original, "nothing was changed");

    // Unknown campaigns, well-formed or not.
    for unknown in ["0000000000000000", "no-such-campaign"] {
        let p = format!("/v1/campaigns/{unknown}");
        let (s, b) = patch(&t, unknown, json!({"paused": true})).await;
        assert_problem(s, &b, 404, "campaign_not_found");
        let (s, b) = send(t.admin(Method::POST, &format!("{p}/close"))).await;
        assert_problem(s, &b, 404, "campaign_not_found");
        let (s, b) = send(t.admin(Method::DELETE, &p)).await;
        assert_problem(s, &b, 404, "campaign_not_found");
        let (s, b) = send(t.admin(Method::GET, &format!("{p}/stats"))).await;
        assert_problem(s, &b, 404, "campaign_not_found");
    }
    t.server.shutdown().await;
}

#[tokio::test]
async fn close_ends_issuance_but_coupons_already_issued_stay_redeemable() {
    let clock = ManualClock::new(at("2026-11-20T12:00:00Z"));
    let t = start_at(&clock).await;
    let c = t
        .create_campaign(json!({
            "name": "closing",
            "total_stock": 10,
            "ends_at": "2026-11-25T00:00:00Z",
        }))
        .await;
    let cid = id_of(&c);
    let ann = issue_ok(&t, &cid, "ann").await;
    let bob = issue_ok(&t, &cid, "bob").await;

    clock.set(at("2026-11-20T13:00:00Z"));
    let (s, closed) = send(t.admin(Method::POST, &format!("/v1/campaigns/{cid}/close"))).await;
    assert_eq!(s, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "ended");
    assert_eq!(
        closed["ends_at"].as_str().map(at),
        Some(at("2026-11-20T13:00:00Z"))
    );
    assert_eq!(closed["issued"], 2);
    let (s, b) = t.issue(&cid, "carl").await;
    assert_problem(s, &b, 409, "not_active");
    assert!(b["detail"].as_str().unwrap().contains("ended"), "{b}");

    // Closing again changes nothing.
    clock.set(at("2026-11-20T14:00:00Z"));
    let (s, again) = send(t.admin(Method::POST, &format!("/v1/campaigns/{cid}/close"))).await;
    assert_eq!((s, &again), (StatusCode::OK, &closed));

    // Issued coupons are untouched and still redeemable.
    assert_eq!(get_coupon(&t, ann["id"].as_str().unwrap()).await, ann);
    let (s, v) = use_coupon(&t, ann["id"].as_str().unwrap(), "redeem", "ann").await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("redeemed")),
        "{v}"
    );

    let t = t.restart_with_clock(clock.clone()).await;
    assert_eq!(t.campaign(&cid).await, closed);
    let (s, b) = t.issue(&cid, "carl").await;
    assert_problem(s, &b, 409, "not_active");
    assert_eq!(
        get_coupon(&t, ann["id"].as_str().unwrap()).await["status"],
        "redeemed"
    );
    let (s, v) = use_coupon(&t, bob["id"].as_str().unwrap(), "redeem", "bob").await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("redeemed")),
        "{v}"
    );
    let st = stats(&t, &cid).await;
    assert_eq!(
        (st["issued"].as_u64(), st["redeemed"].as_u64()),
        (Some(2), Some(2)),
        "{st}"
    );
    t.server.shutdown().await;
}

async fn assert_gone(t: &TestServer, gone: &str, keep: &str) {
    let (s, b) = get_campaign(t, gone).await;
    assert_problem(s, &b, 404, "campaign_not_found");
    let listed = campaign_ids(t).await;
    assert!(!listed.iter().any(|c| c == gone), "{listed:?}");
    assert!(listed.iter().any(|c| c == keep), "{listed:?}");
    let (s, b) = t.issue(gone, "u").await;
    assert_problem(s, &b, 404, "campaign_not_found");
    let (s, b) = patch(t, gone, json!({"name": "back?"})).await;
    assert_problem(s, &b, 404, "campaign_not_found");
    let (s, b) = send(t.admin(Method::GET, &format!("/v1/campaigns/{gone}/stats"))).await;
    assert_problem(s, &b, 404, "campaign_not_found");
    let (s, b) = send(t.admin(Method::DELETE, &format!("/v1/campaigns/{gone}"))).await;
    assert_problem(s, &b, 404, "campaign_not_found");
}

#[tokio::test]
async fn deleting_an_unused_campaign_removes_it_for_good() {
    let t = TestServer::start().await;
    let keep = id_of(
        &t.create_campaign(json!({"name": "keep", "total_stock": 1}))
            .await,
    );
    let gone = id_of(
        &t.create_campaign(json!({"name": "gone", "total_stock": 1}))
            .await,
    );
    assert!(campaign_ids(&t).await.contains(&gone));

    let (s, b) = send(t.admin(Method::DELETE, &format!("/v1/campaigns/{gone}"))).await;
    assert_eq!((s, b), (StatusCode::NO_CONTENT, Value::Null));

    assert_gone(&t, &gone, &keep).await;
    let t = t.restart().await;
    assert_gone(&t, &gone, &keep).await;
    assert_eq!(t.campaign(&keep).await["name"], "keep");
    issue_ok(&t, &keep, "u").await;
    t.server.shutdown().await;
}

#[tokio::test]
async fn deleting_a_campaign_that_issued_coupons_is_refused_and_changes_nothing() {
    let t = TestServer::start().await;
    let cid = id_of(
        &t.create_campaign(json!({"name": "in use", "total_stock": 3}))
            .await,
    );
    let coupon = issue_ok(&t, &cid, "holder").await;
    let before = t.campaign(&cid).await;

    let (s, b) = send(t.admin(Method::DELETE, &format!("/v1/campaigns/{cid}"))).await;
    assert_problem(s, &b, 409, "campaign_has_coupons");
    assert_eq!(t.campaign(&cid).await, before);
    assert!(campaign_ids(&t).await.contains(&cid));
    assert_eq!(get_coupon(&t, coupon["id"].as_str().unwrap()).await, coupon);
    issue_ok(&t, &cid, "second").await;

    // Also once it is closed (closing is the way to stop it), and after a restart.
    let (s, _) = send(t.admin(Method::POST, &format!("/v1/campaigns/{cid}/close"))).await;
    assert_eq!(s, StatusCode::OK);
    let t = t.restart().await;
    let (s, b) = send(t.admin(Method::DELETE, &format!("/v1/campaigns/{cid}"))).await;
    assert_problem(s, &b, 409, "campaign_has_coupons");
    let after = t.campaign(&cid).await;
    assert_eq!(
        (after["issued"].as_u64(), after["status"].as_str()),
        (Some(2), Some("ended"))
    );
    assert_eq!(t.user_coupons("holder").await, vec![coupon]);
    t.server.shutdown().await;
}

fn day(date: &str, issued: u64, redeemed: u64, cancelled: u64, expired: u64) -> Value {
    json!({
        "date": date,
        "issued": issued,
        "redeemed": redeemed,
        "cancelled": cancelled,
        "expired": expired,
    })
}

#[tokio::test]
async fn stats_count_each_utc_day_exactly_and_match_the_stored_coupons_after_restart() {
    let clock = ManualClock::new(at("2026-11-20T23:00:00Z"));
    let t = start_at(&clock).await;
    let c = t
        .create_campaign(json!({
            "name": "daily",
            "total_stock": 10,
            "coupon_valid_for_secs": 7200,
        }))
        .await;
    let cid = id_of(&c);
    let users: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
    let mut coupon = Vec::new();

    // Nov 20, 23:00: five coupons, valid until Nov 21, 01:00.
    for u in &users[..5] {
        let cp = issue_ok(&t, &cid, u).await;
        assert_eq!(
            cp["expires_at"].as_str().map(at),
            Some(at("2026-11-21T01:00:00Z"))
        );
        coupon.push(cp["id"].as_str().unwrap().to_string());
    }
    // 23:30: u0, u1, u3 redeem; 23:45: u1 cancels.
    clock.set(at("2026-11-20T23:30:00Z"));
    for i in [0, 1, 3] {
        let (s, v) = use_coupon(&t, &coupon[i], "redeem", &users[i]).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    clock.set(at("2026-11-20T23:45:00Z"));
    let (s, v) = use_coupon(&t, &coupon[1], "cancel-redemption", "u1").await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("issued")),
        "{v}"
    );
    assert_eq!(
        stats(&t, &cid).await,
        json!({
            "total_stock": 10, "issued": 5, "redeemed": 2, "expired": 0, "remaining": 5,
            "per_day": [day("2026-11-20", 5, 3, 1, 0)],
        })
    );

    // Nov 21, 00:30: two more (valid until 02:30); u5 redeems.
    clock.set(at("2026-11-21T00:30:00Z"));
    for u in &users[5..7] {
        coupon.push(
            issue_ok(&t, &cid, u).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (s, v) = use_coupon(&t, &coupon[5], "redeem", "u5").await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // 01:30: u1, u2, u4 have expired; u0 and u3 are redeemed, so they have not.
    clock.set(at("2026-11-21T01:30:00Z"));
    for _ in 0..3 {
        assert_eq!(get_coupon(&t, &coupon[2]).await["status"], "expired");
        assert_eq!(t.user_coupons("u2").await[0]["status"], "expired");
    }
    for _ in 0..2 {
        let (s, b) = use_coupon(&t, &coupon[4], "redeem", "u4").await;
        assert_problem(s, &b, 409, "expired");
    }
    assert_eq!(get_coupon(&t, &coupon[0]).await["status"], "redeemed");
    let (s, b) = use_coupon(&t, &coupon[0], "redeem", "u0").await;
    assert_problem(s, &b, 409, "already_redeemed");
    // Cancelling u3's redemption after its validity passed leaves it expired (dated by
    // its expiry, Nov 21); the cancellation itself counts today.
    let (s, v) = use_coupon(&t, &coupon[3], "cancel-redemption", "u3").await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("expired")),
        "{v}"
    );
    let want = json!({
        "total_stock": 10, "issued": 7, "redeemed": 2, "expired": 4, "remaining": 3,
        "per_day": [day("2026-11-20", 5, 3, 1, 0), day("2026-11-21", 2, 1, 1, 4)],
    });
    assert_eq!(stats(&t, &cid).await, want);
    assert_eq!(
        stats(&t, &cid).await,
        want,
        "reading again counts nothing twice"
    );

    // Nov 22, 03:00: u6 expired (at 02:30 on Nov 21); u5 stays redeemed; u7 gets one.
    clock.set(at("2026-11-22T03:00:00Z"));
    issue_ok(&t, &cid, "u7").await;
    let (s, b) = use_coupon(&t, &coupon[6], "redeem", "u6").await;
    assert_problem(s, &b, 409, "expired");
    let want = json!({
        "total_stock": 10, "issued": 8, "redeemed": 2, "expired": 5, "remaining": 2,
        "per_day": [
            day("2026-11-20", 5, 3, 1, 0),
            day("2026-11-21", 2, 1, 1, 5),
            day("2026-11-22", 1, 0, 0, 0),
        ],
    });
    assert_eq!(stats(&t, &cid).await, want);
    assert_eq!(get_coupon(&t, &coupon[5]).await["status"], "redeemed");

    // Identical after a restart, and equal to a recount of the stored coupons.
    let t = t.restart_with_clock(clock.clone()).await;
    assert_eq!(stats(&t, &cid).await, want);
    let mut all = Vec::new();
    for u in &users {
        all.extend(t.user_coupons(u).await);
    }
    let count = |status: &str| all.iter().filter(|c| c["status"] == status).count() as u64;
    assert!(all.iter().all(|c| c["campaign_id"] == cid.as_str()));
    assert_eq!(all.len() as u64, want["issued"].as_u64().unwrap());
    assert_eq!(count("redeemed"), want["redeemed"].as_u64().unwrap());
    assert_eq!(count("expired"), want["expired"].as_u64().unwrap());
    assert_eq!(count("issued"), 1);
    let (s, b) = use_coupon(&t, &coupon[1], "redeem", "u1").await;
    assert_problem(s, &b, 409, "expired");
    assert_eq!(stats(&t, &cid).await, want);
    t.server.shutdown().await;
}

#[tokio::test]
async fn the_expiry_timer_makes_expiry_durable_without_any_request() {
    let before = at("2026-11-20T10:00:00Z");
    let after = at("2026-11-20T10:01:00Z");
    let clock = ManualClock::new(before);
    let t = start_at(&clock).await;
    let cid = id_of(
        &t.create_campaign(json!({"name": "timer", "total_stock": 2, "coupon_valid_for_secs": 30}))
            .await,
    );
    let cp = issue_ok(&t, &cid, "idle").await;
    let coupon_id = cp["id"].as_str().unwrap().to_string();

    // Time passes; nobody asks. Only the actor's timer can write the expiry. To see
    // whether it did, look with the clock briefly turned back to before the coupon's
    // end: then reads and stats show only what is stored, not lazy expiry.
    clock.set(after);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        clock.set(before);
        let expired = stats(&t, &cid).await["expired"].as_u64();
        clock.set(after);
        if expired == Some(1) {
            break;
        }
        assert_eq!(expired, Some(0));
        assert!(
            Instant::now() < deadline,
            "the timer never expired the coupon"
        );
    }
    clock.set(before);
    assert_eq!(get_coupon(&t, &coupon_id).await["status"], "expired");

    // Durable: a restart at the earlier time still sees it expired, counted once.
    let t = t.restart_with_clock(clock.clone()).await;
    assert_eq!(get_coupon(&t, &coupon_id).await["status"], "expired");
    clock.set(after);
    let st = stats(&t, &cid).await;
    assert_eq!(
        (st["expired"].as_u64(), st["per_day"].clone()),
        (Some(1), json!([day("2026-11-20", 1, 0, 0, 1)]))
    );
    t.server.shutdown().await;
}

#[tokio::test]
async fn user_coupons_filter_by_status_and_campaign_and_paginate() {
    let clock = ManualClock::new(at("2026-11-20T10:00:00Z"));
    let t = start_at(&clock).await;
    let a = id_of(
        &t.create_campaign(json!({
            "name": "short", "total_stock": 10, "per_user_limit": 3,
            "coupon_valid_for_secs": 3600,
        }))
        .await,
    );
    let b = id_of(
        &t.create_campaign(json!({"name": "long", "total_stock": 10, "per_user_limit": 2}))
            .await,
    );
    let mut a_ids = Vec::new();
    for _ in 0..3 {
        a_ids.push(id_of(&issue_ok(&t, &a, "pat").await));
    }
    let mut b_ids = Vec::new();
    for _ in 0..2 {
        b_ids.push(id_of(&issue_ok(&t, &b, "pat").await));
    }
    issue_ok(&t, &a, "other").await;
    for id in [&a_ids[0], &b_ids[1]] {
        let (s, v) = use_coupon(&t, id, "redeem", "pat").await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // a1 and a2 expire; a0 is redeemed, b0 issued, b1 redeemed.
    clock.set(at("2026-11-20T12:00:00Z"));

    // Listing order is (campaign id, seq).
    let (first, second) = if a < b {
        (a_ids.clone(), b_ids.clone())
    } else {
        (b_ids.clone(), a_ids.clone())
    };
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let only = |keep: &[&String]| -> Vec<String> {
        all.iter().filter(|id| keep.contains(id)).cloned().collect()
    };

    let (s, v) = coupons_page(&t, "pat", &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (ids(&v), v["next_cursor"].clone()),
        (all.clone(), Value::Null)
    );
    let statuses: Vec<_> = v["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (id_of(c), c["status"].as_str().unwrap().to_string()))
        .collect();
    for (id, status) in &statuses {
        let want = if id == &a_ids[0] || id == &b_ids[1] {
            "redeemed"
        } else if id == &b_ids[0] {
            "issued"
        } else {
            "expired"
        };
        assert_eq!(status, want, "{id}");
    }

    for (status, want) in [
        ("issued", only(&[&b_ids[0]])),
        ("redeemed", only(&[&a_ids[0], &b_ids[1]])),
        ("expired", only(&[&a_ids[1], &a_ids[2]])),
    ] {
        let (s, v) = coupons_page(&t, "pat", &[("status", status)]).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(ids(&v), want, "status={status}");
        assert!(
            v["coupons"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["status"] == status)
        );
    }
    let (_, v) = coupons_page(&t, "pat", &[("campaign_id", &a)]).await;
    assert_eq!(ids(&v), a_ids);
    let (_, v) = coupons_page(&t, "pat", &[("campaign_id", &a), ("status", "expired")]).await;
    assert_eq!(ids(&v), a_ids[1..].to_vec());
    let (_, v) = coupons_page(&t, "pat", &[("campaign_id", &b), ("status", "expired")]).await;
    assert_eq!(ids(&v), Vec::<String>::new());
    let (_, v) = coupons_page(&t, "nobody", &[]).await;
    assert_eq!(v, json!({"coupons": [], "next_cursor": null}));

    // Pages of two follow the cursor to the end, with and without filters.
    for filter in [
        None,
        Some(("status", "expired")),
        Some(("campaign_id", a.as_str())),
    ] {
        let want: Vec<String> = match filter {
            None => all.clone(),
            Some(("status", _)) => only(&[&a_ids[1], &a_ids[2]]),
            Some(_) => a_ids.clone(),
        };
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut q: Vec<(&str, &str)> = vec![("limit", "2")];
            q.extend(filter);
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let (s, v) = coupons_page(&t, "pat", &q).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let page = ids(&v);
            assert!(page.len() <= 2);
            pages += 1;
            got.extend(page.clone());
            match v["next_cursor"].as_str() {
                Some(c) => {
                    assert_eq!(Some(c), page.last().map(String::as_str));
                    cursor = Some(c.to_string());
                }
                None => break,
            }
            assert!(pages <= 5, "the cursor does not end");
        }
        assert_eq!(got, want, "filter {filter:?}");
        assert_eq!(pages, want.len().div_ceil(2).max(1), "filter {filter:?}");
    }

    for bad in [
        vec![("status", "used")],
        vec![("status", "")],
        vec![("campaign_id", "nope")],
        vec![("campaign_id", "ABCDEFGHJKMNPQRS")],
        vec![("limit", "0")],
        vec![("limit", "101")],
        vec![("cursor", "junk")],
        vec![("colour", "red")],
    ] {
        let (s, v) = coupons_page(&t, "pat", &bad).await;
        assert_problem(s, &v, 400, "invalid_request");
    }
    t.server.shutdown().await;
}
