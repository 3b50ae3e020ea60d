//! The `respan` exporter: trace records as Respan request logs, so that requests served by
//! the sidecar show on the Respan platform's Logs page.
//!
//! Batches go to Respan's bulk log endpoint (`POST /api/request-logs/bulk/`, body
//! `{"logs": [...]}`, at most 500 a call) with the platform API key as a bearer token. Field
//! names are Respan's public log parameters: `input`/`output` for the text, `latency` and
//! `time_to_first_token` in seconds, `timestamp` the end time.

use super::super::capture::Transcriber;
use super::super::record::TokenUsage;
use super::super::trace::{Metadata, Trace};
use super::http::{post, Poster};
use super::Failure;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;

/// Where logs go when the config names no endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.respan.ai/api/request-logs/bulk/";

/// About the size of one log with a short conversation, in bytes.
const LOG_SIZE: usize = 2048;

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
        let logs: Vec<Log> = batch.iter().map(|trace| log(trace, t)).collect();
        // Sized for the usual log up front: a batch's body grown by doubling is copied a
        // dozen times.
        let mut body = Vec::with_capacity(logs.len() * LOG_SIZE);
        if serde_json::to_writer(&mut body, &Bulk { logs }).is_err() {
            body.clear();
        }
        let headers = [
            ("content-type", "application/json"),
            ("authorization", self.authorization.as_str()),
        ];
        post(&self.poster, body, &headers).await
    }
}

/// The bulk endpoint's body.
#[derive(Serialize)]
struct Bulk<'a> {
    logs: Vec<Log<'a>>,
}

/// One Respan log, borrowed from its trace; a field with no value is left out.
#[derive(Serialize)]
pub struct Log<'a> {
    model: &'a str,
    log_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a RawValue>,
    stream: bool,
    status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
    latency: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_first_token: Option<f64>,
    start_time: &'a str,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<f64>,
    #[serde(flatten)]
    tokens: Option<Tokens<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_identifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_params: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_identifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_identifier: Option<&'a str>,
    metadata: LogMetadata<'a>,
    trace_unique_id: &'a str,
    span_unique_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_parent_id: Option<&'a str>,
    span_name: &'static str,
}

/// The log's `metadata`: the app's, and the sidecar's request id (`x-respan-request-id`), by
/// which an app finds its log on the platform.
struct LogMetadata<'a> {
    request_id: &'a str,
    app: Metadata<'a>,
}

impl Serialize for LogMetadata<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The app's own `request_id`, if any, gives way: one key, one meaning.
        let app = self.app.0.iter().filter(|(k, _)| k != REQUEST_ID_KEY);
        let app = app.map(|(k, v)| (k.as_str(), v.as_str()));
        s.collect_map(std::iter::once((REQUEST_ID_KEY, self.request_id)).chain(app))
    }
}

/// The metadata key that carries the sidecar's request id.
const REQUEST_ID_KEY: &str = "request_id";

/// Respan's token fields, and the whole usage beside them.
#[derive(Serialize)]
struct Tokens<'a> {
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_cache_hit_tokens: u64,
    prompt_cache_creation_tokens: u64,
    usage: &'a TokenUsage,
}

/// One trace record as a Respan log.
pub fn log<'a>(trace: &'a Trace, t: &Transcriber) -> Log<'a> {
    let r = &trace.record;
    let content = trace.content(t);
    let stamps = trace.stamps();
    let model = if r.served.upstream_model.is_empty() {
        r.requested_model.as_deref().unwrap_or_default()
    } else {
        &r.served.upstream_model
    };
    Log {
        model,
        log_type: if r.endpoint == "embeddings" {
            "embedding"
        } else {
            "chat"
        },
        input: content.input,
        output: content.output.message.as_deref(),
        stream: r.stream,
        status_code: r.status,
        error_message: r.error.as_deref(),
        latency: trace.latency.as_secs_f64(),
        time_to_first_token: r.time_to_first_token.map(|d| d.as_secs_f64()),
        start_time: &stamps.start_time,
        timestamp: &stamps.end_time,
        cost: trace.cost,
        tokens: r.usage.as_ref().map(|u| Tokens {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            prompt_cache_hit_tokens: u.cached_tokens,
            prompt_cache_creation_tokens: u.cache_write_tokens,
            usage: u,
        }),
        provider_id: non_empty(r.served.provider_type),
        customer_identifier: r.subject.customer_identifier.as_deref(),
        customer_params: r.subject.customer_params.as_ref(),
        thread_identifier: r.subject.thread_identifier.as_deref(),
        custom_identifier: r.subject.custom_identifier.as_deref(),
        metadata: LogMetadata {
            request_id: &trace.request_id,
            app: Metadata(&r.subject.metadata),
        },
        trace_unique_id: &stamps.trace_id,
        span_unique_id: &stamps.span_id,
        span_parent_id: stamps.parent_span_id.as_deref(),
        span_name: r.endpoint,
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}
