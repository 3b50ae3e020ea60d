use super::*;
use crate::translate::sse::SseParser;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/anthropic")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn translate(sse: &str, mode: JsonMode) -> (Vec<ChatChunk>, ToOpenAi) {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    parser
        .feed(sse.as_bytes(), &mut |e| events.push(e.clone()))
        .unwrap();
    let mut t = ToOpenAi::new(mode);
    let mut choices = Vec::new();
    for e in events {
        t.event(&e.data, &mut choices).unwrap();
    }
    let chunks = choices
        .into_iter()
        .map(|c| ChatChunk::around(t.head(), c))
        .collect();
    (chunks, t)
}

#[test]
fn text_stream_maps_role_deltas_finish_and_usage() {
    let (chunks, t) = translate(&fixture("stream_text.sse"), JsonMode::Off);
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices[0].delta.content.clone())
        .collect();
    assert_eq!(text, "Hello there");
    assert_eq!(
        chunks.last().unwrap().choices[0].finish_reason.as_deref(),
        Some("stop")
    );
    assert!(chunks
        .iter()
        .all(|c| c.id == chunks[0].id && &*c.model == "claude-haiku-4-5"));
    assert!(t.ended());
    let usage = t.usage();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens()
        ),
        (25, 2, 10)
    );
}

#[test]
fn tool_calls_are_indexed_per_tool_with_arguments_streamed() {
    let (chunks, _) = translate(&fixture("stream_tool.sse"), JsonMode::Off);
    let calls: Vec<&ToolCallDelta> = chunks
        .iter()
        .filter_map(|c| c.choices[0].delta.tool_calls.as_ref())
        .flatten()
        .collect();
    assert_eq!(calls[0].index, 0);
    assert_eq!(calls[0].id.as_deref(), Some("toolu_01"));
    assert_eq!(
        calls[0].function.as_ref().unwrap().name.as_deref(),
        Some("get_weather")
    );
    let args = |i: u32| -> String {
        calls
            .iter()
            .filter(|c| c.index == i)
            .filter_map(|c| c.function.as_ref()?.arguments.clone())
            .collect()
    };
    assert_eq!(args(0), "{\"city\": \"Paris\"}");
    assert_eq!(args(1), "{\"tz\":\"CET\"}");
    assert!(calls.iter().filter(|c| c.id.is_some()).count() == 2);
    assert_eq!(
        chunks.last().unwrap().choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
}

#[test]
fn forced_json_tool_streams_as_content() {
    let sse = "data: {\"type\":\"message_start\",\"message\":{\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\n\
        data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"answer\",\"input\":{}}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n\
        data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":3}}\n\n";
    let (chunks, _) = translate(sse, JsonMode::ForcedTool("answer".into()));
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices[0].delta.content.clone())
        .collect();
    assert_eq!(text, "{\"a\":1}");
    assert!(chunks
        .iter()
        .all(|c| c.choices[0].delta.tool_calls.is_none()));
    assert_eq!(
        chunks.last().unwrap().choices[0].finish_reason.as_deref(),
        Some("stop")
    );
}

