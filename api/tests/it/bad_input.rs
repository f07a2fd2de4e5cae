//! Bad input gets the right 4xx with a problem body, and changes nothing.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, TestServer, assert_problem};

/// Sends, and checks the problem's status, code and media type.
async fn expect_problem(req: RequestBuilder, status: u16, code: &str) -> Value {
    let resp = req.send().await.unwrap();
    let got = resp.status();
    let ctype = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_problem(got, &body, status, code);
    assert_eq!(ctype.as_deref(), Some("application/problem+json"));
    body
}

fn raw(t: &TestServer, method: Method, path: &str, body: &str) -> RequestBuilder {
    t.admin(method, path)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

#[tokio::test]
async fn bad_campaign_bodies_are_refused_and_create_nothing() {
    let t = TestServer::start().await;
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let cases: Vec<(&str, String)> = vec![
        ("malformed JSON", "{\"name\": \"x\", ".into()),
        (
            "wrong type",
            r#"{"name": "x", "total_stock": "ten"}"#.into(),
        ),
        ("missing name", r#"{"total_stock": 10}"#.into()),
        ("missing stock", r#"{"name": "x"}"#.into()),
        ("zero stock", r#"{"name": "x", "total_stock": 0}"#.into()),
        (
            "negative stock",
            r#"{"name": "x", "total_stock": -5}"#.into(),
        ),
        (
            "overflowing stock",
            r#"{"name": "x", "total_stock": 18446744073709551616}"#.into(),
        ),
        (
            "stock over the maximum",
            r#"{"name": "x", "total_stock": 1000000001}"#.into(),
        ),
        (
            "fractional stock",
            r#"{"name": "x", "total_stock": 1.5}"#.into(),
        ),
        ("blank name", r#"{"name": "  ", "total_stock": 1}"#.into()),
        (
            "zero per-user limit",
            r#"{"name": "x", "total_stock": 1, "per_user_limit": 0}"#.into(),
        ),
        (
            "unknown field",
            r#"{"name": "x", "total_stock": 1, "stock": 2}"#.into(),
        ),
        (
            "not a date",
            r#"{"name": "x", "total_stock": 1, "starts_at": "tomorrow"}"#.into(),
        ),
        (
            "ends before it starts",
            format!(
                r#"{{"name": "x", "total_stock": 1, "starts_at": "{soon}", "ends_at": "{later}"}}"#
            ),
        ),
        (
            "both validities",
            format!(
                r#"{{"name": "x", "total_stock": 1, "coupon_valid_for_secs": 5, "coupon_valid_until": "{soon}"}}"#
            ),
        ),
        (
            "percent over 100",
            r#"{"name": "x", "total_stock": 1, "discount": {"kind": "percent", "value": 150}}"#
                .into(),
        ),
        (
            // 2^53: the first amount a JSON client may not carry exactly.
            "order amount over the maximum",
            r#"{"name": "x", "total_stock": 1, "discount": {"kind": "percent", "value": 5, "min_order_amount": 9007199254740992}}"#
                .into(),
        ),
        (
            "fixed value over the maximum",
            r#"{"name": "x", "total_stock": 1, "discount": {"kind": "fixed", "value": 15028605615364311040}}"#
                .into(),
        ),
        (
            "unknown discount kind",
            r#"{"name": "x", "total_stock": 1, "discount": {"kind": "free", "value": 1}}"#.into(),
        ),
        ("JSON that is not an object", "[1, 2, 3]".into()),
        ("empty body", "".into()),
    ];
    for (what, body) in cases {
        let resp = raw(&t, Method::POST, "/v1/campaigns", &body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let problem: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {problem}");
        assert_eq!(problem["code"], "invalid_request", "{what}");
    }
    expect_problem(
        t.admin(Method::POST, "/v1/campaigns")
            .body(r#"{"name": "x", "total_stock": 1}"#),
        415,
        "unsupported_media_type",
    )
    .await;
    let huge = format!(
        r#"{{"name": "{}", "total_stock": 1}}"#,
        "x".repeat(64 * 1024)
    );
    expect_problem(
        raw(&t, Method::POST, "/v1/campaigns", &huge),
        413,
        "payload_too_large",
    )
    .await;

    let (status, list) = crate::helpers::send(t.admin(Method::GET, "/v1/campaigns")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["campaigns"], json!([]), "nothing was created");
}

#[tokio::test]
async fn bad_issue_requests_are_refused_and_issue_nothing() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "guarded", "total_stock": 5}))
        .await;
    let cid = c["id"].as_str().unwrap();
    let path = format!("/v1/campaigns/{cid}/issue");
    for (what, body) in [
        ("empty user", r#"{"user_id": ""}"#.to_string()),
        (
            "long user",
            format!(r#"{{"user_id": "{}"}}"#, "u".repeat(129)),
        ),
        (
            "control character",
            r#"{"user_id": "a\u0000b"}"#.to_string(),
        ),
        ("newline", r#"{"user_id": "a\nb"}"#.to_string()),
        ("number", r#"{"user_id": 42}"#.to_string()),
        ("missing", "{}".to_string()),
        (
            "extra field",
            r#"{"user_id": "a", "admin": true}"#.to_string(),
        ),
        ("malformed", "{".to_string()),
    ] {
        let resp = raw(&t, Method::POST, &path, &body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    // 128 characters (not bytes) is the limit: a multi-byte id of 128 chars is fine.
    let (status, _) = t.issue(cid, &"가".repeat(128)).await;
    assert_eq!(status, StatusCode::CREATED);

    for unknown in [
        "0000000000000000",
        "not-a-campaign",
        "ZZZZZZZZZZZZZZZZ",
        "a%20b",
    ] {
        expect_problem(
            raw(
                &t,
                Method::POST,
                &format!("/v1/campaigns/{unknown}/issue"),
                r#"{"user_id": "a"}"#,
            ),
            404,
            "campaign_not_found",
        )
        .await;
        expect_problem(
            t.admin(Method::GET, &format!("/v1/campaigns/{unknown}")),
            404,
            "campaign_not_found",
        )
        .await;
    }
    for bad_coupon in [
        "nope",
        &format!("{cid}-999"),
        &format!("{cid}-01"),
        &format!("{cid}--1"),
    ] {
        expect_problem(
            t.admin(Method::GET, &format!("/v1/coupons/{bad_coupon}")),
            404,
            "coupon_not_found",
        )
        .await;
    }
    expect_problem(
        t.admin(Method::GET, "/v1/campaigns?limit=0"),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        t.admin(Method::GET, "/v1/campaigns?limit=abc"),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        t.admin(Method::GET, "/v1/campaigns?cursor=..%2F"),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        t.admin(Method::GET, "/v1/users/u/coupons?cursor=x"),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(t.admin(Method::GET, "/v1/nothing-here"), 404, "not_found").await;
    // A path segment that is not UTF-8 once percent-decoded.
    expect_problem(
        t.admin(Method::GET, "/v1/campaigns/%FF"),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        t.admin(Method::GET, "/v1/coupons/%C3%28"),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        t.admin(Method::DELETE, "/v1/campaigns"),
        405,
        "method_not_allowed",
    )
    .await;

    assert_eq!(
        t.campaign(cid).await["issued"],
        1,
        "only the valid request issued"
    );
}

#[tokio::test]
async fn keys_are_required_and_scoped() {
    let t = TestServer::start().await;
    let body = json!({"name": "k", "total_stock": 1});
    let url = format!("{}/v1/campaigns", t.base);
    expect_problem(t.client.post(&url).json(&body), 401, "unauthorized").await;
    expect_problem(
        t.client
            .post(&url)
            .bearer_auth("wrong-key-0123456789")
            .json(&body),
        401,
        "unauthorized",
    )
    .await;
    expect_problem(
        t.client
            .post(&url)
            .header("authorization", ADMIN_KEY)
            .json(&body),
        401,
        "unauthorized",
    )
    .await;
    expect_problem(
        t.issuer(Method::POST, "/v1/campaigns").json(&body),
        403,
        "forbidden",
    )
    .await;
    let c = t.create_campaign(body).await;
    let issue = format!(
        "{}/v1/campaigns/{}/issue",
        t.base,
        c["id"].as_str().unwrap()
    );
    expect_problem(
        t.client.post(&issue).json(&json!({"user_id": "a"})),
        401,
        "unauthorized",
    )
    .await;
    // The admin key may also issue.
    let (status, _) = crate::helpers::send(
        t.admin(
            Method::POST,
            &format!("/v1/campaigns/{}/issue", c["id"].as_str().unwrap()),
        )
        .json(&json!({"user_id": "a"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(t.campaign(c["id"].as_str().unwrap()).await["issued"], 1);
}
