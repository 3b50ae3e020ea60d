//! The `otlp_http` exporter: each trace record as one OTLP span, posted to a collector over
//! OTLP/HTTP (protobuf by default, OTLP/JSON if configured), using OpenTelemetry's own
//! generated message types.
//!
//! Span name and attributes follow the OpenTelemetry GenAI semantic conventions
//! (`gen_ai.*`, span kind CLIENT, named `{operation} {model}`); what they have no name for
//! is under `respan.*`. Message text (`gen_ai.input.messages`, `gen_ai.output.messages`) is
//! only there when the trace may hold it. An app's `traceparent` makes the span its child.

use super::super::capture::Transcriber;
use super::super::trace::Trace;
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
use prost::encoding::{
    bool, double, encode_key, encode_varint, encoded_len_varint, int64, key_len, message, WireType,
};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
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
        let (body, content_type) = match self.encoding {
            OtlpEncoding::Protobuf => (protobuf(batch, t), "application/x-protobuf"),
            OtlpEncoding::Json => (
                serde_json::to_vec(&request(batch, t)).unwrap_or_default(),
                "application/json",
            ),
        };
        let mut headers: Vec<(&str, &str)> = vec![("content-type", content_type)];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        post(&self.poster, body, &headers).await
    }
}

/// One export request holding a span per trace, as prost's types (for OTLP/JSON).
pub fn request(batch: &[Arc<Trace>], t: &Transcriber) -> ExportTraceServiceRequest {
    let spans = batch.iter().map(|trace| {
        let parts = SpanParts::of(trace, t);
        Span {
            attributes: parts.attributes.iter().map(Attr::key_value).collect(),
            status: Some(parts.status),
            ..parts.head.span()
        }
    });
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(PROCESS.0.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(PROCESS.1.clone()),
                spans: spans.collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The same request as [`request`], encoded as protobuf with the attributes written from
/// what they borrow: a `String` per key and per value (the messages' text included), each
/// made and dropped once per span, cost the exporter more than the encoding. The bytes are
/// prost's own (fields in tag order; tested).
pub fn protobuf(batch: &[Arc<Trace>], t: &Transcriber) -> Vec<u8> {
    let parts: Vec<SpanParts> = batch.iter().map(|trace| SpanParts::of(trace, t)).collect();
    let (resource, scope) = &*PROCESS;
    let spans_len: usize = parts.iter().map(|p| field_len(SPANS, p.len)).sum();
    let scope_spans_len = message::encoded_len(SCOPE_FIELD, scope) + spans_len;
    let resource_spans_len =
        message::encoded_len(RESOURCE, resource) + field_len(SCOPE_SPANS, scope_spans_len);
    let mut out = Vec::with_capacity(field_len(RESOURCE_SPANS, resource_spans_len));
    delimited(RESOURCE_SPANS, resource_spans_len, &mut out);
    message::encode(RESOURCE, resource, &mut out);
    delimited(SCOPE_SPANS, scope_spans_len, &mut out);
    message::encode(SCOPE_FIELD, scope, &mut out);
    for span in &parts {
        delimited(SPANS, span.len, &mut out);
        span.encode(&mut out);
    }
    out
}

/// The process's resource and the instrumentation scope, the same in every batch.
static PROCESS: LazyLock<(Resource, InstrumentationScope)> =
    LazyLock::new(|| (resource(), scope()));

fn resource() -> Resource {
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| SCOPE.to_string());
    Resource {
        attributes: vec![
            Attr::text("service.name", service).key_value(),
            Attr::text("service.version", env!("CARGO_PKG_VERSION")).key_value(),
        ],
        ..Resource::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..InstrumentationScope::default()
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

/// GenAI's message attributes hold a JSON array of messages: one message is put in one.
fn messages(json: &RawValue) -> Value<'_> {
    let json = json.get();
    if json.starts_with('[') {
        Value::Text(Cow::Borrowed(json))
    } else {
        Value::InArray(json)
    }
}

/// A span: its fields before the attributes (tags 1-8) and its attributes, borrowed from the
/// trace, and its status (tag 15) as prost's type.
struct SpanParts<'a> {
    head: Head<'a>,
    attributes: Vec<Attr<'a>>,
    status: Status,
    /// The length of the span's encoding.
    len: usize,
}

impl<'a> SpanParts<'a> {
    fn of(trace: &'a Trace, t: &Transcriber) -> SpanParts<'a> {
        let r = &trace.record;
        let content = trace.content(t);
        let op = operation(r.endpoint);
        let request_model = r.requested_model.as_deref().unwrap_or_default();
        // Room for every attribute but metadata: the list is not grown as it is filled.
        let mut a = Vec::with_capacity(40);
        a.extend([
            Attr::text("gen_ai.operation.name", op),
            Attr::text("respan.request_id", trace.request_id.as_str()),
            Attr::text("respan.endpoint", r.endpoint),
            Attr::new("respan.stream", Value::Bool(r.stream)),
            Attr::int("http.response.status_code", r.status.into()),
            Attr::float("respan.latency_ms", trace.latency.as_secs_f64() * 1e3),
            Attr::int("respan.attempts", r.attempts.len() as i64),
            Attr::new("respan.cache_hit", Value::Bool(r.cache_hit())),
        ]);
        let thread = r.subject.thread_identifier.as_deref();
        let optional = [
            ("gen_ai.request.model", Some(request_model)),
            (
                "gen_ai.response.model",
                Some(r.served.upstream_model.as_str()),
            ),
            (
                "gen_ai.provider.name",
                Some(provider_name(r.served.provider_type)),
            ),
            ("respan.provider", Some(r.served.provider.as_str())),
            ("gen_ai.conversation.id", thread),
            ("respan.thread_identifier", thread),
            (
                "respan.customer_identifier",
                r.subject.customer_identifier.as_deref(),
            ),
            (
                "respan.custom_identifier",
                r.subject.custom_identifier.as_deref(),
            ),
            ("respan.error", r.error.as_deref()),
        ];
        // Only those with a value.
        a.extend(optional.into_iter().filter_map(|(key, value)| {
            let value = value.filter(|v| !v.is_empty())?;
            Some(Attr::text(key, value))
        }));
        if r.failed() {
            a.push(Attr::text("error.type", r.status.to_string()));
        }
        if let Some(ttft) = r.time_to_first_token {
            a.push(Attr::float("respan.ttft_ms", ttft.as_secs_f64() * 1e3));
        }
        if let Some(u) = &r.usage {
            let counts = [
                ("gen_ai.usage.input_tokens", u.prompt_tokens),
                ("gen_ai.usage.output_tokens", u.completion_tokens),
                ("respan.usage.cached_tokens", u.cached_tokens),
                ("respan.usage.cache_write_tokens", u.cache_write_tokens),
                ("respan.usage.reasoning_tokens", u.reasoning_tokens),
            ];
            a.extend(counts.map(|(key, n)| Attr::int(key, n as i64)));
        }
        if let Some(cost) = trace.cost {
            a.push(Attr::float("respan.cost_usd", cost));
        }
        if let Some(saved) = trace.cost_saved {
            a.push(Attr::float("respan.cost_saved_usd", saved));
        }
        let reasons = &content.output.finish_reasons;
        if !reasons.is_empty() {
            a.push(Attr::new(
                "gen_ai.response.finish_reasons",
                Value::Texts(reasons),
            ));
        }
        for (k, v) in &r.subject.metadata {
            a.push(Attr::text(format!("respan.metadata.{k}"), v.as_str()));
        }
        a.push(Attr::text(
            "respan.attempts.detail",
            trace.attempts_json().get(),
        ));
        if let Some(input) = &content.input {
            a.push(Attr::new("gen_ai.input.messages", messages(input)));
        }
        if let Some(output) = &content.output.message {
            a.push(Attr::new("gen_ai.output.messages", messages(output)));
        }
        let failed = r.status >= 500 || r.status == 0 || r.error.is_some();
        let head = Head {
            trace_id: &r.ids.trace_id,
            span_id: &r.ids.span_id,
            parent_span_id: r.ids.parent_span_id.as_ref().map_or(&[], |p| p),
            name: (op, request_model),
            start: nanos(r.started_at),
            end: nanos(trace.ended_at),
        };
        let status = Status {
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
        };
        let len = Self::len(&head, &a, &status);
        SpanParts {
            head,
            attributes: a,
            status,
            len,
        }
    }

    /// The length of the encoding of a span made of these.
    fn len(head: &Head, attributes: &[Attr], status: &Status) -> usize {
        let attributes: usize = attributes
            .iter()
            .map(|a| field_len(ATTRIBUTES, a.len()))
            .sum();
        head.len() + attributes + message::encoded_len(STATUS, status)
    }

    /// Writes the span's fields in tag order, as prost would.
    fn encode(&self, out: &mut Vec<u8>) {
        self.head.encode(out);
        for a in &self.attributes {
            delimited(ATTRIBUTES, a.len(), out);
            a.encode(out);
        }
        message::encode(STATUS, &self.status, out);
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A span's fields before its attributes, borrowed from the trace: made as prost's `Span`,
/// each id was a `Vec` and the name a `String` formatted per span.
struct Head<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    /// Empty for a span with no parent.
    parent_span_id: &'a [u8],
    /// `{operation} {model}`, or the operation alone when there is no model.
    name: (&'a str, &'a str),
    start: u64,
    end: u64,
}

impl Head<'_> {
    const KIND: span::SpanKind = span::SpanKind::Client;

    fn name_len(&self) -> usize {
        match self.name {
            (op, "") => op.len(),
            (op, model) => op.len() + 1 + model.len(),
        }
    }

    /// The length of its encoding (prost leaves out empty and zero fields).
    fn len(&self) -> usize {
        let bytes = |tag, b: &[u8]| {
            if b.is_empty() {
                0
            } else {
                field_len(tag, b.len())
            }
        };
        let time = |tag, t: u64| if t == 0 { 0 } else { key_len(tag) + 8 };
        bytes(TRACE_ID, self.trace_id)
            + bytes(SPAN_ID, self.span_id)
            + bytes(PARENT_SPAN_ID, self.parent_span_id)
            + match self.name_len() {
                0 => 0,
                len => field_len(NAME, len),
            }
            + key_len(KIND)
            + encoded_len_varint(Self::KIND as u64)
            + time(START, self.start)
            + time(END, self.end)
    }

    /// Writes its fields in tag order, as prost would.
    fn encode(&self, out: &mut Vec<u8>) {
        for (tag, bytes) in [
            (TRACE_ID, self.trace_id),
            (SPAN_ID, self.span_id),
            (PARENT_SPAN_ID, self.parent_span_id),
        ] {
            if !bytes.is_empty() {
                delimited(tag, bytes.len(), out);
                out.extend_from_slice(bytes);
            }
        }
        let len = self.name_len();
        if len > 0 {
            delimited(NAME, len, out);
            let (op, model) = self.name;
            out.extend_from_slice(op.as_bytes());
            if !model.is_empty() {
                out.push(b' ');
                out.extend_from_slice(model.as_bytes());
            }
        }
        encode_key(KIND, WireType::Varint, out);
        encode_varint(Self::KIND as u64, out);
        for (tag, time) in [(START, self.start), (END, self.end)] {
            if time != 0 {
                encode_key(tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&time.to_le_bytes());
            }
        }
    }

    /// As prost's type (for OTLP/JSON).
    fn span(&self) -> Span {
        let name = match self.name {
            (op, "") => op.to_string(),
            (op, model) => format!("{op} {model}"),
        };
        Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            parent_span_id: self.parent_span_id.to_vec(),
            name,
            kind: Self::KIND as i32,
            start_time_unix_nano: self.start,
            end_time_unix_nano: self.end,
            ..Span::default()
        }
    }
}

/// Field numbers of the OTLP messages written by hand (opentelemetry/proto/...).
const RESOURCE_SPANS: u32 = 1; // ExportTraceServiceRequest.resource_spans
const RESOURCE: u32 = 1; // ResourceSpans.resource
const SCOPE_SPANS: u32 = 2; // ResourceSpans.scope_spans
const SCOPE_FIELD: u32 = 1; // ScopeSpans.scope
const SPANS: u32 = 2; // ScopeSpans.spans
const TRACE_ID: u32 = 1; // Span.trace_id
const SPAN_ID: u32 = 2; // Span.span_id
const PARENT_SPAN_ID: u32 = 4; // Span.parent_span_id
const NAME: u32 = 5; // Span.name
const KIND: u32 = 6; // Span.kind
const START: u32 = 7; // Span.start_time_unix_nano
const END: u32 = 8; // Span.end_time_unix_nano
const ATTRIBUTES: u32 = 9; // Span.attributes
const STATUS: u32 = 15; // Span.status
const KEY: u32 = 1; // KeyValue.key
const VALUE: u32 = 2; // KeyValue.value
const STRING_VALUE: u32 = 1; // AnyValue.string_value
const BOOL_VALUE: u32 = 2; // AnyValue.bool_value
const INT_VALUE: u32 = 3; // AnyValue.int_value
const DOUBLE_VALUE: u32 = 4; // AnyValue.double_value
const ARRAY_VALUE: u32 = 5; // AnyValue.array_value
const VALUES: u32 = 1; // ArrayValue.values

/// One span attribute, borrowing what it can from the trace.
struct Attr<'a> {
    key: Cow<'a, str>,
    value: Value<'a>,
}

