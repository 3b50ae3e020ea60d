//! The text of a request and of its answer, for its trace, in whatever format the app spoke.
//!
//! The input is the conversation as the app sent it (a system prompt given apart becomes the
//! first message). The output is one assistant message in OpenAI's shape, whatever the
//! format: streams are assembled from their deltas, tool calls included, into an
//! [`Assembled`] message, by each wire format's own reader (`<wire>/transcript.rs`); this
//! module picks the reader. A stream relayed by the gateway is read as it passes (see
//! [`read`]); a whole answer the relay reads whole is read with its usage (see [`answer`]);
//! any other (one relayed piece by piece as it came, or replayed from the cache) is read
//! back from its capture (see [`output`]) when its trace is first made.
//!
//! Both come out as JSON text: the exporters only copy them, so the conversation is sliced
//! out of the body rather than built into a tree, and each event is read into small
//! borrowed structs that keep only the fields an answer is assembled from.

use super::assembled::Assembled;
use super::{anthropic, gemini, openai, responses};
use crate::body::JsonBody;
use crate::telemetry::capture::Output;
use crate::telemetry::record::{with_system, InputText, TokenUsage};
use crate::wire::Wire;
use bytes::Bytes;
use serde_json::value::RawValue;

/// A parsed request's conversation, taken from its fields while they are at hand, so that
/// its trace does not parse the body again: a Gemini conversation is built (each content's
/// text parts joined), so its body is kept to be read when the trace is made instead.
pub fn conversation(format: Wire, body: &JsonBody, bytes: &Bytes) -> Option<InputText> {
    match format {
        Wire::Gemini => Some(InputText::Body(bytes.clone())),
        _ => in_fields(format, body),
    }
}

/// A request's conversation, from its body (a passthrough body, or a Gemini one: see
/// [`conversation`]), read by the same field readers as a body the request path parsed.
pub fn input(format: Option<Wire>, body: &[u8]) -> Option<Box<RawValue>> {
    match format? {
        Wire::Gemini => gemini::transcript::input(body),
        format => match in_fields(format, &JsonBody::parse(body).ok()?)? {
            InputText::Conversation(text) => Some(text),
            InputText::WithSystem { system, messages } => with_system(&system, &messages),
            InputText::Body(_) => None,
        },
    }
}

/// The conversation a body holds in its fields as they are: none for Gemini, whose
/// conversation is built from its contents.
fn in_fields(format: Wire, body: &JsonBody) -> Option<InputText> {
    match format {
        Wire::OpenAi | Wire::Responses => {
            openai::transcript::conversation(body).map(InputText::Conversation)
        }
        Wire::Anthropic => anthropic::transcript::conversation(body),
        Wire::Gemini => None,
    }
}

/// The answer the app got, read back from the bytes captured (`stream`: SSE events).
pub fn output(format: Option<Wire>, stream: bool, bytes: &[u8]) -> Output {
    let mut message = Assembled::default();
    let Some(format) = format else {
        let text = String::from_utf8_lossy(bytes);
        if !text.is_empty() {
            message.seen();
            message.text(Some(&text));
        }
        return message.finish();
    };
    if stream {
        let mut parser = super::sse::SseParser::default();
        let mut on_event = |e: &super::sse::Event| read(format, &e.data, &mut message);
        let _ = parser.feed(bytes, &mut on_event);
        parser.finish(&mut on_event);
    } else if format == Wire::Gemini && bytes.trim_ascii_start().starts_with(b"[") {
        // Gemini's non-SSE stream: a JSON array of chunks.
        gemini::transcript::read_array(bytes, &mut message);
    } else if let Ok(text) = std::str::from_utf8(bytes) {
        read(format, text, &mut message);
    }
    message.finish()
}

