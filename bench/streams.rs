//! The benchmark's answers, shared by the mock upstream (`bench/mock_upstream.rs`) and the
//! stream micro-benchmark (`benches/streams.rs`), so both measure the same bytes: one
//! sentence as a whole JSON answer, and as an SSE stream of 22 events (OpenAI), 24
//! (Anthropic) or 20 (Gemini).
// Each of the two uses only some of these (the mock serves no Gemini stream).
#![allow(dead_code)]

use bytes::Bytes;

/// Text pieces of a streamed answer.
const PIECES: usize = 19;

/// An OpenAI chat completion, whole.
pub const OPENAI_JSON: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;

/// An Anthropic message, whole.
pub const ANTHROPIC_JSON: &[u8] = br#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[{"type":"text","text":"The quick brown fox jumps over the lazy dog."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":10}}"#;

/// An OpenAI chat completion stream: a role chunk, 19 content chunks, a finish chunk and
/// `[DONE]`.
pub fn openai_events() -> Vec<Bytes> {
    openai_stream(false)
}

/// The same stream as OpenAI sends it when asked for usage (as the sidecar asks an OpenAI
/// provider): `"usage":null` on every chunk, and a usage chunk with no choices before
/// `[DONE]`.
pub fn openai_events_with_usage() -> Vec<Bytes> {
    openai_stream(true)
}

fn openai_stream(usage: bool) -> Vec<Bytes> {
    let end = if usage { r#","usage":null}"# } else { "}" };
    let chunk = |choice: &str| {
        Bytes::from(
            format!(
                r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{choice}]{end}"#
            ) + "\n\n",
        )
    };
    let mut events = vec![chunk(
        r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#,
    )];
    for i in 0..PIECES {
        events.push(chunk(&format!(
            r#"{{"index":0,"delta":{{"content":"tok{i} "}},"finish_reason":null}}"#
        )));
    }
    events.push(chunk(r#"{"index":0,"delta":{},"finish_reason":"stop"}"#));
    if usage {
        events.push(Bytes::from_static(
            b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":19,\"total_tokens\":31}}\n\n",
        ));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// An Anthropic Messages stream: message_start, a text block of 19 deltas, message_delta
/// (with usage) and message_stop.
pub fn anthropic_events() -> Vec<Bytes> {
    let event = |name: &str, data: String| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut events = vec![
        event("message_start", r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#.into()),
        event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.into()),
    ];
    for i in 0..PIECES {
        events.push(event(
            "content_block_delta",
            format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"tok{i} "}}}}"#
            ),
        ));
    }
    events.push(event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#.into(),
    ));
    events.push(event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":19}}"#.into()));
    events.push(event("message_stop", r#"{"type":"message_stop"}"#.into()));
    events
}

/// A Gemini `streamGenerateContent?alt=sse` stream: 19 text chunks and a last one with the
/// finish reason and usage.
pub fn gemini_events() -> Vec<Bytes> {
    let mut events: Vec<Bytes> = (0..PIECES)
        .map(|i| {
            Bytes::from(format!(
                "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"tok{i} \"}}],\"role\":\"model\"}},\"index\":0}}],\"modelVersion\":\"gemini-bench\"}}\r\n\r\n"
            ))
        })
        .collect();
    events.push(Bytes::from_static(
        b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":19,\"totalTokenCount\":31},\"modelVersion\":\"gemini-bench\"}\r\n\r\n",
    ));
    events
}
