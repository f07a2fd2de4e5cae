//! The Prometheus recorder, the description of every metric, and the HTTP request
//! metrics.
//!
//! Every metric the process records, wherever it is recorded (api, engine, storage), is
//! listed once in [`METRICS`] with its type, unit and help text; [`install`] registers
//! them with the recorder, so that `/metrics` has a `# HELP` line for each and
//! `promtool check metrics` finds nothing to report (`.ci/promtool.sh`). The table is
//! the reference: docs/operations.md describes the same names.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use firstcome_engine::mail::MailKind;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

/// The type of a metric in [`METRICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: type, full name, unit, help text.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    pub kind: Kind,
    pub name: &'static str,
    pub unit: Unit,
    pub help: &'static str,
}

const fn d(kind: Kind, name: &'static str, unit: Unit, help: &'static str) -> Described {
    Described {
        kind,
        name,
        unit,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric of the process. A name recorded anywhere but missing here has no HELP
/// line, which `.ci/promtool.sh` reports.
pub const METRICS: &[Described] = &[
    // api
    d(
        Counter,
        "firstcome_http_requests_total",
        Unit::Count,
        "HTTP requests answered, by route template, method and status.",
    ),
    d(
        Histogram,
        "firstcome_http_request_duration_seconds",
        Unit::Seconds,
        "Time from a routed HTTP request to its response, by route template and method.",
    ),
    d(
        Counter,
        "firstcome_http_overloaded_total",
        Unit::Count,
        "HTTP requests answered 503 overloaded (shed by max_inflight_requests), by route template and method.",
    ),
    d(
        Counter,
        "firstcome_requests_shed_total",
        Unit::Count,
        "Requests answered 503 overloaded by their campaign's actor, undecided, because they waited longer than queue_deadline_ms.",
    ),
    d(
        Counter,
        "firstcome_http_connections_refused_total",
        Unit::Count,
        "Connections answered 503 overloaded and closed because max_connections were open.",
    ),
    d(
        Gauge,
        "firstcome_live_subscribers",
        Unit::Count,
        "Live event streams open (campaign and store streams).",
    ),
    d(
        Gauge,
        "firstcome_ready",
        Unit::Count,
        "1 while the server is ready (accepts writes and is not shutting down), else 0; what /readyz answers.",
    ),
    // engine
    d(
        Counter,
        "firstcome_issue_total",
        Unit::Count,
        "Issue requests decided, by outcome (issued, already_issued, sold_out, not_active, replayed, overloaded, ...).",
    ),
    d(
        Histogram,
        "firstcome_issue_duration_seconds",
        Unit::Seconds,
        "Issue requests: the actor round trip, including the wait for durability.",
    ),
    d(
        Counter,
        "firstcome_coupon_use_total",
        Unit::Count,
        "Redeem and cancel-redemption requests decided, by action and outcome.",
    ),
    d(
        Counter,
        "firstcome_coupons_expired_total",
        Unit::Count,
        "Coupons that reached their expiry unredeemed.",
    ),
    d(
        Gauge,
        "firstcome_campaigns",
        Unit::Count,
        "Campaigns with a running actor.",
    ),
    d(
        Counter,
        "firstcome_campaign_restarts_total",
        Unit::Count,
        "Campaign actors restarted from the store after a failure.",
    ),
    d(
        Counter,
        "firstcome_mail_sent_total",
        Unit::Count,
        "Mails the SMTP server (or the .eml directory) accepted, by kind.",
    ),
    d(
        Counter,
        "firstcome_mail_failed_total",
        Unit::Count,
        "Failed mail attempts, by kind and class (transient: retried; permanent).",
    ),
    d(
        Counter,
        "firstcome_mail_retried_total",
        Unit::Count,
        "Failed mail attempts rescheduled with backoff, by kind.",
    ),
    d(
        Counter,
        "firstcome_mail_dead_total",
        Unit::Count,
        "Mail jobs moved to the dead letters, by kind.",
    ),
    d(
        Gauge,
        "firstcome_mail_outbox_depth",
        Unit::Count,
        "Mail jobs waiting in the outbox (due or waiting for a retry).",
    ),
    d(
        Histogram,
        "firstcome_mail_send_duration_seconds",
        Unit::Seconds,
        "One mail attempt: render, connect or reuse a connection, the SMTP transaction; by kind.",
    ),
    // storage (the committer)
    d(
        Histogram,
        "firstcome_commit_batch_requests",
        Unit::Count,
        "Submissions released by one group commit (one journal fdatasync); a campaign's batch of decisions is one.",
    ),
    d(
        Histogram,
        "firstcome_commit_batch_writes",
        Unit::Count,
        "Writes (puts and removes) in one group commit.",
    ),
    d(
        Histogram,
        "firstcome_commit_flush_seconds",
        Unit::Seconds,
        "One group commit: the journal append and fdatasync, then the sled apply.",
    ),
    d(
        Counter,
        "firstcome_commit_failures_total",
        Unit::Count,
        "Failed group commits; the first one stops all writing (the store is fail-stop).",
    ),
];

/// Installs the process-wide recorder once and returns its handle. A process has one
/// global recorder, so servers started later in the same process (tests) share it.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    // A std Mutex, not a OnceLock: the first install can fail, and a later call then
    // tries again rather than seeing a half-made recorder.
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = installed.as_ref() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        // Counters get `_total` and described units get their suffix if a name lacks
        // them. Every name in METRICS already has both (a unit test holds them to it),
        // so this renames nothing today; it keeps a future metric from breaking the
        // naming rules promtool checks.
        .with_recommended_naming(true)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Prefix("firstcome_commit_batch".into()),
                BATCH_BUCKETS,
            )
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| MetricsError(e.to_string()))?;
    // Descriptions go to the installed recorder, so only now.
    for m in METRICS {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
    export_zeroes();
    // Without the exporter's own listener, histograms are only drained by upkeep: run
    // it, or their memory grows.
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("firstcome-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| MetricsError(format!("spawning the upkeep thread: {e}")))?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Exports, at 0, the series that alerts watch but that stay absent until something rare
/// happens. A series that appears already at 1 has no earlier sample, so `increase()`
/// and `rate()` see no change and the alert on the first commit failure or dead letter
/// would never fire.
fn export_zeroes() {
    metrics::counter!("firstcome_commit_failures_total").increment(0);
    metrics::counter!("firstcome_campaign_restarts_total").increment(0);
    metrics::counter!("firstcome_issue_total", "outcome" => "overloaded").increment(0);
    metrics::gauge!("firstcome_ready").set(0.0);
    for kind in mail_kinds() {
        let kind = kind.as_str();
        metrics::counter!("firstcome_mail_sent_total", "kind" => kind).increment(0);
        metrics::counter!("firstcome_mail_dead_total", "kind" => kind).increment(0);
        metrics::counter!("firstcome_mail_retried_total", "kind" => kind).increment(0);
        for class in ["transient", "permanent"] {
            metrics::counter!("firstcome_mail_failed_total", "kind" => kind, "class" => class)
                .increment(0);
        }
    }
}

fn mail_kinds() -> [MailKind; 3] {
    // The match breaks the build when a kind is added, so that it is not forgotten here.
    match MailKind::Confirmation {
        MailKind::Confirmation | MailKind::Reminder | MailKind::NewCampaign => {}
    }
    [
        MailKind::Confirmation,
        MailKind::Reminder,
        MailKind::NewCampaign,
    ]
}

/// Sets `firstcome_ready` (see [`METRICS`]).
pub fn set_ready(ready: bool) {
    metrics::gauge!("firstcome_ready").set(if ready { 1.0 } else { 0.0 });
}

/// The Prometheus recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("installing the Prometheus recorder: {0}")]
pub struct MetricsError(String);

/// The handles of one (route, method, status). `counter!` with labels hashes them and
/// allocates the key on every call; per request that showed in profiles, so each label
/// set is looked up once and its handles kept.
struct HttpHandles {
    requests: metrics::Counter,
    duration: metrics::Histogram,
    overloaded: metrics::Counter,
}

/// At most this many label sets are kept (routes are templates, but a client can send any
/// method); past it, requests are counted through the macros as before.
const MAX_HTTP_LABEL_SETS: usize = 1024;

type HttpKey = (axum::http::Method, u16);
/// How many label sets are kept, and the handles by route, then (method, status).
type HttpTable = (
    usize,
    std::collections::HashMap<
        String,
        std::collections::HashMap<HttpKey, std::sync::Arc<HttpHandles>>,
    >,
);

fn http_handles(
    route: &str,
    method: &axum::http::Method,
    status: u16,
) -> std::sync::Arc<HttpHandles> {
    use std::sync::{Arc, LazyLock, RwLock};
    // A std RwLock: held for one map look-up or insert, never across an await.
    static HANDLES: LazyLock<RwLock<HttpTable>> = LazyLock::new(RwLock::default);
    let key = (method.clone(), status);
    if let Some(h) = HANDLES
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .1
        .get(route)
        .and_then(|m| m.get(&key))
    {
        return h.clone();
    }
    let handles = Arc::new(HttpHandles {
        requests: metrics::counter!(
            "firstcome_http_requests_total",
            "route" => route.to_owned(),
            "method" => method.to_string(),
            "status" => status.to_string()
        ),
        duration: metrics::histogram!(
            "firstcome_http_request_duration_seconds",
            "route" => route.to_owned(),
            "method" => method.to_string()
        ),
        overloaded: metrics::counter!(
            "firstcome_http_overloaded_total",
            "route" => route.to_owned(),
            "method" => method.to_string()
        ),
    });
    let mut all = HANDLES.write().unwrap_or_else(|p| p.into_inner());
    if all.0 < MAX_HTTP_LABEL_SETS {
        all.0 += 1;
        all.1
            .entry(route.to_owned())
            .or_default()
            .insert(key, handles.clone());
    }
    handles
}

/// Counts and times every routed request, labelled by route template.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    // A clone of the route's `Arc<str>`, not a new String per request.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    let handles = http_handles(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        status.as_u16(),
    );
    // Both "shedding" and "unavailable" are 503 with Retry-After; the problem's code,
    // which `ApiError` leaves in the response's extensions, tells them apart.
    if status == StatusCode::SERVICE_UNAVAILABLE
        && response
            .extensions()
            .get::<crate::error::ProblemCode>()
            .is_some_and(|c| c.0 == "overloaded")
    {
        handles.overloaded.increment(1);
    }
    handles.requests.increment(1);
    handles.duration.record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recommended naming would rename a counter without `_total` or a name without its
    /// unit; the names in code, docs, dashboard and rules would then disagree with
    /// `/metrics`. Holding the table to the rules keeps them one and the same.
    #[test]
    fn every_name_already_follows_the_naming_rules() {
        let mut seen = std::collections::HashSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("firstcome_"), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            match m.unit {
                Unit::Count => {}
                Unit::Seconds => assert!(m.name.ends_with("_seconds"), "{}", m.name),
                other => panic!("{}: unit {other:?} is not a base unit we use", m.name),
            }
            for reserved in ["_count", "_sum", "_bucket"] {
                assert!(!m.name.ends_with(reserved), "{}", m.name);
            }
            assert!(m.help.ends_with('.'), "{}", m.name);
        }
    }
}