/// A whole answer relayed as it is, read once for both its trace's answer and its usage:
/// what [`output`] and [`super::usage::of_body`] give it. `None` for a format whose reader
/// does not give the counts too (Gemini, the Responses API), or a body that is not a JSON
/// object in UTF-8 (serde reads an array into a struct field by position, and the two
/// readers' structs have their fields in other positions): those are read apart.
pub fn answer(format: Wire, body: &[u8]) -> Option<(Output, Option<TokenUsage>)> {
    let read_once = match format {
        Wire::OpenAi => openai_answer,
        Wire::Anthropic => anthropic_answer,
        Wire::Gemini | Wire::Responses => return None,
    };
    let text = std::str::from_utf8(body).ok()?;
    if !text.trim_ascii_start().starts_with('{') {
        return None;
    }
    let mut message = Assembled::default();
    let usage = read_once(text, &mut message);
    Some((message.finish(), usage))
}

/// A chat completion's usage, its answer read into `message` on the way.
fn openai_answer(text: &str, message: &mut Assembled) -> Option<TokenUsage> {
    openai::transcript::answer(text, message).unwrap_or_else(|| {
        // Not one completion as serde reads it: read as each reader reads it alone.
        openai::transcript::read(text, message);
        openai::usage::of_body(text.as_bytes())
    })
}

/// A Messages answer's usage, its answer read into `message` on the way.
fn anthropic_answer(text: &str, message: &mut Assembled) -> Option<TokenUsage> {
    let own = anthropic::transcript::read(text, message).own();
    own.map(|u| anthropic::usage::tokens(&u))
        .or_else(|| anthropic::usage::of_body(text.as_bytes()))
}

