//! The state of one request, carried through Pingora's phases.

use crate::endpoint::Endpoint;
use crate::state::Snapshot;
use crate::telemetry::metrics::InflightGuard;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-request state. Created by Pingora for every request (`new_ctx`), filled in by
/// `request_filter`, read by `logging`.
pub struct RequestCtx {
    pub started: Instant,
    /// `x-respan-request-id`: 32 hex digits, unique per request.
    pub request_id: String,
    pub endpoint: Endpoint,
    /// The config this request runs on, from its start to its end.
    pub snapshot: Option<Arc<Snapshot>>,
    pub served: Served,
    _inflight: InflightGuard,
}

/// What served the request, for response headers, metrics and traces.
#[derive(Debug, Default, Clone)]
pub struct Served {
    /// The `model` metric label (see `routing::Route::metric_label`).
    pub model_label: String,
    /// The provider's configured name.
    pub provider: String,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// Upstream calls made (tries of every model).
    pub attempts: u32,
    /// Arrival to the first body byte written to the app, for streamed answers.
    pub time_to_first_byte: Option<Duration>,
    pub stream: bool,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: format!("{:032x}", rand::random::<u128>()),
            endpoint: Endpoint::NotFound,
            snapshot: None,
            served: Served::default(),
            _inflight: InflightGuard::new(),
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
