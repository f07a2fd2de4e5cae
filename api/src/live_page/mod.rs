//! `/live/{campaign_id}`: a page that shows a campaign live (its name, a large
//! "remaining" counter, a progress bar, its status and the coupons issued each second
//! over the last minute), in Korean or English after `Accept-Language`.
//!
//! Plain HTML, CSS and JavaScript, embedded in the binary (`include_str!`): no build
//! step, no CDN. The script follows the campaign's event stream (`routes::live`) and
//! reconnects by itself. Not part of the OpenAPI document: it is a page, not an API.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::{Environment, context};
use serde::Serialize;

use crate::error::{ApiError, ApiPath};
use crate::state::AppState;

const PAGE: &str = include_str!("live.html");
const SCRIPT: &str = include_str!("live.js");
const STYLE: &str = include_str!("live.css");

/// Parsed once; `.html`, so every value is HTML-escaped.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A template that does not parse is a bug that the tests meet first; the page then
    // answers 500 (`get_template` fails), it does not panic.
    if let Err(e) = env.add_template("live.html", PAGE) {
        tracing::error!(error = %e, "the live page's template does not parse");
    }
    env
});

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/live/{id}", get(page))
        .route("/live/assets/live.js", get(script))
        .route("/live/assets/live.css", get(style))
}

/// The page's words in one language.
#[derive(Debug, Serialize)]
struct Words {
    locale: &'static str,
    title: &'static str,
    loading: &'static str,
    connecting: &'static str,
    live: &'static str,
    reconnecting: &'static str,
    remaining: &'static str,
    issued: &'static str,
    chart: &'static str,
    scheduled: &'static str,
    active: &'static str,
    paused: &'static str,
    sold_out: &'static str,
    ended: &'static str,
    deleted: &'static str,
}

const ENGLISH: Words = Words {
    locale: "en",
    title: "Live coupons",
    loading: "Loading…",
    connecting: "connecting…",
    live: "live",
    reconnecting: "reconnecting…",
    remaining: "coupons left",
    issued: "issued",
    chart: "Coupons issued per second, last minute",
    scheduled: "Starting soon",
    active: "Open",
    paused: "Paused",
    sold_out: "Sold out",
    ended: "Ended",
    deleted: "Removed",
};

const KOREAN: Words = Words {
    locale: "ko",
    title: "실시간 쿠폰",
    loading: "불러오는 중…",
    connecting: "연결 중…",
    live: "실시간",
    reconnecting: "다시 연결 중…",
    remaining: "남은 쿠폰",
    issued: "발급",
    chart: "초당 발급 수, 최근 1분",
    scheduled: "오픈 예정",
    active: "발급 중",
    paused: "일시 중지",
    sold_out: "매진",
    ended: "종료",
    deleted: "삭제됨",
};

/// Korean if the client prefers it to English, else English (the first of the two in
/// the client's order of preference; `ko-KR` counts as `ko`).
fn words(headers: &HeaderMap) -> &'static Words {
    let accepted = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for tag in accept_language::parse(accepted) {
        match tag
            .split('-')
            .next()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("ko") => return &KOREAN,
            Some("en") => return &ENGLISH,
            _ => {}
        }
    }
    &ENGLISH
}

async fn page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::routes::live::enabled(&state)?;
    // Only a campaign that exists gets a page (the subscription is dropped at once).
    drop(state.engine.subscribe_campaign(&id)?);
    let t = words(&headers);
    let html = TEMPLATES
        .get_template("live.html")
        .and_then(|page| page.render(context! { lang => t.locale, t => minijinja::Value::from(minijinja::value::Serde(t)), campaign_id => id }))
        .map_err(|e| ApiError::Internal(format!("live page: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_LANGUAGE, t.locale),
            (header::VARY, "accept-language"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response())
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The files change only with the binary; an hour is short enough for an upgrade.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(accept_language: &str) -> &'static str {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(accept_language).unwrap(),
        );
        words(&h).locale
    }

    #[test]
    fn the_language_follows_the_clients_preference_between_korean_and_english() {
        assert_eq!(with("ko-KR,ko;q=0.9,en-US;q=0.8"), "ko");
        assert_eq!(with("en-US,en;q=0.9,ko;q=0.8"), "en");
        assert_eq!(with("en;q=0.5, ko;q=0.9"), "ko");
        assert_eq!(with("fr-FR, ko;q=0.3"), "ko");
        assert_eq!(with("fr-FR"), "en");
        assert_eq!(with(""), "en");
        assert_eq!(words(&HeaderMap::new()).locale, "en");
    }
}
