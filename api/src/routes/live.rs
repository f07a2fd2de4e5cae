//! `/v1/campaigns/{id}/events` and `/v1/stores/{store_id}/events`: server-sent events of
//! campaigns' durable public state, readable without a key so a shop's own page can show
//! them (`Config::live_events` turns them off).
//!
//! The engine's feeds publish (coalesced, durable only); this module frames each event
//! once for all its subscribers and writes it. A stream holds the latest event, never a
//! queue of them: a subscriber whose connection is slow skips to the latest state when
//! it can take more. So a subscriber costs its connection's buffers and a few words,
//! however fast coupons go and however slow it reads.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use firstcome_engine::{
    Beat, CampaignStatus, CampaignSubscription, Heartbeat, LiveEvent, StoreSnapshot,
    StoreSubscription,
};
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::dto::{LiveDeletedJson, LiveJson, validate_store_id};
use crate::error::{ApiError, ApiPath};
use crate::problems::{INPUT, Replay, problems};
use crate::routes::CampaignId;
use crate::state::AppState;

/// The `retry:` each stream starts with: how long an EventSource waits to reconnect.
const RETRY_MS: u64 = 1000;

problems!(
    CampaignEventErrors,
    Replay::No,
    [
        INPUT,
        &[
            ApiError::CampaignNotFound,
            ApiError::LiveEventsDisabled,
            ApiError::Overloaded,
            ApiError::Unavailable
        ]
    ]
);
problems!(
    StoreEventErrors,
    Replay::No,
    [
        INPUT,
        &[
            ApiError::LiveEventsDisabled,
            ApiError::Overloaded,
            ApiError::Unavailable
        ]
    ]
);

