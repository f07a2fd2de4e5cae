//! Request ids and the per-request tracing span.
//!
//! Every request gets an `x-request-id`: the client's, when it sends a valid one (so that
//! a caller's id follows its request through our logs), else a fresh UUID v4. The id is
//! returned in the response's `x-request-id` and is a field of the `request` span that
//! every log line written while handling the request sits in.
//!
//! A valid client id is 1 to 128 characters, each an ASCII letter or digit or one of
//! `-_.:;=+/@` (enough for UUIDs, ULIDs, W3C and AWS trace ids). Anything else is
//! replaced, not refused: a bad id is no reason to fail a request, but it must not
//! reach the logs, where it could forge lines or fields.

use axum::body::Body;
use axum::http::{HeaderName, Request};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::MapRequestLayer;
use tower_http::LatencyUnit;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnRequest, DefaultOnResponse, TraceLayer,
};
use tracing::Level;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

/// The request-id layers, outermost first: a bad client id dropped, an id set, the
/// request span, the id copied to the response.
pub(crate) type RequestIdLayers = ServiceBuilder<
    Stack<
        PropagateRequestIdLayer,
        Stack<
            RequestTrace,
            Stack<SetRequestIdLayer<MakeRequestUuid>, Stack<MapRequestLayer<RequestFn>, Identity>>,
        >,
    >,
>;

type RequestFn = fn(Request<Body>) -> Request<Body>;

type RequestTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<Body>) -> tracing::Span,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    (),
>;

/// Request ids and a span per request, for [`crate::router`] to put outermost, so that
/// the span covers everything the router does (metrics, body limits, panics caught).
pub(crate) fn layers() -> RequestIdLayers {
    ServiceBuilder::new()
        .layer(MapRequestLayer::new(drop_invalid_id as RequestFn))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span as fn(&Request<Body>) -> tracing::Span)
                // One line per request would be an access log at 100k requests/s:
                // debug only (FIRSTCOME_LOG=info,tower_http=debug turns it on).
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::DEBUG)
                        .latency_unit(LatencyUnit::Micros),
                )
                // A 5xx is logged where it happens, with its cause (ApiError::Internal);
                // and 503 `overloaded` under load must not flood the log at error level.
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
}

fn drop_invalid_id(mut req: Request<Body>) -> Request<Body> {
    let valid = req
        .headers()
        .get_all(&X_REQUEST_ID)
        .iter()
        .map(|v| is_valid(v.as_bytes()))
        // Two ids is no id: which one would the client expect back?
        .fold((0, true), |(n, ok), v| (n + 1, ok && v));
    if valid != (1, true) {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    req
}

fn is_valid(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:;=+/@".contains(b))
}

fn request_span(req: &Request<Body>) -> tracing::Span {
    // Set by SetRequestIdLayer before this span is made, and checked by drop_invalid_id.
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // The path, not the URI: queries carry cursors and filters nobody needs in a log.
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn valid_ids() {
        for ok in [
            "a",
            "0d9e4f3c-6a8b-4a52-9a3b-2f8e1c7d5b6a",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
        ] {
            assert!(is_valid(ok.as_bytes()), "{ok}");
        }
        let long = "x".repeat(129);
        for bad in ["", "a b", "a\"b", "line\nbreak", "é", long.as_str()] {
            assert!(!is_valid(bad.as_bytes()), "{bad:?}");
        }
    }
}
