//! One log line per request, at `info`, on stderr (JSON with `RESPAN_LOG_FORMAT=json`): what
//! an operator greps for. Never message text, never a key: only names, numbers and ids.

use super::trace::{millis, Trace};

/// Logs `trace`'s line under the `respan::access` target (filterable with `RESPAN_LOG`).
pub fn line(trace: &Trace) {
    let r = &trace.record;
    let usage = r.usage.unwrap_or_default();
    tracing::info!(
        target: "respan::access",
        request_id = %trace.request_id,
        endpoint = r.endpoint,
        requested_model = r.requested_model.as_deref().unwrap_or(""),
        model = %r.served.upstream_model,
        provider = %r.served.provider,
        status = r.status,
        attempts = r.attempts.len(),
        latency_ms = millis(trace.latency),
        ttft_ms = r.time_to_first_token.map(millis),
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        cost_usd = trace.cost,
        stream = r.stream,
        "request"
    );
}
