//! [`AppState`]: what every handler can reach. Its own module, so that the handlers
//! (`routes`, `auth`, `openapi`) do not import the crate root that builds the router.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use firstcome_engine::Engine;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::keys::ApiKeys;

/// Cheap to clone: one reference count. axum clones the state for every request, and
/// cloning the handles one by one (the engine alone holds eight) cost about 2.5 % of
/// the server's CPU under load (docs/performance.md).
#[derive(Clone)]
pub struct AppState(Arc<Handles>);

/// The handles behind [`AppState`], reached through `Deref` (`state.engine`).
pub struct Handles {
    pub engine: Engine,
    pub keys: Arc<ApiKeys>,
    pub metrics: PrometheusHandle,
    pub shutting_down: Arc<AtomicBool>,
    /// Exports streaming at once (`routes::export`): each holds a blocking thread and a
    /// few chunks of rows.
    pub exports: Arc<tokio::sync::Semaphore>,
    /// The public live streams and page are served (`Config::live_events`).
    pub live_events: bool,
    /// A permit per open live stream (`Config::max_live_subscribers`), held by the stream.
    pub live_subscribers: Arc<tokio::sync::Semaphore>,
}

/// How many coupon exports may stream at once; one more is `503 overloaded`.
pub const EXPORTS_AT_ONCE: usize = 4;

impl AppState {
    pub fn new(handles: Handles) -> AppState {
        AppState(Arc::new(handles))
    }
}

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}
