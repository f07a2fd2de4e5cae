//! Coupons by their code: `/v1/codes/{code}` read, redeem and cancel-redemption.

use firstcome_engine::CouponCodes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestServer, assert_problem, send};

/// The code as a customer might type it: lower case, no dashes, `o` for `0`, `l` for `1`.
fn typed_carelessly(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '-')
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The code with its first symbol changed: a typo the check character catches.
fn mistyped(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    chars[0] = if chars[0] == '2' { '3' } else { '2' };
    chars.into_iter().collect()
}

async fn issued(t: &TestServer, stock: u64, user: &str) -> (String, Value) {
    let c = t
        .create_campaign(json!({"name": "codes", "total_stock": stock}))
        .await;
    let cid = c["id"].as_str().unwrap().to_string();
    let (status, body) = t.issue(&cid, user).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (cid, body["coupon"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_is_read_redeemed_and_cancelled_by_its_code_however_it_is_typed() {
    let t = TestServer::start().await;
    let (_, coupon) = issued(&t, 5, "alice").await;
    let code = coupon["code"].as_str().unwrap();
    let id = coupon["id"].as_str().unwrap();
    let typed = typed_carelessly(code);
    assert_ne!(typed, code);

    let (status, by_code) = send(t.issuer(Method::GET, &format!("/v1/codes/{typed}"))).await;
    assert_eq!(status, StatusCode::OK, "{by_code}");
    assert_eq!(by_code, coupon);

    let (status, redeemed) = send(
        t.issuer(Method::POST, &format!("/v1/codes/{typed}/redeem"))
            .json(&json!({"user_id": "alice", "order_id": "o-1"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{redeemed}");
    assert_eq!(redeemed["id"], id);
    assert_eq!(redeemed["status"], "redeemed");
    assert_eq!(redeemed["order_id"], "o-1");
    // The same coupon, read by its id.
    let (_, by_id) = send(t.issuer(Method::GET, &format!("/v1/coupons/{id}"))).await;
    assert_eq!(by_id, redeemed);

    // The rules are the id routes': someone else's coupon, a second redemption.
    let (status, body) = send(
        t.issuer(Method::POST, &format!("/v1/codes/{code}/redeem"))
            .json(&json!({"user_id": "mallory"})),
    )
    .await;
    assert_problem(status, &body, 403, "not_owner");
    let (status, body) = send(
        t.issuer(Method::POST, &format!("/v1/codes/{code}/redeem"))
            .json(&json!({"user_id": "alice"})),
    )
    .await;
    assert_problem(status, &body, 409, "already_redeemed");

    let (status, cancelled) = send(
        t.issuer(Method::POST, &format!("/v1/codes/{code}/cancel-redemption"))
            .json(&json!({"user_id": "alice", "order_id": "o-1"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "issued");
    assert_eq!(cancelled["redeemed_at"], Value::Null);

    // The code key is in the store: after a restart the code names the same coupon.
    let t = t.restart().await;
    let (status, again) = send(t.issuer(Method::GET, &format!("/v1/codes/{code}"))).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_code_is_invalid_code_and_a_code_of_no_coupon_is_not_found() {
    let t = TestServer::start().await;
    let (_, coupon) = issued(&t, 5, "alice").await;
    let code = coupon["code"].as_str().unwrap();
    let id = coupon["id"].as_str().unwrap();

    let typo = mistyped(code);
    for path in [
        format!("/v1/codes/{typo}"),
        "/v1/codes/not-a-code".to_string(),
        format!("/v1/codes/{code}0"),
    ] {
        let (status, body) = send(t.issuer(Method::GET, &path)).await;
        assert_problem(status, &body, 400, "invalid_code");
    }
    let (status, body) = send(
        t.issuer(Method::POST, &format!("/v1/codes/{typo}/redeem"))
            .json(&json!({"user_id": "alice"})),
    )
    .await;
    assert_problem(status, &body, 400, "invalid_code");
    // Nothing changed.
    let (_, after) = send(t.issuer(Method::GET, &format!("/v1/coupons/{id}"))).await;
    assert_eq!(after, coupon);

    // Well-formed (made under another key), but no coupon of this server has it.
    let foreign = CouponCodes::from_key(*b"not this server!").code(1, 0);
    for (method, path) in [
        (Method::GET, format!("/v1/codes/{foreign}")),
        (Method::POST, format!("/v1/codes/{foreign}/redeem")),
        (
            Method::POST,
            format!("/v1/codes/{foreign}/cancel-redemption"),
        ),
    ] {
        let (status, body) = send(t.issuer(method, &path).json(&json!({"user_id": "alice"}))).await;
        assert_problem(status, &body, 404, "coupon_not_found");
    }
    // Without a key: 401, as on the id routes.
    let (status, body) = send(t.client.get(format!("{}/v1/codes/{code}", t.base))).await;
    assert_problem(status, &body, 401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeem_by_code_and_its_retry_by_id_are_one_request() {
    let t = TestServer::start().await;
    let (_, coupon) = issued(&t, 5, "alice").await;
    let code = coupon["code"].as_str().unwrap();
    let id = coupon["id"].as_str().unwrap();
    let body = json!({"user_id": "alice", "order_id": "o-7"});

    let first = t
        .issuer(Method::POST, &format!("/v1/codes/{code}/redeem"))
        .header("Idempotency-Key", "till-7")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first = first.bytes().await.unwrap();
    for path in [
        format!("/v1/coupons/{id}/redeem"),
        format!("/v1/codes/{}/redeem", typed_carelessly(code)),
    ] {
        let retry = t
            .issuer(Method::POST, &path)
            .header("Idempotency-Key", "till-7")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(retry.status(), StatusCode::OK, "{path}");
        assert_eq!(retry.headers()["idempotent-replayed"], "true", "{path}");
        assert_eq!(retry.bytes().await.unwrap(), first, "{path}");
    }
    // The same key for another request through the code route: refused.
    let (status, refused) = send(
        t.issuer(Method::POST, &format!("/v1/codes/{code}/cancel-redemption"))
            .header("Idempotency-Key", "till-7")
            .json(&body),
    )
    .await;
    assert_problem(status, &refused, 422, "idempotency_key_reused");
}
