//! `redis-lua-peer`: the "usual" design to compare firstcome with. An axum server serving
//! firstcome's issue contract, deciding every issue with ONE Lua script (window, stock,
//! duplicate check, store the coupon) run by EVALSHA in a redis-server.
//!
//! Keys: `c:{id}` campaign hash, `c:{id}:u:{user}` the user's coupon ids in the campaign,
//! `u:{user}` all of the user's coupon ids, `k:{coupon id}` coupon hash, `c:seq` ids.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use serde_json::{Value, json};

const ISSUE_LUA: &str = r#"
local c = redis.call('HMGET', KEYS[1], 'total_stock', 'issued', 'per_user_limit', 'starts_at', 'ends_at')
if not c[1] then return {'campaign_not_found'} end
local now = tonumber(ARGV[2])
if c[4] and c[4] ~= '' and now < tonumber(c[4]) then return {'not_active'} end
if c[5] and c[5] ~= '' and now >= tonumber(c[5]) then return {'not_active'} end
local held = redis.call('LRANGE', KEYS[2], 0, -1)
if #held >= tonumber(c[3]) then
  local r = {'already_issued'}
  for _, id in ipairs(held) do table.insert(r, id) end
  return r
end
local issued = tonumber(c[2])
if issued >= tonumber(c[1]) then return {'sold_out'} end
local id = ARGV[4] .. '-' .. issued
redis.call('HSET', 'k:' .. id, 'id', id, 'code', ARGV[3], 'campaign_id', ARGV[4],
  'user_id', ARGV[1], 'issued_at', ARGV[5], 'status', 'issued')
redis.call('HINCRBY', KEYS[1], 'issued', 1)
redis.call('RPUSH', KEYS[2], id)
redis.call('RPUSH', KEYS[3], id)
return {'issued', id}
"#;

/// A Redis+Lua server with firstcome's issue contract, for comparisons.
#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    redis_url: String,
    #[arg(long, env = "FIRSTCOME_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    #[arg(long, env = "FIRSTCOME_ISSUER_KEY", hide_env_values = true)]
    issuer_key: String,
    /// Baseline instead: no redis, no decision; create and issue answer 201 with a
    /// canned body (the cost of axum + JSON + HTTP alone). Verification fails by design.
    #[arg(long)]
    trivial: bool,
}

async fn trivial_create() -> Response {
    let c = json!({"id": "t0", "name": "trivial", "status": "active", "total_stock": 0,
        "issued": 0, "remaining": 0, "per_user_limit": 1});
    (StatusCode::CREATED, Json(c)).into_response()
}

async fn trivial_issue(Path(id): Path<String>, body: Json<IssueRequest>) -> Response {
    let coupon = json!({
        "id": format!("{id}-0"), "code": "0000-0000-0000-0", "campaign_id": id,
        "user_id": body.0.user_id, "issued_at": jiff::Timestamp::now().to_string(),
        "expires_at": null, "status": "issued", "redeemed_at": null, "order_id": null,
    });
    (StatusCode::CREATED, Json(json!({ "coupon": coupon }))).into_response()
}

#[derive(Clone)]
struct AppState {
    redis: MultiplexedConnection,
    script: std::sync::Arc<redis::Script>,
    admin: std::sync::Arc<str>,
    issuer: std::sync::Arc<str>,
}

