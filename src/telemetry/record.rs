//! The one record of a request: filled in as the request goes, whatever path serves it, and
//! the single source that both the metrics and the trace are derived from when it ends.
//!
//! Filling it in is cheap on purpose: names are copied once per attempt, captured text is
//! kept as the bytes that went by (bounded), and nothing is parsed or serialised until the
//! request is over (`trace`, off the request path).

use super::capture::Capture;
use super::ids::TraceIds;
use crate::catalog::Price;
use crate::wire::Wire;
use bytes::Bytes;
use compact_str::CompactString;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::{Duration, Instant, SystemTime};

/// How the answer's body ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyEnd {
    /// Written to its end (or there was nothing to write).
    #[default]
    Complete,
    /// The app closed its connection first.
    ClientGone,
    /// The upstream failed after the answer had started.
    UpstreamFailed,
    /// A shutdown's grace period ended it.
    ShutDown,
}

impl BodyEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyEnd::Complete => "complete",
            BodyEnd::ClientGone => "client_gone",
            BodyEnd::UpstreamFailed => "upstream_failed",
            BodyEnd::ShutDown => "shutdown",
        }
    }
}

/// What the response cache did for a request (its `x-respan-cache` header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheUse {
    /// Not a `cache_enabled` request, or one that may not use the cache.
    #[default]
    NotLooked,
    Miss,
    Hit,
}

impl CacheUse {
    /// The `x-respan-cache` value, for a request that looked.
    pub fn header(self) -> Option<&'static str> {
        match self {
            CacheUse::NotLooked => None,
            CacheUse::Miss => Some("miss"),
            CacheUse::Hit => Some("hit"),
        }
    }
}

impl RequestRecord {
    /// Answered from the cache, with no upstream call.
    pub fn cache_hit(&self) -> bool {
        self.cache == CacheUse::Hit
    }

    /// The request failed: an error status, no answer at all (status 0), or an answer
    /// broken off after it began. (A realtime session's 101 is a success.)
    pub fn failed(&self) -> bool {
        self.status >= 400 || self.status == 0 || self.error.is_some()
    }
}

/// Token counts as a provider reported them, in one shape for every provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TokenUsage {
    /// Every input token, cached and cache-written ones included.
    pub prompt_tokens: u64,
    /// Every output token, reasoning ones included.
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Input tokens read from the provider's prompt cache (billed at the cached price).
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache (Anthropic bills these higher).
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning (billed as output).
    pub reasoning_tokens: u64,
}

/// One upstream call of the request.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The model name the plan tried (before routing renamed it).
    pub model: CompactString,
    pub provider: CompactString,
    /// The model's metric label (see `Served::model_label`).
    pub label: CompactString,
    pub outcome: Outcome,
    /// The answer's status; `None` when no answer came (connect error, timeout).
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency: Duration,
}

/// How one upstream attempt ended: the `outcome` label of
/// `respan_upstream_attempts_total`, and what the provider's circuit learns from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with a 1xx (an accepted WebSocket upgrade), 2xx or 3xx.
    Ok,
    Http429,
    Http4xx,
    Http5xx,
    ConnectError,
    Timeout,
    /// The connection failed after the request went out.
    Broken,
    /// A stream that failed after it began.
    StreamError,
    /// The app went away before the attempt ended.
    ClientGone,
    /// Not made: the circuit is open.
    Skipped,
}

impl Outcome {
    /// An attempt answered with `status`.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            100..=399 => Outcome::Ok,
            429 => Outcome::Http429,
            400..=499 => Outcome::Http4xx,
            _ => Outcome::Http5xx,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Http429 => "http_429",
            Outcome::Http4xx => "http_4xx",
            Outcome::Http5xx => "http_5xx",
            Outcome::ConnectError => "connect_error",
            Outcome::Timeout => "timeout",
            Outcome::Broken => "broken",
            Outcome::StreamError => "stream_error",
            Outcome::ClientGone => "client_gone",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Who and what a request is about, from the Respan parameters.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Inline up to 24 bytes, as a customer's id usually is: an auth key's default is
    /// copied to each of its requests without an allocation.
    pub customer_identifier: Option<CompactString>,
    /// `customer_params` as given (`name`, `email`, ...).
    pub customer_params: Option<Value>,
    pub thread_identifier: Option<String>,
    pub custom_identifier: Option<String>,
    /// Values kept as strings, as the trace shows them.
    pub metadata: Vec<(String, String)>,
}

impl Subject {
    /// `metadata` with every value as a string (strings as they are, others as JSON).
    pub fn metadata_strings(metadata: &Map<String, Value>) -> Vec<(String, String)> {
        metadata
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }
}

/// What served the request in the end (also the `x-respan-*` answer headers).
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The `model` metric label (see `routing::Route::metric_label`).
    pub model_label: CompactString,
    /// The provider's configured name; its kind's name for the trace's `provider_type`.
    pub provider: CompactString,
    pub provider_type: &'static str,
    /// The model name sent upstream.
    pub upstream_model: CompactString,
    /// Upstream calls made (tries of every model).
    pub attempts: u32,
}