/// An attribute's value (`AnyValue`).
enum Value<'a> {
    Text(Cow<'a, str>),
    /// Text written inside `[` and `]`, without being copied into a `String` first.
    InArray(&'a str),
    Bool(bool),
    Int(i64),
    Float(f64),
    Texts(&'a [String]),
}

impl<'a> Attr<'a> {
    fn new(key: impl Into<Cow<'a, str>>, value: Value<'a>) -> Self {
        Attr {
            key: key.into(),
            value,
        }
    }

    fn text(key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Self {
        Attr::new(key, Value::Text(value.into()))
    }

    fn int(key: &'a str, value: i64) -> Self {
        Attr::new(key, Value::Int(value))
    }

    fn float(key: &'a str, value: f64) -> Self {
        Attr::new(key, Value::Float(value))
    }

    /// As prost's type (for OTLP/JSON).
    fn key_value(&self) -> KeyValue {
        let text = |t: &str| AnyValue {
            value: Some(any_value::Value::StringValue(t.to_string())),
        };
        let value = match &self.value {
            Value::Text(t) => any_value::Value::StringValue(t.to_string()),
            Value::InArray(t) => any_value::Value::StringValue(format!("[{t}]")),
            Value::Bool(b) => any_value::Value::BoolValue(*b),
            Value::Int(i) => any_value::Value::IntValue(*i),
            Value::Float(f) => any_value::Value::DoubleValue(*f),
            Value::Texts(all) => any_value::Value::ArrayValue(ArrayValue {
                values: all.iter().map(|t| text(t)).collect(),
            }),
        };
        KeyValue {
            key: self.key.to_string(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    /// The length of its `KeyValue` encoding.
    fn len(&self) -> usize {
        field_len(KEY, self.key.len()) + field_len(VALUE, self.value.len())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        delimited(KEY, self.key.len(), out);
        out.extend_from_slice(self.key.as_bytes());
        delimited(VALUE, self.value.len(), out);
        self.value.encode(out);
    }
}

impl Value<'_> {
    /// The length of its `AnyValue` encoding (a oneof: written even when zero).
    fn len(&self) -> usize {
        match self {
            Value::Text(t) => field_len(STRING_VALUE, t.len()),
            Value::InArray(t) => field_len(STRING_VALUE, t.len() + 2),
            Value::Bool(b) => bool::encoded_len(BOOL_VALUE, b),
            Value::Int(i) => int64::encoded_len(INT_VALUE, i),
            Value::Float(f) => double::encoded_len(DOUBLE_VALUE, f),
            Value::Texts(all) => field_len(ARRAY_VALUE, Self::array_len(all)),
        }
    }

    /// The length of an `ArrayValue` of texts.
    fn array_len(all: &[String]) -> usize {
        all.iter()
            .map(|t| field_len(VALUES, field_len(STRING_VALUE, t.len())))
            .sum()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Text(t) => text_field(STRING_VALUE, t, out),
            Value::InArray(t) => {
                delimited(STRING_VALUE, t.len() + 2, out);
                out.push(b'[');
                out.extend_from_slice(t.as_bytes());
                out.push(b']');
            }
            Value::Bool(b) => bool::encode(BOOL_VALUE, b, out),
            Value::Int(i) => int64::encode(INT_VALUE, i, out),
            Value::Float(f) => double::encode(DOUBLE_VALUE, f, out),
            Value::Texts(all) => {
                delimited(ARRAY_VALUE, Self::array_len(all), out);
                for t in all.iter() {
                    delimited(VALUES, field_len(STRING_VALUE, t.len()), out);
                    text_field(STRING_VALUE, t, out);
                }
            }
        }
    }
}

/// The length of a length-delimited field whose content is `len` bytes.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A length-delimited field's key and length (its content follows).
fn delimited(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn text_field(tag: u32, text: &str, out: &mut Vec<u8>) {
    delimited(tag, text.len(), out);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::record::RequestRecord;
    use crate::telemetry::trace::tests::{record, transcriber};
    use prost::Message;

    #[test]
    fn the_protobuf_written_by_hand_is_prosts_own() {
        let t = transcriber();
        let mut failed = record();
        failed.status = 502;
        failed.error = Some("the provider broke off".into());
        failed.usage = None;
        failed.ids.parent_span_id = Some([7; 8]);
        failed
            .subject
            .metadata
            .push(("ünïcode".into(), "ü".repeat(200)));
        let bare = RequestRecord::new();
        let batch: Vec<Arc<Trace>> = [record(), failed, bare]
            .into_iter()
            .map(|r| Arc::new(Trace::finish("req".into(), r)))
            .collect();
        let by_hand = protobuf(&batch, &t);
        assert_eq!(by_hand, request(&batch, &t).encode_to_vec());
        let decoded = ExportTraceServiceRequest::decode(by_hand.as_slice()).unwrap();
        let spans = &decoded.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 3);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        // A record with no model: the operation alone, no trailing space.
        assert_eq!(names, ["chat fast", "chat fast", "not_found"]);
        assert_eq!(spans[0].trace_id, batch[0].record.ids.trace_id);
        assert_eq!(spans[0].span_id, batch[0].record.ids.span_id);
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[1].parent_span_id, [7; 8]);
        assert!(spans
            .iter()
            .all(|s| s.kind == span::SpanKind::Client as i32));
        // One message is written inside an array.
        let output = spans[0]
            .attributes
            .iter()
            .find(|a| a.key == "gen_ai.output.messages")
            .and_then(|a| a.value.clone()?.value);
        let expected = r#"[{"role": "assistant", "content": "answer text"}]"#;
        assert_eq!(output, Some(any_value::Value::StringValue(expected.into())));
        let reasons = spans[0]
            .attributes
            .iter()
            .find(|a| a.key == "gen_ai.response.finish_reasons");
        assert!(reasons.is_some());
        assert_eq!(protobuf(&[], &t), request(&[], &t).encode_to_vec());
    }
}
