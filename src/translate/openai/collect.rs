//! A chat completion stream gathered into its whole completion (for the cache): every field
//! of a completion the chunks carried is kept (`serde_json::Value`), logprobs included.
//!
//! Each chunk is read borrowed: its text is appended where it lies, and a value kept as it
//! came (an id, a finish reason, the usage) stays raw JSON text until it is kept, once. Read
//! into a `Value` map, every chunk cost a map per object in it (1.35 us an event). A chunk
//! of plain text under the head of the chunk before is read without a parser.

use super::stream::{is_done, KnownHead};
use crate::telemetry::record::TokenUsage;
use crate::translate::fields::{text, whole_number};
use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// Chat completion chunks, gathered.
#[derive(Default)]
pub(crate) struct OpenAiStream {
    /// `id`, `created`, `model`, `system_fingerprint`, `service_tier`: from the first chunk
    /// that has each.
    head: Map<String, Value>,
    choices: Vec<OpenAiChoice>,
    usage: Option<Value>,
    done: bool,
    /// The head of the last chunk read whole, when its text before the choices holds it
    /// whole: a chunk of plain text that begins with that text adds nothing but its text.
    known_head: Option<KnownHead<()>>,
}

#[derive(Default)]
pub(crate) struct OpenAiChoice {
    index: u64,
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<OpenAiToolCall>,
    finish_reason: Option<Value>,
    logprobs: Vec<Value>,
}

#[derive(Default)]
pub(crate) struct OpenAiToolCall {
    index: u64,
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

/// A chunk, as far as its completion. `null` reads as absent (serde's `Option`), as the
/// gathering always took it.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    created: Option<&'a RawValue>,
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    system_fingerprint: Option<&'a RawValue>,
    #[serde(borrow)]
    service_tier: Option<&'a RawValue>,
    /// An error event, whatever it holds (even `null`).
    #[serde(default, deserialize_with = "present")]
    error: bool,
    /// Absent in an event of the gateway's own (a request breakdown).
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
    /// Absent, `null` (`Some(None)`), or counts: a head kept for plain chunks has none at
    /// all, as a plain chunk may end with `"usage":null` (serde refuses a key twice).
    #[serde(borrow, default, deserialize_with = "present_or_null")]
    usage: Option<Option<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    index: Option<&'a RawValue>,
    #[serde(borrow)]
    finish_reason: Option<&'a RawValue>,
    #[serde(borrow)]
    logprobs: Option<&'a RawValue>,
    #[serde(borrow)]
    delta: Option<ChunkDelta<'a>>,
}

#[derive(Deserialize)]
struct ChunkDelta<'a> {
    #[serde(borrow)]
    role: Option<&'a RawValue>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_calls: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CallDelta<'a> {
    #[serde(borrow)]
    index: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    function: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FunctionPart<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// `logprobs` of a choice: only its `content` tokens are kept.
#[derive(Deserialize)]
struct Logprobs {
    content: Option<Vec<Value>>,
}

/// A key that is there, whatever its value.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// A key that is there: `Some`, with its value unless it is `null`.
fn present_or_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<&'de RawValue>>, D::Error> {
    Option::<&'de RawValue>::deserialize(deserializer).map(Some)
}

/// A raw value kept as it came.
fn value(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

/// A piece's `index`: 0 when absent or not a whole number.
fn index(raw: Option<&RawValue>) -> u64 {
    whole_number(raw).unwrap_or(0)
}

/// A raw value that is a JSON object or array of `T`, read leniently: a value of another
/// type reads as none.
fn parsed<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    serde_json::from_str(raw?.get()).ok()
}

impl OpenAiStream {
    pub(crate) fn event(&mut self, data: &str) -> Option<()> {
        if is_done(data) {
            self.done = true;
            return Some(());
        }
        if let Some(text) = self.known_head.as_ref().and_then(|h| h.plain(data)) {
            let zero = by_index(&mut self.choices, 0);
            zero.content.get_or_insert_with(String::new).push_str(text);
            return Some(());
        }
        let chunk: Chunk = serde_json::from_str(data).ok()?;
        if chunk.error {
            return None;
        }
        let Some(choices) = chunk.choices else {
            // An event of the gateway's own (a request breakdown).
            return Some(());
        };
        let head = [
            ("id", chunk.id),
            ("created", chunk.created),
            ("model", chunk.model),
            ("system_fingerprint", chunk.system_fingerprint),
            ("service_tier", chunk.service_tier),
        ];
        for (name, raw) in head {
            if let Some(raw) = raw.filter(|_| !self.head.contains_key(name)) {
                self.head.insert(name.to_string(), value(raw)?);
            }
        }
        if let Some(usage) = chunk.usage.flatten().filter(|u| u.get().starts_with('{')) {
            self.usage = Some(value(usage)?);
        }
        for choice in choices {
            self.choice(choice);
        }
        // The head holds what the chunk kept already if, read alone, it is a chunk of no
        // choices, no error and no usage.
        KnownHead::note(&mut self.known_head, data, |alone| {
            let read: Chunk = serde_json::from_str(alone).ok()?;
            (!read.error && read.usage.is_none() && read.choices.is_some_and(|c| c.is_empty()))
                .then_some(())
        });
        Some(())
    }

