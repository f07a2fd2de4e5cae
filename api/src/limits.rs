//! What one request may cost: its body's size, told from its headers, and its time.
//!
//! - A `Content-Length` over the route's limit is answered `413` before any of the body
//!   is read. Without this the answer waited for the body, and a client that announced
//!   a large body and sent none waited forever.
//! - A request whose body has not arrived, or whose answer has not started, after
//!   [`RouterLimits::request_timeout`] is answered `408`. The header-read and idle
//!   timeouts are the connection's (`connections`).

use std::time::Duration;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::routes::campaigns::ISSUE_BATCH_MAX_BODY_BYTES;

#[derive(Debug, Clone, Copy)]
pub struct RouterLimits {
    /// The largest body of every route but a bulk issue's.
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

impl Default for RouterLimits {
    fn default() -> Self {
        RouterLimits {
            max_body_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RouterLimits {
    /// The body limit of the route `path` names. The one route with a larger limit is
    /// named here because this check runs before routing (`DefaultBodyLimit` on that
    /// route says the same while the body is read).
    fn body_limit(&self, path: &str) -> usize {
        if path.ends_with("/issue-batch") {
            ISSUE_BATCH_MAX_BODY_BYTES.max(self.max_body_bytes)
        } else {
            self.max_body_bytes
        }
    }
}

/// `413` at once for a `Content-Length` over the limit; else the request, answered
/// `408` if it has not been read and answered within the timeout. One layer for both,
/// so a request pays for one boxed future here, not two.
pub(crate) async fn enforce(limits: RouterLimits, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.body_limit(req.uri().path()) as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}