/// One whole answer or one stream event in `format`, as JSON text (already known to be
/// UTF-8, so its strings are not checked again), into `message`.
pub fn read(format: Wire, data: &str, message: &mut Assembled) {
    match format {
        Wire::OpenAi => {
            let _ = openai::transcript::read(data, message);
        }
        // The others also give the token counts read on the way, which only the usage tap
        // wants.
        Wire::Anthropic => {
            let _ = anthropic::transcript::read(data, message);
        }
        Wire::Gemini => {
            let _ = gemini::transcript::read(data, message);
        }
        Wire::Responses => {
            let _ = responses::transcript::read(data, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(out: &Output) -> Value {
        serde_json::from_str(out.message.as_ref().unwrap().get()).unwrap()
    }

    use serde_json::{json, Value};

    fn parsed(raw: Option<Box<RawValue>>) -> Value {
        serde_json::from_str(raw.unwrap().get()).unwrap()
    }

    #[test]
    fn openai_streams_are_assembled_with_their_tool_calls() {
        let sse = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let out = output(Some(Wire::OpenAi), true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["tool_calls"][0]["id"], "call_1");
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(out.finish_reasons, vec!["tool_calls"]);
    }

    #[test]
    fn gemini_chunks_are_read_leniently() {
        // A part of a kind the transcript does not know (the decoder's types have no field
        // for it), thoughts, a call.
        let sse = concat!(
            "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"thought\":true,\"text\":\"hmm\"},{\"executableCode\":{\"code\":\"1\"}},{\"text\":\"Hi\"}]}}],\"modelVersion\":\"g\"}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get\",\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\"}]}\r\n\r\n",
        );
        let out = output(Some(Wire::Gemini), true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(
            (m["content"].as_str(), m["reasoning_content"].as_str()),
            (Some("Hi"), Some("hmm"))
        );
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(out.finish_reasons, vec!["STOP"]);
    }

    #[test]
    fn anthropic_streams_are_assembled() {
        let sse = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[]}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"ls\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"d\\\":\\\"/\\\"}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n",
        );
        let out = output(Some(Wire::Anthropic), true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(m["content"], "Hi there");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"d\":\"/\"}");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(out.finish_reasons, vec!["tool_use"]);
    }

    #[test]
    fn a_responses_stream_is_read_from_its_terminal_event_custom_calls_too() {
        let sse = concat!(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":[",
            "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"hi\"}]},",
            "{\"type\":\"custom_tool_call\",\"call_id\":\"c1\",\"name\":\"apply_patch\",\"input\":\"*** Begin Patch\"}]}}\n\n",
        );
        let out = output(Some(Wire::Responses), true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(m["content"], "hi");
        let call = &m["tool_calls"][0];
        assert_eq!(
            (
                &call["id"],
                &call["function"]["name"],
                &call["function"]["arguments"]
            ),
            (
                &json!("c1"),
                &json!("apply_patch"),
                &json!("*** Begin Patch")
            )
        );
        assert_eq!(out.finish_reasons, vec!["completed"]);
    }

    #[test]
    fn whole_answers_of_each_format() {
        let openai = br#"{"choices":[{"message":{"role":"assistant","content":"a"},"finish_reason":"stop"}]}"#;
        assert_eq!(
            message(&output(Some(Wire::OpenAi), false, openai))["content"],
            "a"
        );
        let anthropic = br#"{"type":"message","content":[{"type":"text","text":"b"},{"type":"tool_use","id":"t","name":"f","input":{"x":1}}],"stop_reason":"end_turn"}"#;
        let out = output(Some(Wire::Anthropic), false, anthropic);
        assert_eq!(message(&out)["content"], "b");
        assert_eq!(
            message(&out)["tool_calls"][0]["function"]["arguments"],
            "{\"x\":1}"
        );
        let gemini = br#"{"candidates":[{"content":{"parts":[{"text":"c"},{"functionCall":{"name":"g","args":{"y":2}}}]},"finishReason":"STOP"}]}"#;
        let out = output(Some(Wire::Gemini), false, gemini);
        assert_eq!(message(&out)["content"], "c");
        assert_eq!(message(&out)["tool_calls"][0]["function"]["name"], "g");
        assert_eq!(out.finish_reasons, vec!["STOP"]);
        assert!(output(Some(Wire::OpenAi), false, b"garbage")
            .message
            .is_none());
    }

    #[test]
    fn a_whole_answer_read_once_gives_what_its_two_readers_give() {
        let openai: &[&str] = &[
            r#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"a","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1}}}"#,
            // Usage first, none, null, or not an object; choices not a list; a key twice.
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"choices":[{"message":{"content":"b"}}]}"#,
            r#"{"choices":[{"message":{"content":"c"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":[{"message":{"content":"d"}}],"usage":"many"}"#,
            r#"{"choices":5,"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
            r#"{"choices":[{"message":{"content":"e"}}],"choices":[{"message":{"content":"f"}}]}"#,
            r#"{"choices":[{"message":{"content":"g"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}"#,
            r#"{"choices":[{"index":1,"message":{"content":"h"}},{"index":0,"message":{"content":"i"}}]}"#,
            r#"{"choices":[{"message":{"content":"j"}}]} trailing"#,
        ];
        let anthropic: &[&str] = &[
            r#"{"type":"message","content":[{"type":"text","text":"k"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2,"cache_read_input_tokens":1}}"#,
            r#"{"type":"message","content":[{"type":"text","text":"l"}]}"#,
            r#"{"type":"message","content":[],"usage":null}"#,
            r#"{"type":"message","content":[],"usage":"many"}"#,
            r#"{"type":"message","message":{"usage":{"input_tokens":9,"output_tokens":9}},"usage":{"input_tokens":1,"output_tokens":1}}"#,
            r#"{"content":5,"usage":{"input_tokens":1,"output_tokens":1}}"#,
            r#"{"type":"message","usage":{"input_tokens":1,"output_tokens":1},"usage":{"input_tokens":2,"output_tokens":2}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"m"}}"#,
        ];
        // Arrays, which serde reads into a struct by position, and what is no JSON object:
        // left to the two readers.
        for (wire, body) in [
            (Wire::OpenAi, "[DONE]"),
            (Wire::OpenAi, "[[]]"),
            (Wire::OpenAi, r#"[[{"message":{"content":"hi"}}],null]"#),
            (
                Wire::Anthropic,
                r#"["message",null,null,null,null,null,null,{"input_tokens":5}]"#,
            ),
        ] {
            assert!(answer(wire, body.as_bytes()).is_none(), "{body}");
        }
        let cases = (openai.iter().map(|b| (Wire::OpenAi, b)))
            .chain(anthropic.iter().map(|b| (Wire::Anthropic, b)));
        for (wire, body) in cases {
            let (once, usage) = answer(wire, body.as_bytes()).unwrap();
            let apart = output(Some(wire), false, body.as_bytes());
            assert_eq!(
                usage,
                super::super::usage::of_body(wire, body.as_bytes()),
                "{body}"
            );
            let text = |o: &Output| o.message.as_ref().map(|m| m.get().to_string());
            assert_eq!(text(&once), text(&apart), "{body}");
            assert_eq!(once.finish_reasons, apart.finish_reasons, "{body}");
        }
        // Read apart: no counts come with their answers' reading, or the text is not UTF-8.
        assert!(answer(Wire::Gemini, b"{}").is_none());
        assert!(answer(Wire::Responses, b"{}").is_none());
        assert!(answer(Wire::OpenAi, b"{\"x\":\"\xff\"}").is_none());
    }

    #[test]
    fn conversations_of_parsed_bodies_and_of_bodies_read_later() {
        let user = r#"[{"role":"user","content":"hi"}]"#;
        let cases: [(Wire, &[u8], Option<&str>); 8] = [
            (
                Wire::OpenAi,
                br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
                Some(user),
            ),
            (
                Wire::Responses,
                br#"{"model":"m","input":"hi"}"#,
                Some(r#""hi""#),
            ),
            (
                Wire::Anthropic,
                br#"{"system":"be brief","messages":[{"role":"user","content":"hi"}]}"#,
                Some(r#"[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]"#),
            ),
            (
                Wire::Anthropic,
                br#"{"messages":[{"role":"user","content":"hi"}]}"#,
                Some(user),
            ),
            (
                Wire::Anthropic,
                br#"{"system":"s","messages":"not a list"}"#,
                None,
            ),
            // A null field is an absent one, as serde reads an `Option`.
            (
                Wire::Anthropic,
                br#"{"system":null,"messages":[]}"#,
                Some("[]"),
            ),
            (Wire::OpenAi, br#"{"messages":null,"input":[]}"#, Some("[]")),
            (Wire::OpenAi, br#"{"model":"m"}"#, None),
        ];
        for (format, bytes, expected) in cases {
            let bytes = Bytes::from_static(bytes);
            let body = JsonBody::parse(&bytes).unwrap();
            let taken = match conversation(format, &body, &bytes) {
                Some(InputText::Conversation(text)) => Some(text.get().to_string()),
                // The system prompt is spliced in when the trace's text is read.
                Some(InputText::WithSystem { system, messages }) => {
                    with_system(&system, &messages).map(|text| text.get().to_string())
                }
                Some(InputText::Body(_)) => panic!("{format:?}: taken from the fields"),
                None => None,
            };
            assert_eq!(taken.as_deref(), expected, "{format:?} taken");
            let read = input(Some(format), &bytes).map(|text| text.get().to_string());
            assert_eq!(read.as_deref(), expected, "{format:?} read later");
        }
        // A key given twice: the last one, as the body sent upstream has it.
        let twice = Bytes::from_static(br#"{"messages":["first"],"messages":["last"]}"#);
        let body = JsonBody::parse(&twice).unwrap();
        assert!(matches!(
            conversation(Wire::OpenAi, &body, &twice),
            Some(InputText::Conversation(text)) if text.get() == r#"["last"]"#
        ));
        let gemini = Bytes::from_static(br#"{"contents":[]}"#);
        let body = JsonBody::parse(&gemini).unwrap();
        assert!(matches!(
            conversation(Wire::Gemini, &body, &gemini),
            Some(InputText::Body(b)) if b == gemini
        ));
    }

    #[test]
    fn inputs_of_each_format() {
        let openai = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(
            parsed(input(Some(Wire::OpenAi), openai))[0]["content"],
            "hi"
        );
        let anthropic = br#"{"system":"be brief","messages":[{"role":"user","content":"hi"}]}"#;
        let a = parsed(input(Some(Wire::Anthropic), anthropic));
        assert_eq!(
            (a[0]["role"].as_str(), a[1]["content"].as_str()),
            (Some("system"), Some("hi"))
        );
        let gemini = br#"{"contents":[{"role":"user","parts":[{"text":"h"},{"text":"i"}]}]}"#;
        assert_eq!(
            parsed(input(Some(Wire::Gemini), gemini))[0]["content"],
            "hi"
        );
        assert!(input(Some(Wire::OpenAi), b"{").is_none());
        let no_messages = br#"{"system":"s","messages":[]}"#;
        assert_eq!(
            parsed(input(Some(Wire::Anthropic), no_messages))
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}
