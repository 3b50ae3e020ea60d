//! A finished request's trace: its record, frozen, and the trace record's JSON (the same in
//! `/api/traces`, the jsonl file and the Logs page), made once when first needed, off the
//! request path.

use super::capture::Transcriber;
use super::cost::request_cost;
use super::ids::hex;
use super::record::{RequestRecord, TokenUsage};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// A request that is over: what the metrics, the exporters and the admin API read.
#[derive(Debug)]
pub struct Trace {
    pub request_id: String,
    pub record: RequestRecord,
    pub latency: Duration,
    pub ended_at: SystemTime,
    pub cost: Option<f64>,
    json: OnceLock<Value>,
}

impl Trace {
    /// Freezes a record at the request's end.
    pub fn finish(request_id: String, record: RequestRecord) -> Trace {
        let latency = record.started.elapsed();
        let cost = request_cost(
            record.usage.as_ref(),
            &record.served.upstream_model,
            record.price_override,
        );
        Trace {
            request_id,
            latency,
            ended_at: record.started_at + latency,
            cost,
            record,
            json: OnceLock::new(),
        }
    }

    /// The trace record as JSON (made on the first call, then shared).
    pub fn json(&self, transcriber: &Transcriber) -> &Value {
        self.json.get_or_init(|| self.build(transcriber))
    }

    fn build(&self, transcriber: &Transcriber) -> Value {
        let r = &self.record;
        let served = r.attempts.last().is_some() || !r.served.provider.is_empty();
        let mut v = json!({
            "trace_id": hex(&r.ids.trace_id),
            "span_id": hex(&r.ids.span_id),
            "parent_span_id": r.ids.parent_span_id.map(|p| hex(&p)),
            "request_id": self.request_id,
            "start_time": rfc3339(r.started_at),
            "end_time": rfc3339(self.ended_at),
            "latency_ms": millis(self.latency),
            "ttft_ms": r.time_to_first_token.map(millis),
            "routing_time_ms": r.routing_time().map(millis),
            "endpoint": r.endpoint,
            "path": r.path,
            "requested_model": r.requested_model,
            "model": served.then_some(&r.served.upstream_model).filter(|m| !m.is_empty()),
            "provider": served.then_some(&r.served.provider).filter(|p| !p.is_empty()),
            "provider_type": served.then_some(r.served.provider_type).filter(|p| !p.is_empty()),
            "stream": r.stream,
            "status_code": r.status,
            "error": r.error,
            "body_end": r.body_end.as_str(),
            "attempts": r.attempts.iter().map(|a| json!({
                "model": a.model,
                "provider": a.provider,
                "status_code": a.status_code,
                "error": a.error,
                "latency_ms": millis(a.latency),
            })).collect::<Vec<_>>(),
            "usage": r.usage.as_ref().map(usage_json),
            "cost_usd": self.cost,
            "cache_hit": r.cache_hit,
            "customer_identifier": r.subject.customer_identifier,
            "customer_params": r.subject.customer_params,
            "custom_identifier": r.subject.custom_identifier,
            "thread_identifier": r.subject.thread_identifier,
            "metadata": r.subject.metadata.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        });
        if !r.disable_log {
            self.add_content(&mut v, transcriber);
        }
        v
    }

    /// `input`, `output` and `finish_reasons`: only for a request whose text may be logged.
    fn add_content(&self, v: &mut Value, transcriber: &Transcriber) {
        let r = &self.record;
        let Some(obj) = v.as_object_mut() else { return };
        if let Some(input) = r
            .input
            .as_deref()
            .and_then(|b| (transcriber.input)(r.format, b))
        {
            obj.insert("input".into(), input);
        }
        if r.output.is_on() {
            let out = (transcriber.output)(r.output.format, r.output.stream, r.output.bytes());
            if let Some(message) = out.message {
                obj.insert("output".into(), message);
            }
            if r.output.truncated {
                obj.insert("output_truncated".into(), true.into());
            }
            obj.insert("finish_reasons".into(), json!(out.finish_reasons));
        }
    }

    /// The answer's finish reasons (read from the captured output, when there is one).
    pub fn finish_reasons(&self, transcriber: &Transcriber) -> Vec<String> {
        self.json(transcriber)
            .get("finish_reasons")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn usage_json(u: &TokenUsage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "cached_tokens": u.cached_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "reasoning_tokens": u.reasoning_tokens,
    })
}

/// Milliseconds with a tenth of a microsecond kept: `812.4`, not `812.400000001`.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 1e4
}

pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::capture::{Format, Output};
    use crate::telemetry::record::AttemptRecord;

    fn transcriber() -> Transcriber {
        Transcriber {
            input: |_, _| Some(json!([{"role": "user", "content": "secret text"}])),
            output: |_, _, _| Output {
                message: Some(json!({"role": "assistant", "content": "answer text"})),
                finish_reasons: vec!["stop".into()],
            },
        }
    }

    fn record() -> RequestRecord {
        let mut r = RequestRecord::new();
        r.endpoint = "chat.completions";
        r.requested_model = Some("fast".into());
        r.served.upstream_model = "gpt-4.1".into();
        r.served.provider = "openai".into();
        r.status = 200;
        r.usage = Some(TokenUsage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            total_tokens: 1100,
            ..TokenUsage::default()
        });
        r.attempts.push(AttemptRecord {
            model: "fast".into(),
            provider: "openai".into(),
            label: "fast".into(),
            outcome: "ok",
            status_code: Some(200),
            error: None,
            latency: Duration::from_millis(5),
        });
        r.subject.metadata = vec![("n".into(), "1".into())];
        r.input = Some(bytes::Bytes::from_static(b"{}"));
        r.format = Format::OpenAi;
        r.output.start(Format::OpenAi, false, 100);
        r.output.push(b"{}");
        r
    }

    #[test]
    fn the_record_has_the_contracts_fields() {
        let t = Trace::finish("req".into(), record());
        let v = t.json(&transcriber());
        for key in [
            "trace_id",
            "span_id",
            "parent_span_id",
            "request_id",
            "start_time",
            "end_time",
            "latency_ms",
            "ttft_ms",
            "endpoint",
            "requested_model",
            "model",
            "provider",
            "stream",
            "status_code",
            "error",
            "attempts",
            "usage",
            "cost_usd",
            "cache_hit",
            "customer_identifier",
            "custom_identifier",
            "thread_identifier",
            "metadata",
            "input",
            "output",
        ] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        assert_eq!(v["trace_id"].as_str().unwrap().len(), 32);
        assert_eq!(v["span_id"].as_str().unwrap().len(), 16);
        assert_eq!(v["metadata"]["n"], "1");
        assert_eq!(v["attempts"][0]["status_code"], 200);
        // gpt-4.1 is in the catalog: 1000 input and 100 output tokens have a price.
        assert!(v["cost_usd"].as_f64().unwrap() > 0.0);
        assert!(v["start_time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn disable_log_keeps_no_text() {
        let mut r = record();
        r.disable_log = true;
        let t = Trace::finish("req".into(), r);
        let text = t.json(&transcriber()).to_string();
        assert!(
            !text.contains("secret text") && !text.contains("answer text"),
            "{text}"
        );
        assert!(text.contains("\"usage\""));
    }

    #[test]
    fn millis_are_rounded() {
        assert_eq!(millis(Duration::from_nanos(812_400_001)), 812.4);
    }
}
