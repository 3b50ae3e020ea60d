//! A finished request's trace: its record, frozen, and the trace record's JSON (the same in
//! `/api/traces`, the jsonl file and the Logs page), written off the request path from the
//! text, ids and times made once when first needed.

use super::capture::{Output, Transcriber};
use super::cost;
use super::ids::hex;
use super::record::{with_system, AttemptRecord, InputText, RequestRecord, TokenUsage};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
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
    /// A cache hit's: what its answer cost when it was asked of the provider.
    pub cost_saved: Option<f64>,
    content: OnceLock<Content>,
    stamps: OnceLock<Stamps>,
    attempts_json: OnceLock<Box<RawValue>>,
}

/// A trace's ids and times as text: the trace record and the Respan log both write them, so
/// they are formatted once, by whichever is made first.
#[derive(Debug, Clone)]
pub struct Stamps {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub start_time: String,
    pub end_time: String,
}

/// The text of a request and of its answer, read back from their captures (nothing when the
/// request's text may not be logged).
#[derive(Debug, Default, Clone)]
struct Content {
    input: Option<Box<RawValue>>,
    output: Output,
}

/// A request's text, as the exporters read it.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    pub input: Option<&'a RawValue>,
    pub output: &'a Output,
}

impl Trace {
    /// Freezes a record at the request's end.
    pub fn finish(request_id: String, record: RequestRecord) -> Trace {
        let latency = record.started.elapsed();
        let (cost, cost_saved) = cost::of_record(&record);
        Trace {
            request_id,
            latency,
            ended_at: record.started_at + latency,
            cost,
            cost_saved,
            record,
            content: OnceLock::new(),
            stamps: OnceLock::new(),
            attempts_json: OnceLock::new(),
        }
    }

    /// The bytes of its input (its conversation, or its request body) and of its answer,
    /// captured or assembled (what its text, read back, is about as large as).
    pub fn bulk(&self) -> usize {
        let output = &self.record.output;
        let assembled = output.assembled_output().and_then(|o| o.message.as_ref());
        self.record.input.as_ref().map_or(0, InputText::size)
            + output.bytes().len()
            + assembled.map_or(0, |m| m.get().len())
    }

    /// A copy in allocations of its own: the input's bytes too, which a clone would share.
    /// Every field is named, so a new one must be copied here too.
    pub fn copied(&self) -> Trace {
        let Trace {
            request_id,
            record,
            latency,
            ended_at,
            cost,
            cost_saved,
            content,
            stamps,
            attempts_json,
        } = self;
        // A clone copies a conversation, and shares a body's bytes.
        let mut record = record.clone();
        if let Some(InputText::Body(body)) = &mut record.input {
            *body = Bytes::copy_from_slice(body);
        }
        Trace {
            request_id: request_id.clone(),
            record,
            latency: *latency,
            ended_at: *ended_at,
            cost: *cost,
            cost_saved: *cost_saved,
            content: content.clone(),
            stamps: stamps.clone(),
            attempts_json: attempts_json.clone(),
        }
    }

