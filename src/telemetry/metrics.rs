//! Every Prometheus metric the gateway exports, in one registry.
//!
//! Label values come from a small closed set (endpoint names, route labels, provider names,
//! status codes): never a customer id, a key or a free-form model name (see `routing`).

use super::record::Outcome;
use super::trace::Trace;
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Buckets for whole requests and time to first token: LLM calls span 10 ms (cache hits,
/// short answers) to 10 minutes (long generations, the default upstream timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
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
    /// `model`, `provider`, `type` (`prompt` or `completion`).
    pub tokens: IntCounterVec,
    /// `model`, `provider`.
    pub cost: CounterVec,
    /// `result` (`hit` or `miss`).
    pub cache_lookups: IntCounterVec,
    /// `op` (`connect`, `get` or `set`): failed calls to the shared cache's Redis.
    pub cache_errors: IntCounterVec,
    /// `result` (`success` or `failure`).
    pub config_reloads: IntCounterVec,
    /// `exporter`, `result` (`ok`, `error` or `dropped`).
    pub trace_exports: IntCounterVec,
    /// `reason` (one of [`REJECTION_REASONS`]).
    rejected_requests: IntCounterVec,
    /// `provider`, `model`: 0 closed, 1 half-open, 2 open (see `health`).
    circuit_states: IntGaugeVec,
    /// `rule`, `result` (`allowed`, `blocked`, `alert`).
    limit_decisions: IntCounterVec,
}

/// Why a request is refused for what it is (`respan_rejected_requests_total`'s `reason`).
pub const REJECTION_REASONS: [&str; 5] = [
    "body_too_large",
    "too_deep",
    "headers_too_large",
    "overloaded",
    "unauthorized",
];

