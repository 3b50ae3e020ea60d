//! The `respan` exporter: trace records as Respan request logs, so that requests served by
//! the sidecar show on the Respan platform's Logs page.
//!
//! Batches go to Respan's bulk log endpoint (`POST /api/request-logs/bulk/`, body
//! `{"logs": [...]}`, at most 500 a call) with the platform API key as a bearer token. Field
//! names are Respan's public log parameters: `input`/`output` for the text, `latency` and
//! `time_to_first_token` in seconds, `timestamp` the end time.

use super::super::capture::Transcriber;
use super::super::trace::{rfc3339, Trace};
use super::http::{post, Poster};
use super::Failure;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Where logs go when the config names no endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.respan.ai/api/request-logs/bulk/";

pub struct Respan {
    poster: Poster,
    authorization: String,
}

impl Respan {
    pub fn new(endpoint: String, api_key: String) -> Result<Respan, String> {
        Ok(Respan {
            poster: Poster::new(&endpoint)?,
            authorization: format!("Bearer {api_key}"),
        })
    }

    pub async fn send(&mut self, batch: &[Arc<Trace>], t: &Transcriber) -> Result<(), Failure> {
        let logs: Vec<Value> = batch.iter().map(|trace| log(trace, t)).collect();
        let body = serde_json::to_vec(&json!({ "logs": logs })).unwrap_or_default();
        let headers = [
            ("content-type", "application/json"),
            ("authorization", self.authorization.as_str()),
        ];
        post(&self.poster, body, &headers).await
    }
}

/// One trace record as a Respan log.
pub fn log(trace: &Trace, t: &Transcriber) -> Value {
    let r = &trace.record;
    let record = trace.json(t);
    let mut log = Map::new();
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            log.insert(key.to_string(), value);
        }
    };
    let model = if r.served.upstream_model.is_empty() {
        r.requested_model.clone().unwrap_or_default()
    } else {
        r.served.upstream_model.clone()
    };
    put("model", model.into());
    put(
        "log_type",
        if r.endpoint == "embeddings" {
            "embedding"
        } else {
            "chat"
        }
        .into(),
    );
    put("input", record.get("input").cloned().unwrap_or(Value::Null));
    put(
        "output",
        record.get("output").cloned().unwrap_or(Value::Null),
    );
    put("stream", r.stream.into());
    put("status_code", r.status.into());
    put("error_message", json!(r.error));
    put("latency", trace.latency.as_secs_f64().into());
    put(
        "time_to_first_token",
        json!(r.time_to_first_token.map(|d| d.as_secs_f64())),
    );
    put("start_time", rfc3339(r.started_at).into());
    put("timestamp", rfc3339(trace.ended_at).into());
    put("cost", json!(trace.cost));
    if let Some(u) = &r.usage {
        put("prompt_tokens", u.prompt_tokens.into());
        put("completion_tokens", u.completion_tokens.into());
        put("prompt_cache_hit_tokens", u.cached_tokens.into());
        put("prompt_cache_creation_tokens", u.cache_write_tokens.into());
        put("usage", record.get("usage").cloned().unwrap_or(Value::Null));
    }
    put("provider_id", json!(non_empty(r.served.provider_type)));
    put("customer_identifier", json!(r.subject.customer_identifier));
    put("customer_params", json!(r.subject.customer_params));
    put("thread_identifier", json!(r.subject.thread_identifier));
    put("custom_identifier", json!(r.subject.custom_identifier));
    put(
        "metadata",
        record.get("metadata").cloned().unwrap_or(Value::Null),
    );
    put("trace_unique_id", record["trace_id"].clone());
    put("span_unique_id", record["span_id"].clone());
    put("span_parent_id", record["parent_span_id"].clone());
    put("span_name", r.endpoint.into());
    Value::Object(log)
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}