/// Follow a campaign live (server-sent events).
///
/// The first event is the campaign's public state now; after it, one whenever its
/// durable state changes: its count (at most one per `live_interval_ms`, 1 s by
/// default) or its status (at once). Every count was durable when it was sent. Each
/// event has an `id:`; a reconnect whose `Last-Event-ID` is the latest event's is not
/// sent it again. A deleted campaign's stream ends with a `deleted` event; a shutdown
/// ends every stream.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/events",
    operation_id = "campaign_events",
    tag = "live",
    security(()),
    params(CampaignId,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id:` of the last event received (EventSource sends it on reconnect).")),
    responses(
        (status = 200, description = "`text/event-stream`. Events: `campaign` (data: `LiveJson`), and `deleted` (data: `LiveDeletedJson`) last. Comment lines keep a quiet stream open.",
            content_type = "text/event-stream", body = String),
        CampaignEventErrors,
    ),
)]
pub async fn campaign_events(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let permit = subscriber_permit(&state)?;
    let sub = state.engine.subscribe_campaign(&id)?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(event_stream(campaign_stream(sub, last_event_id, permit)))
}

/// Follow a store's campaigns live (server-sent events).
///
/// First, a `campaign` event for each of the store's campaigns that has not ended.
/// After that, for any of its campaigns: `activated` when one becomes active (a new
/// coupon to get), `campaign` when its count or status changes otherwise, `deleted`
/// when it is deleted. A store with no campaign yet can be followed: its first one is
/// news. A reconnect gets the state of all of them again.
#[utoipa::path(
    get,
    path = "/v1/stores/{store_id}/events",
    operation_id = "store_events",
    tag = "live",
    security(()),
    params(("store_id" = String, Path, min_length = 1, max_length = 128, pattern = "^[!-~]+$",
        description = "1 to 128 printable ASCII characters.")),
    responses(
        (status = 200, description = "`text/event-stream`. Events: `campaign` and `activated` (data: `LiveJson`), `deleted` (data: `LiveDeletedJson`).",
            content_type = "text/event-stream", body = String),
        StoreEventErrors,
    ),
)]
pub async fn store_events(
    State(state): State<AppState>,
    ApiPath(store_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    validate_store_id(&store_id)?;
    let permit = subscriber_permit(&state)?;
    let sub = state.engine.subscribe_store(&store_id)?;
    Ok(event_stream(store_stream(sub, permit)))
}

fn event_stream(
    stream: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Public data, meant for a shop's pages on their own origin.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    // A buffering proxy (nginx) would hold events back.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `404 live_events_disabled` when `live_events` is off (for the live page too).
pub(crate) fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.live_events {
        Ok(())
    } else {
        Err(ApiError::LiveEventsDisabled)
    }
}

/// A place among `max_live_subscribers`, or `503 overloaded`.
fn subscriber_permit(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    state
        .live_subscribers
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded)
}

/// An open stream: holds its place among `max_live_subscribers` and counts itself in
/// `firstcome_live_subscribers`, as long as it lives.
struct Subscriber {
    _permit: OwnedSemaphorePermit,
}

impl Subscriber {
    fn new(permit: OwnedSemaphorePermit) -> Subscriber {
        metrics::gauge!("firstcome_live_subscribers").increment(1.0);
        Subscriber { _permit: permit }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        metrics::gauge!("firstcome_live_subscribers").decrement(1.0);
    }
}

/// What a stream does next, after it has sent what it had.
enum Wait {
    Changed,
    Closed,
    Quiet,
}

/// Waits for the next change of `changes`, the next heartbeat, or the close.
async fn next_wait<T>(changes: &mut watch::Receiver<T>, heartbeat: &mut Heartbeat) -> Wait {
    tokio::select! {
        changed = changes.changed() => match changed {
            Ok(()) => Wait::Changed,
            Err(_) => Wait::Closed,
        },
        beat = heartbeat.next() => match beat {
            Beat::KeepAlive => Wait::Quiet,
            Beat::Closed => Wait::Closed,
        },
    }
}

const KEEP_ALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// What every stream starts with: `retry:`, then `frames`.
fn opening(frames: Vec<u8>) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let mut first = format!("retry: {RETRY_MS}\n\n").into_bytes();
    first.extend_from_slice(&frames);
    futures::stream::once(std::future::ready(Ok(Bytes::from(first))))
}

/// A campaign's stream: `retry:` and the latest event, then each later event.
fn campaign_stream(
    mut sub: CampaignSubscription,
    last_event_id: Option<String>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let latest = sub.events.borrow_and_update().clone();
    // The client has this one already (it reconnected after it).
    let first = if last_event_id.as_deref() == Some(latest.id.as_str()) {
        Vec::new()
    } else {
        campaign_frame(&latest).to_vec()
    };
    let state = (sub, false, Subscriber::new(permit));
    opening(first).chain(futures::stream::unfold(
        state,
        |(mut sub, done, guard)| async move {
            if done {
                return None;
            }
            let frame = match next_wait(&mut sub.events, &mut sub.heartbeat).await {
                Wait::Closed => return None,
                Wait::Quiet => Bytes::from_static(KEEP_ALIVE_FRAME),
                Wait::Changed => {
                    let event = sub.events.borrow_and_update().clone();
                    if event.deleted {
                        let frame = deleted_frame(Some(&event.id), &event.view.id);
                        return Some((Ok(frame), (sub, true, guard)));
                    }
                    campaign_frame(&event)
                }
            };
            Some((Ok(frame), (sub, false, guard)))
        },
    ))
}

/// A store's stream: the campaigns that have not ended, then what changes among all.
fn store_stream(
    mut sub: StoreSubscription,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let mut snapshot = (**sub.snapshots.borrow_and_update()).clone();
    // What the subscriber is told of: not the campaigns that had ended before it came
    // (`store_changes` keeps it so).
    snapshot
        .campaigns
        .retain(|_, e| e.view.status != CampaignStatus::Ended);
    let mut first = Vec::new();
    for event in snapshot.campaigns.values() {
        first.extend_from_slice(&campaign_frame(event));
    }
    let state = (sub, snapshot, Subscriber::new(permit));
    opening(first).chain(futures::stream::unfold(
        state,
        |(mut sub, sent, guard)| async move {
            loop {
                match next_wait(&mut sub.snapshots, &mut sub.heartbeat).await {
                    Wait::Closed => return None,
                    Wait::Quiet => {
                        let frame = Bytes::from_static(KEEP_ALIVE_FRAME);
                        return Some((Ok(frame), (sub, sent, guard)));
                    }
                    Wait::Changed => {
                        let now = sub.snapshots.borrow_and_update().clone();
                        let (frames, told) = store_changes(&sent, &now);
                        if !frames.is_empty() {
                            return Some((Ok(frames), (sub, told, guard)));
                        }
                    }
                }
            }
        },
    ))
}

/// The events that take a store's subscriber from `sent` (what it was told) to `now`,
/// and what it has been told then. A campaign it never heard of that has ended is no
/// news, nor is its deletion.
fn store_changes(sent: &StoreSnapshot, now: &StoreSnapshot) -> (Bytes, StoreSnapshot) {
    let mut out = Vec::new();
    let mut told = StoreSnapshot::default();
    for (id, event) in &now.campaigns {
        let before = sent.campaigns.get(id);
        if before.is_none() && event.view.status == CampaignStatus::Ended {
            continue;
        }
        told.campaigns.insert(id.clone(), event.clone());
        if before.is_some_and(|b| b.id == event.id) {
            continue;
        }
        let was_active = before.is_some_and(|b| b.view.status == CampaignStatus::Active);
        if event.view.status == CampaignStatus::Active && !was_active {
            out.extend_from_slice(&render("activated", event));
        } else {
            out.extend_from_slice(&campaign_frame(event));
        }
    }
    for id in sent.campaigns.keys() {
        if !now.campaigns.contains_key(id) {
            // No `id:`: the deletion's event belongs to the campaign's own stream.
            out.extend_from_slice(&deleted_frame(None, id));
        }
    }
    (Bytes::from(out), told)
}

/// The `campaign` event, rendered once for every subscriber of the campaign.
fn campaign_frame(event: &Arc<LiveEvent>) -> Bytes {
    event.frame(|e| render("campaign", e))
}

fn render(name: &str, event: &LiveEvent) -> Bytes {
    // serde_json's compact form has no newline, so the data is one `data:` line.
    let data = serde_json::to_string(&LiveJson::from(&event.view)).unwrap_or_default();
    Bytes::from(format!("id: {}\nevent: {name}\ndata: {data}\n\n", event.id))
}

fn deleted_frame(event_id: Option<&str>, campaign_id: &str) -> Bytes {
    let data = serde_json::to_string(&LiveDeletedJson { id: campaign_id }).unwrap_or_default();
    let id = event_id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    Bytes::from(format!("{id}event: deleted\ndata: {data}\n\n"))
}