fn problem(status: StatusCode, code: &str, extra: Option<(&str, Value)>) -> Response {
    let mut body = json!({
        "type": format!("urn:firstcome:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
    });
    if let Some((k, v)) = extra {
        body[k] = v;
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    eprintln!("redis-lua-peer: {e}");
    problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
}

fn unauthorized() -> Response {
    problem(StatusCode::UNAUTHORIZED, "unauthorized", None)
}

/// Some(true) for the admin key, Some(false) for the issuer key, None for neither.
fn auth(s: &AppState, h: &HeaderMap) -> Option<bool> {
    let key = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match key {
        Some(k) if k == &*s.admin => Some(true),
        Some(k) if k == &*s.issuer => Some(false),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCampaign {
    name: String,
    total_stock: u64,
    per_user_limit: Option<u32>,
    starts_at: Option<jiff::Timestamp>,
    ends_at: Option<jiff::Timestamp>,
}

async fn create(State(s): State<AppState>, h: HeaderMap, body: Json<CreateCampaign>) -> Response {
    match auth(&s, &h) {
        Some(true) => {}
        Some(false) => return problem(StatusCode::FORBIDDEN, "forbidden", None),
        None => return unauthorized(),
    }
    let Json(b) = body;
    if b.per_user_limit == Some(0) || b.name.trim().is_empty() {
        return problem(StatusCode::BAD_REQUEST, "invalid_request", None);
    }
    let mut r = s.redis.clone();
    let seq: u64 = match r.incr("c:seq", 1).await {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let id = format!("p{seq:08}");
    let ts = |t: Option<jiff::Timestamp>| {
        t.map(|t| t.as_microsecond().to_string())
            .unwrap_or_default()
    };
    let fields = [
        ("name", b.name.clone()),
        ("total_stock", b.total_stock.to_string()),
        ("issued", "0".into()),
        ("per_user_limit", b.per_user_limit.unwrap_or(1).to_string()),
        ("starts_at", ts(b.starts_at)),
        ("ends_at", ts(b.ends_at)),
        ("created_at", jiff::Timestamp::now().to_string()),
    ];
    if let Err(e) = r
        .hset_multiple::<_, _, _, ()>(format!("c:{id}"), &fields)
        .await
    {
        return internal(e);
    }
    match campaign_json(&s, &id).await {
        Ok(Some(v)) => (StatusCode::CREATED, Json(v)).into_response(),
        Ok(None) => internal("campaign vanished"),
        Err(e) => internal(e),
    }
}

async fn campaign_json(s: &AppState, id: &str) -> redis::RedisResult<Option<Value>> {
    let mut r = s.redis.clone();
    let m: std::collections::HashMap<String, String> = r.hgetall(format!("c:{id}")).await?;
    if m.is_empty() {
        return Ok(None);
    }
    let n = |k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (stock, issued) = (n("total_stock"), n("issued"));
    Ok(Some(json!({
        "id": id,
        "name": m.get("name"),
        "status": if issued >= stock { "sold_out" } else { "active" },
        "total_stock": stock,
        "issued": issued,
        "remaining": stock.saturating_sub(issued),
        "per_user_limit": n("per_user_limit"),
        "created_at": m.get("created_at"),
    })))
}

async fn get_campaign(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if auth(&s, &h).is_none() {
        return unauthorized();
    }
    match campaign_json(&s, &id).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "campaign_not_found", None),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    user_id: String,
}

fn coupon_code() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut x = h.finish();
    let mut out = String::new();
    for i in 0..13 {
        if i == 4 || i == 8 || i == 12 {
            out.push('-');
        }
        out.push(ALPHABET[(x & 31) as usize] as char);
        x >>= 5;
    }
    out
}

async fn issue(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Json<IssueRequest>,
) -> Response {
    if auth(&s, &h).is_none() {
        return unauthorized();
    }
    let user = body.0.user_id;
    let n = user.chars().count();
    if n == 0 || n > 128 || user.chars().any(char::is_control) {
        return problem(StatusCode::BAD_REQUEST, "invalid_request", None);
    }
    let now = jiff::Timestamp::now();
    let code = coupon_code();
    let mut r = s.redis.clone();
    let answer: Result<Vec<String>, _> = s
        .script
        .key(format!("c:{id}"))
        .key(format!("c:{id}:u:{user}"))
        .key(format!("u:{user}"))
        .arg(&user)
        .arg(now.as_microsecond())
        .arg(&code)
        .arg(&id)
        .arg(now.to_string())
        .invoke_async(&mut r)
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    match answer.first().map(String::as_str) {
        Some("issued") => {
            let cid = answer.get(1).cloned().unwrap_or_default();
            let coupon = json!({
                "id": cid, "code": code, "campaign_id": id, "user_id": user,
                "issued_at": now.to_string(), "expires_at": null, "status": "issued",
                "redeemed_at": null, "order_id": null,
            });
            (StatusCode::CREATED, Json(json!({ "coupon": coupon }))).into_response()
        }
        Some("already_issued") => problem(
            StatusCode::CONFLICT,
            "already_issued",
            Some(("coupon_ids", json!(answer[1..]))),
        ),
        Some("sold_out") => problem(StatusCode::CONFLICT, "sold_out", None),
        Some("not_active") => problem(StatusCode::CONFLICT, "not_active", None),
        Some("campaign_not_found") => problem(StatusCode::NOT_FOUND, "campaign_not_found", None),
        other => internal(format!("unexpected script answer {other:?}")),
    }
}

async fn coupon_json(r: &mut MultiplexedConnection, id: &str) -> redis::RedisResult<Option<Value>> {
    let m: std::collections::HashMap<String, String> = r.hgetall(format!("k:{id}")).await?;
    if m.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({
        "id": m.get("id"), "code": m.get("code"), "campaign_id": m.get("campaign_id"),
        "user_id": m.get("user_id"), "issued_at": m.get("issued_at"), "expires_at": null,
        "status": m.get("status"), "redeemed_at": null, "order_id": null,
    })))
}

async fn get_coupon(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if auth(&s, &h).is_none() {
        return unauthorized();
    }
    let mut r = s.redis.clone();
    match coupon_json(&mut r, &id).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "coupon_not_found", None),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct UserQuery {
    campaign_id: Option<String>,
}

/// All of the user's coupons (no paging: the peer is for load tests).
async fn user_coupons(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(user): Path<String>,
    Query(q): Query<UserQuery>,
) -> Response {
    if auth(&s, &h).is_none() {
        return unauthorized();
    }
    let mut r = s.redis.clone();
    let ids: Vec<String> = match r.lrange(format!("u:{user}"), 0, -1).await {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let mut coupons = Vec::new();
    for id in ids {
        match coupon_json(&mut r, &id).await {
            Ok(Some(c)) => {
                if q.campaign_id
                    .as_deref()
                    .is_none_or(|want| c["campaign_id"] == want)
                {
                    coupons.push(c);
                }
            }
            Ok(None) => {}
            Err(e) => return internal(e),
        }
    }
    Json(json!({ "coupons": coupons, "next_cursor": null })).into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.trivial {
        let app = Router::new()
            .route("/v1/campaigns", post(trivial_create))
            .route("/v1/campaigns/{id}/issue", post(trivial_issue));
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!(
            "trivial baseline listening on http://{}",
            listener.local_addr()?
        );
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let client = redis::Client::open(args.redis_url.as_str())?;
    // redis-server may still be starting: retry for a while.
    let mut tries = 0;
    let redis = loop {
        match client.get_multiplexed_async_connection().await {
            Ok(c) => break c,
            Err(e) if tries < 100 => {
                tries += 1;
                if tries == 1 {
                    eprintln!("redis-lua-peer: waiting for redis: {e}");
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let state = AppState {
        redis,
        script: std::sync::Arc::new(redis::Script::new(ISSUE_LUA)),
        admin: args.admin_key.into(),
        issuer: args.issuer_key.into(),
    };
    let app = Router::new()
        .route("/v1/campaigns", post(create))
        .route("/v1/campaigns/{id}", get(get_campaign))
        .route("/v1/campaigns/{id}/issue", post(issue))
        .route("/v1/coupons/{id}", get(get_coupon))
        .route("/v1/users/{user_id}/coupons", get(user_coupons))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "redis-lua-peer listening on http://{}",
        listener.local_addr()?
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
