//! [`AppState`]: what every handler can reach. Its own module, so that the handlers
//! (`routes`, `auth`, `openapi`) do not import the crate root that builds the router.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use firstcome_engine::Engine;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::keys::ApiKeys;

/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub keys: Arc<ApiKeys>,
    pub metrics: PrometheusHandle,
    pub shutting_down: Arc<AtomicBool>,
}
