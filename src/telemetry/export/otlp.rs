//! The `otlp_http` exporter: each trace record as one OTLP span, posted to a collector over
//! OTLP/HTTP (protobuf by default, OTLP/JSON if configured), using OpenTelemetry's own
//! generated message types.
//!
//! Span name and attributes follow the OpenTelemetry GenAI semantic conventions
//! (`gen_ai.*`, span kind CLIENT, named `{operation} {model}`); what they have no name for
//! is under `respan.*`. Message text (`gen_ai.input.messages`, `gen_ai.output.messages`) is
//! only there when the trace may hold it. An app's `traceparent` makes the span its child.

use super::super::capture::Transcriber;
use super::super::trace::{Attempts, Trace};
use super::http::{post, Poster};
use super::{Failure, OtlpEncoding};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const SCOPE: &str = "respan-sidecar";

pub struct Otlp {
    poster: Poster,
    encoding: OtlpEncoding,
    headers: Vec<(String, String)>,
}

impl Otlp {
    pub fn new(
        endpoint: String,
        encoding: OtlpEncoding,
        headers: Vec<(String, String)>,
    ) -> Result<Otlp, String> {
        Ok(Otlp {
            poster: Poster::new(&endpoint)?,
            encoding,
            headers,
        })
    }

    pub async fn send(&mut self, batch: &[Arc<Trace>], t: &Transcriber) -> Result<(), Failure> {
        let request = request(batch, t);
        let (body, content_type) = match self.encoding {
            OtlpEncoding::Protobuf => (request.encode_to_vec(), "application/x-protobuf"),
            OtlpEncoding::Json => (
                serde_json::to_vec(&request).unwrap_or_default(),
                "application/json",
            ),
        };
        let mut headers: Vec<(&str, &str)> = vec![("content-type", content_type)];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        post(&self.poster, body, &headers).await
    }
}

/// One export request holding a span per trace.
pub fn request(batch: &[Arc<Trace>], t: &Transcriber) -> ExportTraceServiceRequest {
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| SCOPE.to_string());
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", service),
                    text("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans: batch.iter().map(|trace| span_of(trace, t)).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// GenAI's `gen_ai.operation.name` for an endpoint (others keep the endpoint's own name).
fn operation(endpoint: &str) -> &str {
    match endpoint {
        "chat.completions" | "anthropic.messages" => "chat",
        "gemini.generate_content" => "generate_content",
        other => other,
    }
}

/// GenAI's `gen_ai.provider.name` for a provider type.
fn provider_name(kind: &str) -> &str {
    match kind {
        "gemini" => "gcp.gemini",
        "azure_openai" => "azure.ai.openai",
        other => other,
    }
}

/// GenAI's message attributes hold a JSON array of messages.
fn as_array(json: &RawValue) -> String {
    let json = json.get();
    if json.starts_with('[') {
        json.to_string()
    } else {
        format!("[{json}]")
    }
}

fn span_of(trace: &Trace, t: &Transcriber) -> Span {
    let r = &trace.record;
    let content = trace.content(t);
    let op = operation(r.endpoint);
    let request_model = r.requested_model.as_deref().unwrap_or_default();
    // Room for every attribute but metadata: the list is not grown as it is filled.
    let mut a = Vec::with_capacity(40);
    a.extend([
        text("gen_ai.operation.name", op),
        text("respan.request_id", trace.request_id.as_str()),
        text("respan.endpoint", r.endpoint),
        boolean("respan.stream", r.stream),
        int("http.response.status_code", r.status.into()),
        float("respan.latency_ms", trace.latency.as_secs_f64() * 1e3),
        int("respan.attempts", r.attempts.len() as i64),
        boolean("respan.cache_hit", r.cache_hit()),
    ]);
    let mut opt = |key: &'static str, value: Option<&str>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            a.push(text(key, v));
        }
    };
    opt("gen_ai.request.model", Some(request_model));
    opt("gen_ai.response.model", Some(&r.served.upstream_model));
    opt(
        "gen_ai.provider.name",
        Some(provider_name(r.served.provider_type)),
    );
    opt("respan.provider", Some(&r.served.provider));
    opt(
        "gen_ai.conversation.id",
        r.subject.thread_identifier.as_deref(),
    );
    opt(
        "respan.thread_identifier",
        r.subject.thread_identifier.as_deref(),
    );
    opt(
        "respan.customer_identifier",
        r.subject.customer_identifier.as_deref(),
    );
    opt(
        "respan.custom_identifier",
        r.subject.custom_identifier.as_deref(),
    );
    opt("respan.error", r.error.as_deref());
    if r.failed() {
        a.push(text("error.type", r.status.to_string()));
    }
    if let Some(ttft) = r.time_to_first_token {
        a.push(float("respan.ttft_ms", ttft.as_secs_f64() * 1e3));
    }
    if let Some(u) = &r.usage {
        a.push(int("gen_ai.usage.input_tokens", u.prompt_tokens as i64));
        a.push(int(
            "gen_ai.usage.output_tokens",
            u.completion_tokens as i64,
        ));
        a.push(int("respan.usage.cached_tokens", u.cached_tokens as i64));
        a.push(int(
            "respan.usage.cache_write_tokens",
            u.cache_write_tokens as i64,
        ));
        a.push(int(
            "respan.usage.reasoning_tokens",
            u.reasoning_tokens as i64,
        ));
    }
    if let Some(cost) = trace.cost {
        a.push(float("respan.cost_usd", cost));
    }
    if let Some(saved) = trace.cost_saved {
        a.push(float("respan.cost_saved_usd", saved));
    }
    let reasons = &content.output.finish_reasons;
    if !reasons.is_empty() {
        a.push(strings("gen_ai.response.finish_reasons", reasons));
    }
    for (k, v) in &r.subject.metadata {
        a.push(text(format!("respan.metadata.{k}"), v.as_str()));
    }
    if let Ok(attempts) = serde_json::to_string(&Attempts(&r.attempts)) {
        a.push(text("respan.attempts.detail", attempts));
    }
    if let Some(input) = &content.input {
        a.push(text("gen_ai.input.messages", as_array(input)));
    }
    if let Some(output) = &content.output.message {
        a.push(text("gen_ai.output.messages", as_array(output)));
    }
    let failed = r.status >= 500 || r.status == 0 || r.error.is_some();
    Span {
        trace_id: r.ids.trace_id.to_vec(),
        span_id: r.ids.span_id.to_vec(),
        parent_span_id: r.ids.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        name: if request_model.is_empty() {
            op.to_string()
        } else {
            format!("{op} {request_model}")
        },
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: nanos(r.started_at),
        end_time_unix_nano: nanos(trace.ended_at),
        attributes: a,
        status: Some(Status {
            message: if failed {
                r.error.clone().unwrap_or_default()
            } else {
                String::new()
            },
            code: if failed {
                status::StatusCode::Error
            } else {
                status::StatusCode::Unset
            } as i32,
        }),
        ..Span::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn attribute(key: impl Into<String>, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

fn float(key: &str, value: f64) -> KeyValue {
    attribute(key, any_value::Value::DoubleValue(value))
}

fn boolean(key: &str, value: bool) -> KeyValue {
    attribute(key, any_value::Value::BoolValue(value))
}

fn strings(key: &str, values: &[String]) -> KeyValue {
    let values = values
        .iter()
        .map(|v| AnyValue {
            value: Some(any_value::Value::StringValue(v.clone())),
        })
        .collect();
    attribute(key, any_value::Value::ArrayValue(ArrayValue { values }))
}