    fn choice(&mut self, choice: Choice) {
        let at = by_index(&mut self.choices, index(choice.index));
        if let Some(reason) = choice.finish_reason.and_then(value) {
            at.finish_reason = Some(reason);
        }
        if let Some(tokens) = parsed::<Logprobs>(choice.logprobs).and_then(|l| l.content) {
            at.logprobs.extend(tokens);
        }
        let Some(delta) = choice.delta else {
            return;
        };
        if let Some(role) = delta.role.and_then(value) {
            at.role = Some(role);
        }
        if let Some(text) = text(delta.content) {
            at.content.get_or_insert_with(String::new).push_str(&text);
        }
        if let Some(text) = text(delta.refusal) {
            at.refusal.get_or_insert_with(String::new).push_str(&text);
        }
        let calls: Vec<CallDelta> = parsed(delta.tool_calls).unwrap_or_default();
        for call in calls {
            at.tool_call(call);
        }
    }

    pub(crate) fn into_whole(self, usage: Option<&TokenUsage>) -> Option<Value> {
        if !self.done || self.choices.is_empty() {
            return None;
        }
        let mut whole = self.head;
        whole.insert("object".into(), "chat.completion".into());
        let choices = self.choices.into_iter().map(OpenAiChoice::into_whole);
        whole.insert("choices".into(), choices.collect());
        let usage = self.usage.or_else(|| usage.map(openai_usage));
        whole.insert("usage".into(), usage.unwrap_or(Value::Null));
        Some(Value::Object(whole))
    }
}

impl OpenAiChoice {
    fn tool_call(&mut self, call: CallDelta) {
        let at = by_index(&mut self.tool_calls, index(call.index));
        if let Some(id) = call.id.and_then(value) {
            at.id = Some(id);
        }
        if let Some(kind) = call.kind.and_then(value) {
            at.kind = Some(kind);
        }
        let Some(function) = parsed::<FunctionPart>(call.function) else {
            return;
        };
        if let Some(name) = text(function.name) {
            at.name.push_str(&name);
        }
        if let Some(arguments) = text(function.arguments) {
            at.arguments.push_str(&arguments);
        }
    }

    pub(crate) fn into_whole(self) -> Value {
        let mut message = json!({
            "role": self.role.unwrap_or_else(|| "assistant".into()),
            "content": self.content,
            "refusal": self.refusal,
        });
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .into_iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": c.kind.unwrap_or_else(|| "function".into()),
                        "function": {"name": c.name, "arguments": c.arguments},
                    })
                })
                .collect();
            message["tool_calls"] = calls.into();
        }
        let logprobs = if self.logprobs.is_empty() {
            Value::Null
        } else {
            json!({ "content": self.logprobs })
        };
        json!({
            "index": self.index,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": self.finish_reason,
        })
    }
}

/// Choices and tool calls: streamed in pieces that name the one they add to by `index`.
pub(crate) trait Indexed: Default {
    fn index(&self) -> u64;
    fn with_index(index: u64) -> Self;
}

impl Indexed for OpenAiChoice {
    fn index(&self) -> u64 {
        self.index
    }

    fn with_index(index: u64) -> Self {
        OpenAiChoice {
            index,
            ..OpenAiChoice::default()
        }
    }
}

impl Indexed for OpenAiToolCall {
    fn index(&self) -> u64 {
        self.index
    }

    fn with_index(index: u64) -> Self {
        OpenAiToolCall {
            index,
            ..OpenAiToolCall::default()
        }
    }
}

/// The entry of `items` that a piece's `index` names, added (in arrival order) if new.
fn by_index<T: Indexed>(items: &mut Vec<T>, index: u64) -> &mut T {
    let at = match items.iter().position(|item| item.index() == index) {
        Some(at) => at,
        None => {
            items.push(T::with_index(index));
            items.len() - 1
        }
    };
    &mut items[at]
}

