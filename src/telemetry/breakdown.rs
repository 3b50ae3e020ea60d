//! `request_breakdown`: what a request cost and how it went, handed back to the app inside
//! its own answer (a top-level field of a JSON answer, or the last event of a stream).

use super::cost::request_cost;
use super::record::RequestRecord;
use super::trace::rfc3339;
use serde_json::{json, Map, Value};
use std::time::SystemTime;

/// The breakdown of a request whose answer (of `status`) is being written now: its latency
/// so far.
pub fn of(record: &RequestRecord, status: u16) -> Value {
    let usage = record.usage.unwrap_or_default();
    let cost = request_cost(
        record.usage.as_ref(),
        &record.served.upstream_model,
        record.price_override,
    );
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost": cost,
        "model": record.served.upstream_model.as_str(),
        "provider": record.served.provider.as_str(),
        "cached": record.cache_hit(),
        "timestamp": rfc3339(SystemTime::now()),
        "status_code": status,
        "stream": record.stream,
        "latency": record.started.elapsed().as_secs_f64(),
        "ttft": record.time_to_first_token.map(|d| d.as_secs_f64()),
        "routing_time": record.routing_time().map(|d| d.as_secs_f64()),
        "attempts": record.attempts.len(),
        "metadata": record.subject.metadata.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    })
}

/// A JSON object answer with `request_breakdown` added as its last field (the body is
/// returned unchanged when it is not an object).
pub fn add_to_body(body: Vec<u8>, breakdown: &Value) -> Vec<u8> {
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    object.insert("request_breakdown".into(), breakdown.clone());
    serde_json::to_vec(&object).unwrap_or(body)
}