#[test]
fn error_events_fail_the_stream() {
    let mut t = ToOpenAi::new(JsonMode::Off);
    let err = t
        .event(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!((err.status, err.message.as_str()), (529, "Overloaded"));
    assert!(t.event("{not json", &mut Vec::new()).is_err());
}

fn openai_chunk(v: serde_json::Value) -> ChatChunk {
    serde_json::from_value(v).unwrap()
}

#[test]
fn openai_chunks_become_the_anthropic_event_sequence() {
    let mut t = FromOpenAi::new("gpt-4o".into());
    let mut out = Vec::new();
    for c in [
        json!({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
    ] {
        t.chunk(&openai_chunk(c), &mut out);
    }
    t.finish(&mut out);
    let mut events = Vec::new();
    SseParser::default()
        .feed(&out, &mut |e| events.push(e.clone()))
        .unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(
        data[4]["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
    );
    assert_eq!(data[4]["index"], 1);
    assert_eq!(data[6]["delta"]["partial_json"], "1}");
    assert_eq!(data[8]["delta"]["stop_reason"], "tool_use");
    assert_eq!(data[8]["usage"]["output_tokens"], 4);
    assert_eq!(data[8]["usage"]["input_tokens"], 9);
    // The block events, written from borrowed parts, keep the API's field order.
    let block_events: Vec<&str> = events[1..6].iter().map(|e| e.data.as_str()).collect();
    assert_eq!(
        block_events,
        [
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_1","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}"#,
        ]
    );
    // So do the message's own events (its id is a fresh one).
    let id = data[0]["message"]["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"), "{id}");
    let message_events: Vec<String> = [0, 8, 9]
        .iter()
        .map(|&i| events[i].data.replace(id, "msg_1"))
        .collect();
    assert_eq!(
        message_events,
        [
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"gpt-4o","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":9,"output_tokens":4,"cache_read_input_tokens":0}}"#,
            r#"{"type":"message_stop"}"#,
        ]
    );
}

#[test]
fn an_event_is_small_enough_to_be_copied_inline() {
    // serde moves an event several times while reading it; past 128 bytes each move is a
    // call to memcpy (they were a fifth of a translation at 256 bytes).
    let size = std::mem::size_of::<StreamEvent>();
    assert!(size <= 128, "StreamEvent is {size} bytes");
}

/// A text delta, and an empty text block's start, written as Anthropic writes them are read
/// without a parser: every fixture, text deltas of plain and escaped text, and blocks of
/// other indexes translate to what serde's reading of the same event gives (spaced out, so
/// the fast path does not take it).
#[test]
fn text_deltas_read_without_a_parser_translate_as_serde_reads_them() {
    let spaced = |data: &str| {
        let value: Value = serde_json::from_str(data).unwrap();
        serde_json::to_string_pretty(&value).unwrap()
    };
    let delta = |text: &str| {
        format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
            serde_json::to_string(text).unwrap()
        )
    };
    let mut events: Vec<String> = ["tok ", "", "é 🦊", "a \"q\"\n", "x\u{1}"]
        .into_iter()
        .map(delta)
        .collect();
    for name in [
        "stream_text.sse",
        "stream_tool.sse",
        "stream_web_search.sse",
    ] {
        let mut parser = SseParser::default();
        parser
            .feed(fixture(name).as_bytes(), &mut |e| {
                events.push(e.data.clone())
            })
            .unwrap();
    }
    let mut fast = (ToOpenAi::new(JsonMode::Off), Vec::new());
    let mut serde = (ToOpenAi::new(JsonMode::Off), Vec::new());
    // Text blocks' starts, read without a parser too, then their deltas and stops.
    for index in ["12", "3"] {
        events.push(format!(
            r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
        ));
        events.push(delta("more"));
        events.push(format!(
            r#"{{"type":"content_block_stop","index":{index}}}"#
        ));
    }
    let (mut fast_paths, mut block_starts) = (0, 0);
    for data in &events {
        fast_paths += usize::from(plain_text_delta(data).is_some());
        block_starts += usize::from(empty_text_block(data).is_some());
        fast.0.event(data, &mut fast.1).unwrap();
        serde.0.event(&spaced(data), &mut serde.1).unwrap();
        assert_eq!(fast.0.text_block, serde.0.text_block, "{data}");
    }
    assert!(fast_paths >= 4, "{fast_paths} events read without a parser");
    assert!(
        block_starts >= 4,
        "{block_starts} block starts read without a parser"
    );
    let json = |choices: &[ChunkChoice]| serde_json::to_string(choices).unwrap();
    assert_eq!(json(&fast.1), json(&serde.1));
    assert_eq!(fast.0.text_chars, serde.0.text_chars);
}