/// Trace export results, each exported at 0 for every configured exporter.
pub const EXPORT_RESULTS: [&str; 3] = ["ok", "error", "dropped"];

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
        let tokens = counter(
            "respan_tokens_total",
            "Tokens the providers reported, by type (prompt or completion).",
            &["model", "provider", "type"],
        );
        let cost = CounterVec::new(
            Opts::new(
                "respan_cost_usd_total",
                "What the requests cost in USD, at catalog or configured prices.",
            ),
            &["model", "provider"],
        )
        .unwrap_or_else(|e| unreachable!("metric: {e}"));
        register(&registry, Box::new(cost.clone()));
        let cache_lookups = counter(
            "respan_cache_lookups_total",
            "Response cache lookups, by result.",
            &["result"],
        );
        let cache_errors = counter(
            "respan_cache_errors_total",
            "Failed calls to the shared cache (each served as a miss), by operation.",
            &["op"],
        );
        let config_reloads = counter(
            "respan_config_reloads_total",
            "Config reloads, by result.",
            &["result"],
        );
        let trace_exports = counter(
            "respan_trace_exports_total",
            "Trace records handed to exporters, by exporter and result.",
            &["exporter", "result"],
        );
        let rejected_requests = counter(
            "respan_rejected_requests_total",
            "Requests refused for what they are before any provider was asked, by reason.",
            &["reason"],
        );
        // Series whose label values are known now start at 0, so `rate()` and alerts work
        // before the first event.
        let zero = |c: &IntCounterVec, values: &[&str]| {
            for v in values {
                c.with_label_values(&[v]).inc_by(0);
            }
        };
        zero(&config_reloads, &["success", "failure"]);
        zero(&cache_lookups, &["hit", "miss"]);
        zero(&cache_errors, &["connect", "get", "set"]);
        zero(&rejected_requests, &REJECTION_REASONS);
        let inflight = IntGauge::new(
            "respan_inflight_requests",
            "Requests being served right now.",
        )
        .unwrap_or_else(|e| unreachable!("metric: {e}"));
        register(&registry, Box::new(inflight.clone()));
        let limit_decisions = counter(
            "respan_limit_decisions_total",
            "Limit rule decisions on requests, by rule and result (allowed, blocked, alert).",
            &["rule", "result"],
        );
        let circuit_states = IntGaugeVec::new(
            Opts::new(
                "respan_circuit_state",
                "Each provider and model circuit that has seen a failure: 0 closed, 1 half-open, 2 open.",
            ),
            &["provider", "model"],
        )
        .unwrap_or_else(|e| unreachable!("metric: {e}"));
        register(&registry, Box::new(circuit_states.clone()));
        Metrics {
            registry,
            requests,
            request_duration,
            time_to_first_token,
            inflight,
            upstream_attempts,
            retries,
            fallbacks,
            tokens,
            cost,
            cache_lookups,
            cache_errors,
            config_reloads,
            trace_exports,
            rejected_requests,
            circuit_states,
            limit_decisions,
        }
    }

    /// Counts a limit rule's decision on a request.
    pub fn limit_decision(&self, rule: &str, result: &str) {
        self.limit_decisions
            .with_label_values(&[rule, result])
            .inc();
    }

    /// Starts a limit rule's decision series at 0 (at start and when a reload adds it).
    pub fn limit_rule_known(&self, rule: &str) {
        for result in ["allowed", "blocked", "alert"] {
            self.limit_decisions
                .with_label_values(&[rule, result])
                .inc_by(0);
        }
    }

    /// Sets a circuit's state (0 closed, 1 half-open, 2 open).
    pub fn circuit_state(&self, provider: &str, model: &str, state: i64) {
        self.circuit_states
            .with_label_values(&[provider, model])
            .set(state);
    }

    /// Counts a request refused for `reason` (one of [`REJECTION_REASONS`]).
    pub fn rejected(&self, reason: &str) {
        self.rejected_requests.with_label_values(&[reason]).inc();
    }

    /// Starts an exporter's `respan_trace_exports_total` series at 0.
    pub fn exporter_started(&self, exporter: &str) {
        for result in EXPORT_RESULTS {
            self.trace_exports
                .with_label_values(&[exporter, result])
                .inc_by(0);
        }
    }

    /// Counts a finished request: every metric of a request comes from its record, here.
    pub fn observe(&self, trace: &Trace) {
        let r = &trace.record;
        let model = non_empty(&r.served.model_label, "other");
        let provider = non_empty(&r.served.provider, "none");
        let status = http::StatusCode::from_u16(r.status).ok();
        let code = status.as_ref().map_or("0", http::StatusCode::as_str);
        self.requests
            .with_label_values(&[r.endpoint, model, provider, code])
            .inc();
        self.request_duration
            .with_label_values(&[r.endpoint, model, provider])
            .observe(trace.latency.as_secs_f64());
        if let (true, Some(ttft)) = (r.stream, r.time_to_first_token) {
            self.time_to_first_token
                .with_label_values(&[model, provider])
                .observe(ttft.as_secs_f64());
        }
        if let Some(u) = &r.usage {
            let tokens = |kind: &str, n: u64| {
                self.tokens
                    .with_label_values(&[model, provider, kind])
                    .inc_by(n)
            };
            tokens("prompt", u.prompt_tokens);
            tokens("completion", u.completion_tokens);
        }
        if let Some(cost) = trace.cost {
            self.cost.with_label_values(&[model, provider]).inc_by(cost);
        }
        let mut previous: Option<&super::record::AttemptRecord> = None;
        for a in &r.attempts {
            self.upstream_attempts
                .with_label_values(&[&a.provider, &a.label, a.outcome.as_str()])
                .inc();
            match previous {
                // Not made (its circuit was open): neither a retry nor a fallback; a later
                // attempt of another model is the fallback from it.
                _ if a.outcome == Outcome::Skipped => {}
                Some(p) if p.model == a.model => {
                    self.retries
                        .with_label_values(&[&a.provider, &a.label])
                        .inc();
                }
                Some(p) => {
                    self.fallbacks
                        .with_label_values(&[&p.label, &a.label])
                        .inc();
                }
                None => {}
            }
            previous = Some(a);
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

fn non_empty<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
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