    /// The request's text (read on the first call, then shared by every exporter): the
    /// input as the request path took it or, when it did not, read from its body; the answer
    /// as the relay assembled it or, when it did not, read back from its capture.
    pub fn content(&self, transcriber: &Transcriber) -> Text<'_> {
        let read = self.content.get_or_init(|| {
            let r = &self.record;
            if r.disable_log {
                return Content::default();
            }
            let read_back = r.output.is_on() && r.output.assembled_output().is_none();
            Content {
                input: match &r.input {
                    Some(InputText::Body(body)) => (transcriber.input)(r.format, body),
                    Some(InputText::WithSystem { system, messages }) => {
                        with_system(system, messages)
                    }
                    Some(InputText::Conversation(_)) | None => None,
                },
                output: if read_back {
                    (transcriber.output)(r.output.format, r.output.stream, r.output.bytes())
                } else {
                    Output::default()
                },
            }
        });
        let taken = match &self.record.input {
            Some(InputText::Conversation(text)) if !self.record.disable_log => Some(&**text),
            _ => None,
        };
        Text {
            input: taken.or(read.input.as_deref()),
            // Never assembled for a request whose text may not be kept (its capture limit
            // is 0).
            output: self
                .record
                .output
                .assembled_output()
                .unwrap_or(&read.output),
        }
    }

    /// The trace record as JSON text, written at the end of `out`. It is not kept: the
    /// jsonl exporter writes it straight into its batch, and the admin API writes it again
    /// for each list it is asked for (kept, it was an allocation grown by doubling, copied
    /// into the batch, and held by every trace in the recent list).
    pub fn write_json(&self, transcriber: &Transcriber, out: &mut Vec<u8>) {
        let start = out.len();
        let record = self.record_json(self.content(transcriber));
        // Every field is a string, number, bool or JSON text already checked: this cannot
        // fail, and a record is never worth a panic (`null` if it did).
        if serde_json::to_writer(&mut *out, &record).is_err() {
            out.truncate(start);
            out.extend_from_slice(b"null");
        }
    }

    /// Its ids and times as text (made on the first call, then shared).
    pub fn stamps(&self) -> &Stamps {
        self.stamps.get_or_init(|| {
            let (ids, started) = (&self.record.ids, self.record.started_at);
            Stamps {
                trace_id: hex(&ids.trace_id),
                span_id: hex(&ids.span_id),
                parent_span_id: ids.parent_span_id.map(|p| hex(&p)),
                start_time: rfc3339(started),
                end_time: rfc3339(self.ended_at),
            }
        })
    }

    /// Every attempt as a JSON array (made on the first call, then shared by the trace
    /// record and the OTLP span).
    pub fn attempts_json(&self) -> &RawValue {
        self.attempts_json.get_or_init(|| {
            // Strings and numbers only: this cannot fail (`null` if it did).
            serde_json::value::to_raw_value(&Attempts(&self.record.attempts)).unwrap_or_default()
        })
    }

    /// The served model, provider and provider type, once an upstream was tried.
    fn served(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        let r = &self.record;
        let tried = !r.attempts.is_empty() || !r.served.provider.is_empty();
        let some = |v: &str| !v.is_empty() && tried;
        let model = r.served.upstream_model.as_str();
        let provider = r.served.provider.as_str();
        let kind = r.served.provider_type;
        (
            some(model).then_some(model),
            some(provider).then_some(provider),
            some(kind).then_some(kind),
        )
    }

    fn record_json<'a>(&'a self, content: Text<'a>) -> RecordJson<'a> {
        let r = &self.record;
        let (model, provider, provider_type) = self.served();
        let text = !r.disable_log;
        let stamps = self.stamps();
        RecordJson {
            trace_id: &stamps.trace_id,
            span_id: &stamps.span_id,
            parent_span_id: stamps.parent_span_id.as_deref(),
            request_id: &self.request_id,
            start_time: &stamps.start_time,
            end_time: &stamps.end_time,
            latency_ms: millis(self.latency),
            ttft_ms: r.time_to_first_token.map(millis),
            routing_time_ms: r.routing_time().map(millis),
            endpoint: r.endpoint,
            path: &r.path,
            requested_model: r.requested_model.as_deref(),
            model,
            provider,
            provider_type,
            stream: r.stream,
            status_code: r.status,
            error: r.error.as_deref(),
            body_end: r.body_end.as_str(),
            attempts: self.attempts_json(),
            usage: r.usage.as_ref(),
            cost_usd: self.cost,
            cost_saved_usd: self.cost_saved,
            cache_hit: r.cache_hit(),
            customer_identifier: r.subject.customer_identifier.as_deref(),
            customer_params: r.subject.customer_params.as_ref(),
            custom_identifier: r.subject.custom_identifier.as_deref(),
            thread_identifier: r.subject.thread_identifier.as_deref(),
            prompt_id: r.prompt_id.as_deref(),
            prompt_version: r.prompt_version,
            web_search: r.web_search,
            limit_rules: &r.limit_rules,
            limit_alerts: &r.limit_alerts,
            metadata: Metadata(&r.subject.metadata),
            input: content.input,
            output: content.output.message.as_deref(),
            output_truncated: text && r.output.truncated,
            finish_reasons: (text && r.output.is_on()).then_some(&content.output.finish_reasons),
        }
    }
}

/// The trace record's fields, borrowed from the trace: serialised once, straight to text.
#[derive(Serialize)]
struct RecordJson<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    parent_span_id: Option<&'a str>,
    request_id: &'a str,
    start_time: &'a str,
    end_time: &'a str,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    routing_time_ms: Option<f64>,
    endpoint: &'a str,
    path: &'a str,
    requested_model: Option<&'a str>,
    model: Option<&'a str>,
    provider: Option<&'a str>,
    provider_type: Option<&'a str>,
    stream: bool,
    status_code: u16,
    error: Option<&'a str>,
    body_end: &'static str,
    attempts: &'a RawValue,
    usage: Option<&'a TokenUsage>,
    cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_saved_usd: Option<f64>,
    cache_hit: bool,
    customer_identifier: Option<&'a str>,
    customer_params: Option<&'a Value>,
    custom_identifier: Option<&'a str>,
    thread_identifier: Option<&'a str>,
    metadata: Metadata<'a>,
    /// The `prompt` template the request was rendered from.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_version: Option<u64>,
    /// What became of a web search the app offered: `anthropic_web_search`,
    /// `gemini_google_search` or `left_out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    web_search: Option<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    limit_rules: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    limit_alerts: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    output_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reasons: Option<&'a Vec<String>>,
}

/// Every attempt, as the trace record shows them.
struct Attempts<'a>(&'a [AttemptRecord]);

impl Serialize for Attempts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Attempt<'a> {
            model: &'a str,
            provider: &'a str,
            status_code: Option<u16>,
            error: Option<&'a str>,
            latency_ms: f64,
        }
        s.collect_seq(self.0.iter().map(|a| Attempt {
            model: &a.model,
            provider: &a.provider,
            status_code: a.status_code,
            error: a.error.as_deref(),
            latency_ms: millis(a.latency),
        }))
    }
}