/// An OpenAI `usage` object for counts the gateway read from a chunk the app did not get.
fn openai_usage(u: &TokenUsage) -> Value {
    let mut usage = json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    });
    if u.cached_tokens > 0 {
        usage["prompt_tokens_details"] = json!({ "cached_tokens": u.cached_tokens });
    }
    if u.reasoning_tokens > 0 {
        usage["completion_tokens_details"] = json!({ "reasoning_tokens": u.reasoning_tokens });
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::super::stream::{test_chunk, test_head, ENDS, HEAD_FIELDS};
    use super::*;

    fn gather(events: &[&str]) -> Option<Value> {
        let mut stream = OpenAiStream::default();
        for data in events {
            stream.event(data)?;
        }
        stream.into_whole(None)
    }

    /// Every part of a completion the chunks carry comes back whole: the head from the first
    /// chunk that has each field, each choice's text, refusal, calls and log probabilities
    /// by index (two choices interleaved), the usage chunk; `null`s and the gateway's own
    /// events are passed over.
    #[test]
    fn a_stream_gathers_into_its_whole_completion() {
        let whole = gather(&[
            r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":null,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"respan":{"breakdown":1}}"#,
            r#"{"id":"c2","created":8,"model":"m","system_fingerprint":"fp","choices":[{"index":1,"delta":{"role":"assistant","content":"B\"1"}},{"index":0,"delta":{"content":"A\n"},"logprobs":{"content":[{"token":"A","logprob":-0.1}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"a\""}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"},{"index":1,"delta":{"refusal":"no"},"finish_reason":"stop"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
            "[DONE]",
        ])
        .unwrap();
        let want = json!({
            "id": "c1", "created": 7, "model": "m", "system_fingerprint": "fp",
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "A\n", "refusal": null,
                    "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get", "arguments": "{\"a\":1}"}}]},
                    "logprobs": {"content": [{"token": "A", "logprob": -0.1}]},
                    "finish_reason": "tool_calls"},
                {"index": 1, "message": {"role": "assistant", "content": "B\"1", "refusal": "no"},
                    "logprobs": null, "finish_reason": "stop"},
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        });
        assert_eq!(whole, want);
    }

    /// An error event, an unreadable chunk, or no end: nothing to keep.
    #[test]
    fn a_stream_that_did_not_end_well_gathers_to_nothing() {
        let start = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#;
        assert!(gather(&[start, r#"{"error":null}"#, "[DONE]"]).is_none());
        assert!(gather(&[start, "{not json", "[DONE]"]).is_none());
        assert!(gather(&[start]).is_none());
        assert!(gather(&[start, "[DONE]"]).is_some());
    }

    /// Chunks of plain text under the head of the chunk before gather as serde's reading of
    /// them does (spaced out, so the fast path does not take them), over the fixtures and
    /// heads the fast path must not keep (an error, usage or a head field outside the text
    /// before the choices).
    #[test]
    fn plain_text_chunks_gather_as_serde_reads_them() {
        let head = r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","#;
        let text = test_chunk;
        let fixture = |name: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/openai")
                .join(name);
            let sse = std::fs::read_to_string(path).unwrap();
            let events: Vec<String> = sse
                .split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .map(str::to_string)
                .collect();
            events
        };
        let streams = [
            fixture("stream_text.sse"),
            fixture("stream_tool.sse"),
            vec![
                text(head, "a", "}"),
                text(head, "b \"q\"", "}"),
                text(head, "c", r#","usage":null,"obfuscation":"x"}"#),
                text(&head.replace("c1", "c2"), "d", "}"),
                text(
                    head,
                    "e",
                    r#","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
                ),
                "[DONE]".to_string(),
            ],
            vec![
                text(&format!(r#"{head}"usage":null,"#), "a", "}"),
                text(&format!(r#"{head}"usage":null,"#), "b", "}"),
                "[DONE]".to_string(),
            ],
            vec![
                text(r#"{"model":"m","#, "a", r#","id":"late"}"#),
                text(r#"{"model":"m","#, "b", "}"),
                "[DONE]".to_string(),
            ],
            vec![
                text(&format!(r#"{head}"error":null,"#), "a", "}"),
                "[DONE]".to_string(),
            ],
            // Usage twice (serde refuses the chunk), and the key's text inside another key.
            vec![
                text(&format!(r#"{head}"usage":null,"#), "a", "}"),
                text(&format!(r#"{head}"usage":null,"#), "b", r#","usage":null}"#),
                "[DONE]".to_string(),
            ],
            vec![
                text(r#"{"id":"a","choices" :[],"x\"#, "hi", "}"),
                text(r#"{"id":"a","choices" :[],"x\"#, "hi", "}"),
                "[DONE]".to_string(),
            ],
        ];
        for events in streams {
            let spaced: Vec<String> = events
                .iter()
                .map(|e| e.replace("\"choices\":", "\"choices\" :"))
                .collect();
            let read =
                |events: &[String]| gather(&events.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(read(&events), read(&spaced), "{events:?}");
        }
        let mut stream = OpenAiStream::default();
        for data in [text(head, "a", "}"), text(head, "b", "}")] {
            stream.event(&data).unwrap();
        }
        assert!(
            stream
                .known_head
                .as_ref()
                .is_some_and(|h| h.read().is_some()),
            "the head is kept"
        );
    }

    proptest::proptest! {
        /// Whatever the head is made of, chunks gather as serde reads them.
        #[test]
        fn any_head_gathers_as_serde_reads_it(
            fields in proptest::collection::vec(proptest::sample::select(HEAD_FIELDS), 0..6),
            end in proptest::sample::select(ENDS),
        ) {
            let head = test_head(&fields);
            let events = [
                test_chunk(&head, "a", "}"),
                test_chunk(&head, "b", end),
                test_chunk(&head, "c", "}"),
                "[DONE]".to_string(),
            ];
            let spaced: Vec<String> =
                events.iter().map(|e| e.replace("\"choices\":", "\"choices\" :")).collect();
            let read = |events: &[String]| gather(&events.iter().map(String::as_str).collect::<Vec<_>>());
            proptest::prop_assert_eq!(read(&events), read(&spaced), "{:?}", events);
        }
    }
}
