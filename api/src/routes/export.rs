//! `GET /v1/campaigns/{id}/coupons` (admin): a campaign's coupons, as JSON pages or as
//! one CSV stream.
//!
//! Both read the store in seq order through `Engine::campaign_coupons`, a chunk at a
//! time on a blocking thread; the store holds everything a client was answered, so an
//! export shows every acknowledged coupon and change up to the moment it reads them.
//! The CSV is streamed: a thread of the export's own, at the lowest priority, reads a chunk, encodes it and hands it to
//! the response through a channel of [`CHUNKS_AHEAD`] chunks, so an export of a million
//! coupons holds a few thousand rows at a time, and a client that reads slowly (or
//! goes away) stops the reading instead of piling rows up in memory.

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use firstcome_engine::{CampaignCouponFilter, Coupon, CouponScan, Engine};
use thread_priority::ThreadPriority;

use crate::auth::Admin;
use crate::dto::{
    CampaignCouponsQuery, CouponJson, CouponPage, DEFAULT_EXPORT_PAGE, MAX_EXPORT_PAGE,
};
use crate::error::{ApiError, ApiPath};
use crate::problems::{ACTOR, ADMIN, INPUT, Replay, problems};
use crate::routes::CampaignId;
use crate::state::AppState;

/// The CSV media type.
pub const TEXT_CSV: &str = "text/csv; charset=utf-8";
/// The CSV's columns, in order.
pub const CSV_COLUMNS: [&str; 9] = [
    "id",
    "code",
    "campaign_id",
    "user_id",
    "status",
    "issued_at",
    "expires_at",
    "redeemed_at",
    "order_id",
];
/// Rows per chunk of the CSV stream.
const CSV_CHUNK_ROWS: usize = 1000;
/// Chunks encoded ahead of the client.
const CHUNKS_AHEAD: usize = 2;
/// The most coupons one JSON page (or one CSV chunk) reads: a filter that few coupons
/// pass ends a page early, with a cursor, rather than reading the whole campaign.
const MAX_READ_PER_PAGE: usize = 20_000;

problems!(
    ExportErrors,
    Replay::No,
    [ADMIN, INPUT, ACTOR, &[ApiError::CampaignNotFound]]
);

/// Export a campaign's coupons in seq order, with each coupon's status as of now:
/// JSON pages, or (with `Accept: text/csv`) every coupon after `cursor` as one streamed
/// CSV with the columns `id,code,campaign_id,user_id,status,issued_at,expires_at,redeemed_at,order_id`.
/// A JSON page may hold fewer than `limit` coupons when a filter passes few of them:
/// go on while `next_cursor` is not `null`.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/coupons",
    operation_id = "export_campaign_coupons",
    tag = "campaigns",
    security(("bearer" = ["admin"])),
    params(CampaignId, CampaignCouponsQuery),
    responses(
        (status = 200, description = "The coupons.", content(
            (CouponPage = "application/json"),
            (String = "text/csv", example = "id,code,campaign_id,user_id,status,issued_at,expires_at,redeemed_at,order_id\n4mq7d2k9x1c3b5na-0,7Q2M-K9XD-3HWT-AR,4mq7d2k9x1c3b5na,alice,issued,2026-12-02T10:00:00Z,,,\n"),
        )),
        ExportErrors,
    )
)]
pub async fn coupons(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    query: Result<Query<CampaignCouponsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let filter = q.filter()?;
    let limit = q.limit()?;
    let after = q.after(&id)?;
    if !wants_csv(&headers) {
        let limit = limit.unwrap_or(DEFAULT_EXPORT_PAGE);
        let scan = read(&state.engine, &id, filter, after, limit).await?;
        let next_cursor = scan.next_after.map(|seq| format!("{id}-{seq}"));
        let page = CouponPage {
            items: scan.coupons.into_iter().map(CouponJson::from).collect(),
            next_cursor,
        };
        return Ok(Json(page).into_response());
    }
    let permit = state
        .exports
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded)?;
    let rows_left = limit.unwrap_or(usize::MAX);
    // The first chunk before the answer starts, so that an unknown campaign is a 404,
    // not a stream that breaks.
    let first = read(
        &state.engine,
        &id,
        filter,
        after,
        CSV_CHUNK_ROWS.min(rows_left),
    )
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_AHEAD);
    let chunks = Chunks {
        tx,
        runtime: tokio::runtime::Handle::current(),
    };
    let engine = state.engine.clone();
    let campaign = id.clone();
    // A thread of its own, not one of Tokio's blocking pool: it lowers its priority for
    // the rest of its life, which a pooled thread would carry into other work.
    let spawned = std::thread::Builder::new()
        .name("firstcome-export".into())
        .spawn(move || {
            // Held until the last chunk is handed over.
            let _permit = permit;
            // An export yields the CPU to deciding and committing: it only gets slower.
            if let Err(e) = thread_priority::set_current_thread_priority(ThreadPriority::Min) {
                tracing::debug!(error = ?e, "could not lower the export thread's priority");
            }
            let streamed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                stream_rows(&engine, &campaign, filter, first, rows_left, &chunks)
            }));
            let why = match streamed {
                Ok(Ok(()) | Err(Stop::ClientGone)) => return,
                Ok(Err(Stop::Failed(e))) => e.to_string(),
                Err(_) => "the export thread panicked".to_string(),
            };
            // The answer has started: all that is left is to break it, so that the
            // client sees an incomplete transfer rather than a short file that looks
            // whole.
            tracing::error!(campaign = %campaign, error = %why, "export stopped");
            let _ = chunks.send(Err(std::io::Error::other("export stopped")));
        });
    spawned.map_err(|e| ApiError::Internal(format!("starting an export thread: {e}")))?;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_CSV));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-coupons.csv\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// A client that has read nothing for this long is given up on: its export's slot (of