/// A request's conversation, for its trace.
#[derive(Debug, Clone)]
pub enum InputText {
    /// Taken from the body's fields when the request path parsed it: the exporters only
    /// copy it out, where reading it from the body again cost them a parse of the whole body.
    Conversation(Box<RawValue>),
    /// A conversation whose system prompt was given apart (Anthropic's `system`), taken
    /// from the body's fields as they came: made one list (the prompt as a first turn) only
    /// when its text is read. Making that list's JSON text parses all of it again, which a
    /// long session's request did not wait for.
    WithSystem {
        system: Box<RawValue>,
        messages: Box<RawValue>,
    },
    /// The body as the app sent it, read when the trace is first made: a passthrough body,
    /// which the request path does not parse, and a Gemini body, whose text parts are joined.
    Body(Bytes),
}

impl InputText {
    /// Its bytes: about as many as its text read back.
    pub fn size(&self) -> usize {
        match self {
            InputText::Conversation(text) => text.get().len(),
            InputText::WithSystem { system, messages } => system.get().len() + messages.get().len(),
            InputText::Body(body) => body.len(),
        }
    }
}

/// `[{"role":"system","content":<system>}, ...messages]`, spliced as text; `None` when the
/// messages are not a list.
pub fn with_system(system: &RawValue, messages: &RawValue) -> Option<Box<RawValue>> {
    let inner = messages.get().strip_prefix('[')?.strip_suffix(']')?.trim();
    let sep = if inner.is_empty() { "" } else { "," };
    let text = format!(
        r#"[{{"role":"system","content":{}}}{sep}{inner}]"#,
        system.get()
    );
    RawValue::from_string(text).ok()
}

/// Everything known about one request, as it goes. Its clone copies every field but an
/// `input` body, whose bytes it shares (`Trace::copied` copies them): a new field that
/// shares on clone must be copied there too.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub started: Instant,
    pub started_at: SystemTime,
    pub ids: TraceIds,
    /// The `endpoint` label (`chat.completions`, `anthropic.messages`, ...).
    pub endpoint: &'static str,
    /// `POST /v1/...` for passthrough paths; the method and path the app used.
    pub path: String,
    pub requested_model: Option<CompactString>,
    /// The format the app speaks: how its input (and output) are read back.
    pub format: Option<Wire>,
    pub stream: bool,
    pub subject: Subject,
    /// No message text in the trace (the request's `disable_log`, or `capture_content: false`).
    pub disable_log: bool,
    pub request_breakdown: bool,
    pub served: Served,
    pub attempts: Vec<AttemptRecord>,
    /// The served route's price override (`routes[].pricing`).
    pub price_override: Option<Price>,
    /// When the first upstream call began: the time before it is routing time.
    pub upstream_started: Option<Instant>,
    /// Arrival to the first body byte written to the app, for streamed answers.
    pub time_to_first_token: Option<Duration>,
    pub usage: Option<TokenUsage>,
    /// The status the app got (0: none was written).
    pub status: u16,
    pub error: Option<String>,
    pub body_end: BodyEnd,
    /// What the response cache did for it.
    pub cache: CacheUse,
    /// The `prompt` template the request was rendered from.
    pub prompt_id: Option<String>,
    /// The version of that template, when it has a number.
    pub prompt_version: Option<u64>,
    /// What became of a web search the app offered: the provider's own search, or left out
    /// (`translate::web_search::WebSearchUse`).
    pub web_search: Option<&'static str>,
    /// The `limits:` rules the request was checked against, and those whose alert threshold
    /// it crossed.
    pub limit_rules: Vec<String>,
    pub limit_alerts: Vec<String>,
    /// `cache_options.omit_log` on a hit: metrics only, no trace.
    pub omit_trace: bool,
    /// The conversation as the app sent it, for the trace.
    pub input: Option<InputText>,
    /// The answer as the app got it, in its own format, up to the capture limit.
    pub output: Capture,
}

impl RequestRecord {
    pub fn new() -> RequestRecord {
        RequestRecord {
            started: Instant::now(),
            started_at: SystemTime::now(),
            ids: TraceIds::random(),
            endpoint: "not_found",
            path: String::new(),
            requested_model: None,
            format: None,
            stream: false,
            subject: Subject::default(),
            disable_log: false,
            request_breakdown: false,
            served: Served::default(),
            attempts: Vec::new(),
            price_override: None,
            upstream_started: None,
            time_to_first_token: None,
            usage: None,
            status: 0,
            error: None,
            body_end: BodyEnd::Complete,
            cache: CacheUse::NotLooked,
            prompt_id: None,
            prompt_version: None,
            web_search: None,
            limit_rules: Vec::new(),
            limit_alerts: Vec::new(),
            omit_trace: false,
            input: None,
            output: Capture::off(),
        }
    }

    /// Time spent in the sidecar before the first upstream call.
    pub fn routing_time(&self) -> Option<Duration> {
        self.upstream_started.map(|t| t - self.started)
    }

    /// Notes the first body byte written: for streams, their time to first token.
    pub fn first_byte(&mut self) {
        if self.stream && self.time_to_first_token.is_none() {
            self.time_to_first_token = Some(self.started.elapsed());
        }
    }
}

impl Default for RequestRecord {
    fn default() -> Self {
        Self::new()
    }
}
