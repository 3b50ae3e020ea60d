//! Every Prometheus metric the gateway exports, in one registry.
//!
//! Label values come from a small closed set (endpoint names, route labels, provider names,
//! status codes): never a customer id, a key or a free-form model name (see `routing`).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Buckets for whole requests and time to first token: LLM calls span milliseconds (cache,
/// echo) to minutes (long generations).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

pub struct Metrics {
    registry: Registry,
    /// `endpoint`, `model`, `provider`, `status`.
    pub requests: IntCounterVec,
    /// `endpoint`, `model`, `provider`.
    pub request_duration: HistogramVec,
    /// `model`, `provider`.
    pub time_to_first_token: HistogramVec,
    pub inflight: IntGauge,
    /// `provider`, `model`, `outcome` (`ok`, `http_4xx`, `http_5xx`, `connect_error`, ...).
    pub upstream_attempts: IntCounterVec,
    /// `provider`, `model`.
    pub retries: IntCounterVec,
    /// `from_model`, `to_model`.
    pub fallbacks: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            register(&registry, Box::new(c.clone()));
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let h = HistogramVec::new(opts, labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            register(&registry, Box::new(h.clone()));
            h
        };
        let requests = counter(
            "respan_requests_total",
            "Requests answered, by endpoint, model, provider and HTTP status.",
            &["endpoint", "model", "provider", "status"],
        );
        let request_duration = histogram(
            "respan_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            &["endpoint", "model", "provider"],
        );
        let time_to_first_token = histogram(
            "respan_time_to_first_token_seconds",
            "Time from the request's arrival to the first byte of a streamed answer.",
            &["model", "provider"],
        );
        let upstream_attempts = counter(
            "respan_upstream_attempts_total",
            "Upstream calls made, by how they ended.",
            &["provider", "model", "outcome"],
        );
        let retries = counter(
            "respan_retries_total",
            "Upstream calls that were retries of the same model.",
            &["provider", "model"],
        );
        let fallbacks = counter(
            "respan_fallbacks_total",
            "Moves from a failed model to the next one of the plan.",
            &["from_model", "to_model"],
        );
        let inflight = IntGauge::new(
            "respan_inflight_requests",
            "Requests being served right now.",
        )
        .unwrap_or_else(|e| unreachable!("metric: {e}"));
        register(&registry, Box::new(inflight.clone()));
        Metrics {
            registry,
            requests,
            request_duration,
            time_to_first_token,
            inflight,
            upstream_attempts,
            retries,
            fallbacks,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec only fails on malformed metric families, which we never build.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

fn register(registry: &Registry, collector: Box<dyn prometheus::core::Collector>) {
    // Names are fixed and distinct, so registration cannot collide.
    let _ = registry.register(collector);
}

/// Keeps `respan_inflight_requests` right however a request ends: counted up when made,
/// down when dropped.
pub struct InflightGuard(());

impl InflightGuard {
    pub fn new() -> Self {
        metrics().inflight.inc();
        InflightGuard(())
    }
}

impl Default for InflightGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        metrics().inflight.dec();
    }
}