/// [`crate::state::EXPORTS_AT_ONCE`]) goes to someone else.
const STALLED_CLIENT: Duration = Duration::from_secs(30);

/// The encoded chunks on their way to the response.
struct Chunks {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// The server's runtime, for a send with a deadline from the export's own thread.
    runtime: tokio::runtime::Handle,
}

/// Why the rows stopped before the last one.
enum Stop {
    /// Gone, or has read nothing for [`STALLED_CLIENT`].
    ClientGone,
    Failed(firstcome_engine::EngineError),
}

impl Chunks {
    fn send(&self, chunk: Result<Bytes, std::io::Error>) -> Result<(), Stop> {
        self.runtime
            .block_on(self.tx.send_timeout(chunk, STALLED_CLIENT))
            .map_err(|_| Stop::ClientGone)
    }
}

/// Encodes `scan` and reads on, chunk after chunk, until the campaign ends or `rows`
/// rows are out.
fn stream_rows(
    engine: &Engine,
    campaign: &str,
    filter: CampaignCouponFilter,
    mut scan: CouponScan,
    mut rows: usize,
    chunks: &Chunks,
) -> Result<(), Stop> {
    let mut header = true;
    loop {
        rows -= scan.coupons.len();
        chunks.send(encode(&scan.coupons, header))?;
        header = false;
        let Some(next) = scan.next_after.filter(|_| rows > 0) else {
            return Ok(());
        };
        let limit = CSV_CHUNK_ROWS.min(rows);
        scan = engine
            .campaign_coupons(campaign, filter, Some(next), limit, MAX_READ_PER_PAGE)
            .map_err(Stop::Failed)?;
    }
}

/// Whether the client asked for CSV (`Accept: text/csv`, alone or among others, and not
/// with `q=0`, which says "not this").
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            let mut parts = m.split(';').map(str::trim);
            let csv = parts
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("text/csv"));
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            csv && !refused
        })
}

/// One chunk of coupons from the store, off the async workers.
async fn read(
    engine: &Engine,
    id: &str,
    filter: CampaignCouponFilter,
    after: Option<u64>,
    limit: usize,
) -> Result<CouponScan, ApiError> {
    debug_assert!((1..=MAX_EXPORT_PAGE.max(CSV_CHUNK_ROWS)).contains(&limit));
    let engine = engine.clone();
    let id = id.to_string();
    let scan = tokio::task::spawn_blocking(move || {
        engine.campaign_coupons(&id, filter, after, limit, MAX_READ_PER_PAGE)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(scan)
}

/// The CSV rows of `coupons` (after the header line, with `header`).
fn encode(coupons: &[Coupon], header: bool) -> Result<Bytes, std::io::Error> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(coupons.len() * 160 + 100));
    if header {
        w.write_record(CSV_COLUMNS)?;
    }
    let time = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    for c in coupons {
        w.write_record([
            c.id.as_str(),
            &c.code,
            &c.campaign_id,
            &c.user_id,
            c.status.as_str(),
            &c.issued_at.to_string(),
            &time(c.expires_at),
            &time(c.redeemed_at),
            c.order_id.as_deref().unwrap_or(""),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(Bytes::from(bytes))
}
