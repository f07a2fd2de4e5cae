//! The router built by `firstcome_api::router` and called directly (axum's
//! examples/testing style), for what is awkward to reach over a socket.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use firstcome_api::{ApiKeys, AppState, router};
use firstcome_engine::{Engine, EngineConfig, ManualClock, Store, StoreConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{ADMIN_KEY, ISSUER_KEY};

pub(crate) async fn state(permits: usize, clock: ManualClock) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (state_in(&dir, permits, clock).await, dir)
}

/// An engine on the store in `dir`, admitting `permits` requests at once.
async fn state_in(dir: &tempfile::TempDir, permits: usize, clock: ManualClock) -> AppState {
    let store = Store::open(&StoreConfig::at(dir.path().join("store"), 8 << 20)).unwrap();
    let config = EngineConfig {
        max_in_flight: permits,
        ..EngineConfig::default()
    };
    let engine = Engine::start(store, Arc::new(clock), config).await.unwrap();
    AppState::new(firstcome_api::Handles {
        engine,
        keys: Arc::new(ApiKeys {
            admin_key: ADMIN_KEY.into(),
            issuer_key: ISSUER_KEY.into(),
        }),
        metrics: firstcome_api::metrics::install().unwrap(),
        shutting_down: Arc::new(AtomicBool::new(false)),
        exports: Arc::new(tokio::sync::Semaphore::new(
            firstcome_api::state::EXPORTS_AT_ONCE,
        )),
        live_events: true,
        live_subscribers: Arc::new(tokio::sync::Semaphore::new(16)),
    })
}

pub(crate) async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    key: &str,
    body: Value,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, v)
}

fn now() -> jiff::Timestamp {
    "2026-11-22T09:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn beyond_the_in_flight_cap_issue_answers_overloaded_and_issues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(now());
    let state = state_in(&dir, 10, clock.clone()).await;
    let app = router(state.clone(), firstcome_api::RouterLimits::default());
    let (status, _, c) = call(
        &app,
        "POST",
        "/v1/campaigns",
        ADMIN_KEY,
        json!({"name": "busy", "total_stock": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let cid = c["id"].as_str().unwrap();
    // The same store under a cap of 0: nothing is admitted.
    state
        .engine
        .shutdown(std::time::Duration::from_secs(5))
        .await;
    drop((app, state)); // the store's last handles: it opens again only once closed
    let closed = state_in(&dir, 0, clock.clone()).await;
    let app = router(closed.clone(), firstcome_api::RouterLimits::default());
    let (status, headers, body) = call(
        &app,
        "POST",
        &format!("/v1/campaigns/{cid}/issue"),
        ISSUER_KEY,
        json!({"user_id": "u"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "overloaded");
    assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "1");
    closed
        .engine
        .shutdown(std::time::Duration::from_secs(5))
        .await;
    drop((app, closed));
    let engine = state_in(&dir, 10, clock).await.engine.clone();
    assert_eq!(engine.campaign(cid).await.unwrap().issued, 0);
}

#[tokio::test]
async fn a_campaign_opens_and_closes_with_the_clock() {
    let clock = ManualClock::new(now());
    let (state, _dir) = state(10, clock.clone()).await;
    let app = router(state, firstcome_api::RouterLimits::default());
    let (status, _, c) = call(
        &app,
        "POST",
        "/v1/campaigns",
        ADMIN_KEY,
        json!({"name": "window", "total_stock": 5,
               "starts_at": "2026-11-22T10:00:00Z", "ends_at": "2026-11-22T11:00:00+00:00"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["status"], "scheduled");
    let issue = format!("/v1/campaigns/{}/issue", c["id"].as_str().unwrap());
    let get = format!("/v1/campaigns/{}", c["id"].as_str().unwrap());

    let (status, _, body) = call(
        &app,
        "POST",
        &issue,
        ISSUER_KEY,
        json!({"user_id": "early"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_active"))
    );

    clock.set("2026-11-22T10:00:00Z".parse().unwrap());
    let (status, _, body) = call(
        &app,
        "POST",
        &issue,
        ISSUER_KEY,
        json!({"user_id": "on-time"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Valid until the campaign ends when no validity is given.
    assert_eq!(body["coupon"]["expires_at"], "2026-11-22T11:00:00Z");
    assert_eq!(
        call(&app, "GET", &get, ISSUER_KEY, Value::Null).await.2["status"],
        "active"
    );

    clock.set("2026-11-22T11:00:00Z".parse().unwrap());
    let (status, _, body) =
        call(&app, "POST", &issue, ISSUER_KEY, json!({"user_id": "late"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_active"))
    );
    let view = call(&app, "GET", &get, ISSUER_KEY, Value::Null).await.2;
    assert_eq!(
        (view["status"].as_str(), view["issued"].as_u64()),
        (Some("ended"), Some(1))
    );
}