/// `metadata` as a JSON object of strings.
pub struct Metadata<'a>(pub &'a [(String, String)]);

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// Milliseconds with a tenth of a microsecond kept: `812.4`, not `812.400000001`.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 1e4
}

pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::Wire;

    fn raw(text: &str) -> Option<Box<RawValue>> {
        RawValue::from_string(text.into()).ok()
    }

    pub(crate) fn transcriber() -> Transcriber {
        Transcriber {
            input: |_, _| raw(r#"[{"role": "user", "content": "secret text"}]"#),
            output: |_, _, _| Output {
                message: raw(r#"{"role": "assistant", "content": "answer text"}"#),
                finish_reasons: vec!["stop".into()],
                truncated: false,
            },
        }
    }

    fn json_text(t: &Trace) -> String {
        let mut out = Vec::new();
        t.write_json(&transcriber(), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn parsed(t: &Trace) -> Value {
        serde_json::from_str(&json_text(t)).unwrap()
    }

    pub(crate) fn record() -> RequestRecord {
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
            outcome: crate::telemetry::record::Outcome::Ok,
            status_code: Some(200),
            error: None,
            latency: Duration::from_millis(5),
        });
        r.subject.metadata = vec![("n".into(), "1".into())];
        r.input = Some(InputText::Body(bytes::Bytes::from_static(b"{}")));
        r.format = Some(Wire::OpenAi);
        r.output.start(Some(Wire::OpenAi), false, 100);
        r.output.push(b"{}");
        r
    }

    #[test]
    fn a_copy_shares_no_bytes_with_its_original() {
        let t = Trace::finish("req".into(), record());
        t.content(&transcriber());
        let copy = t.copied();
        let (Some(InputText::Body(a)), Some(InputText::Body(b))) =
            (&t.record.input, &copy.record.input)
        else {
            panic!("the record's input is its body");
        };
        assert_eq!(a, b);
        assert_ne!(a.as_ptr(), b.as_ptr());
        let (a, b) = (t.record.output.bytes(), copy.record.output.bytes());
        assert_eq!(a, b);
        assert_ne!(a.as_ptr(), b.as_ptr());
        let (a, b) = (t.content.get().unwrap(), copy.content.get().unwrap());
        let (a, b) = (a.input.as_ref().unwrap(), b.input.as_ref().unwrap());
        assert_ne!(a.get().as_ptr(), b.get().as_ptr());
        assert_eq!(parsed(&copy), parsed(&t));
    }

    #[test]
    fn the_record_has_the_contracts_fields() {
        let t = Trace::finish("req".into(), record());
        let v = parsed(&t);
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
            "finish_reasons",
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
    fn a_conversation_taken_on_the_request_path_is_not_read_again() {
        let mut r = record();
        let taken = r#"[{"role":"user","content":"taken"}]"#;
        r.input = raw(taken).map(InputText::Conversation);
        let t = Trace::finish("req".into(), r);
        let no_reading = Transcriber {
            input: |_, _| panic!("the conversation was read again"),
            ..transcriber()
        };
        assert_eq!(t.content(&no_reading).input.map(RawValue::get), Some(taken));
        assert_eq!(parsed(&t)["input"][0]["content"], "taken");
        let copy = t.copied();
        let (Some(InputText::Conversation(a)), Some(InputText::Conversation(b))) =
            (&t.record.input, &copy.record.input)
        else {
            panic!("the copy keeps the conversation");
        };
        assert_eq!(a.get(), b.get());
        assert_ne!(a.get().as_ptr(), b.get().as_ptr());
        let mut r = record();
        r.input = raw(taken).map(InputText::Conversation);
        r.disable_log = true;
        let t = Trace::finish("req".into(), r);
        assert!(t.content(&transcriber()).input.is_none());
    }

    /// An Anthropic conversation's system prompt goes in front of its messages when the
    /// trace's text is first read (not on the request path), and not at all without leave.
    #[test]
    fn a_system_prompt_given_apart_is_spliced_when_the_text_is_read() {
        let with_system = |disable_log| {
            let mut r = record();
            r.input = Some(InputText::WithSystem {
                system: raw(r#""be brief""#).unwrap(),
                messages: raw(r#"[{"role":"user","content":"hi"}]"#).unwrap(),
            });
            r.disable_log = disable_log;
            Trace::finish("req".into(), r)
        };
        let no_reading = Transcriber {
            input: |_, _| panic!("the body was read again"),
            ..transcriber()
        };
        let t = with_system(false);
        assert_eq!(
            t.content(&no_reading).input.map(RawValue::get),
            Some(r#"[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]"#)
        );
        assert_eq!(parsed(&t)["input"][1]["content"], "hi");
        assert!(with_system(true).content(&no_reading).input.is_none());
    }

    #[test]
    fn disable_log_keeps_no_text() {
        let mut r = record();
        r.disable_log = true;
        let t = Trace::finish("req".into(), r);
        let text = json_text(&t);
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
