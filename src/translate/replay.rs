//! A whole answer told again as a stream in the same format: how the cache answers a
//! streaming request from a stored answer (itself a whole answer, or a stream gathered by
//! `collect`).
//!
//! The stream says what the answer says (text, tool calls, thinking, finish reason, usage)
//! in as few events as the format allows, under a fresh id (a Responses API answer keeps its
//! own: `previous_response_id` names it), as SSE text ready to write.

use crate::wire::Wire;
use serde_json::{Map, Value};

/// The stream of a whole answer in the `ingress` format; none if it cannot be read. An
/// OpenAI stream ends with a usage chunk only when `include_usage`.
pub fn stream(ingress: Wire, whole: &[u8], include_usage: bool) -> Option<Vec<u8>> {
    let whole: Map<String, Value> = serde_json::from_slice(whole).ok()?;
    match ingress {
        Wire::OpenAi => super::openai::replay::stream(whole, include_usage),
        Wire::Anthropic => super::anthropic::replay::stream(whole),
        Wire::Gemini => Some(super::gemini::replay::stream(whole)),
        Wire::Responses => super::responses::replay::stream(whole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::collect;
    use bytes::Bytes;
    use serde_json::json;

    fn round_trip(ingress: Wire, whole: &Value, include_usage: bool) -> (Value, String) {
        let bytes = serde_json::to_vec(whole).unwrap();
        let sse = String::from_utf8(stream(ingress, &bytes, include_usage).unwrap()).unwrap();
        let pieces = [Bytes::from(sse.clone())];
        let back = collect::whole(ingress, &pieces, None).unwrap();
        (serde_json::from_slice(&back).unwrap(), sse)
    }

    #[test]
    fn an_openai_answer_replays_as_a_stream_that_gathers_back_to_it() {
        let whole = json!({
            "id": "chatcmpl-old", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello",
                "refusal": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get", "arguments": "{\"a\":1}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        });
        let (back, sse) = round_trip(Wire::OpenAi, &whole, true);
        assert_ne!(back["id"], "chatcmpl-old", "a replay has a fresh id");
        assert_eq!(back["choices"], whole["choices"]);
        assert_eq!(back["usage"], whole["usage"]);
        assert!(sse.ends_with("data: [DONE]\n\n"));
        let (_, without) = round_trip(Wire::OpenAi, &whole, false);
        assert!(
            !without.contains("\"usage\""),
            "no usage chunk unless asked"
        );
    }

    #[test]
    fn odd_stored_answers_are_refused_without_a_panic() {
        let odd = br#"{"choices":[{"message":{"tool_calls":[1]}}],"usage":"x"}"#;
        assert!(stream(Wire::OpenAi, odd, true).is_none());
        let odd = br#"{"content":[{"type":"text","text":"a"}],"usage":"x"}"#;
        assert!(stream(Wire::Anthropic, odd, false).is_some());
        assert!(stream(Wire::Anthropic, b"[]", false).is_none());
    }

    #[test]
    fn a_gemini_answer_replays_as_one_chunk() {
        let whole = json!({"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"},
            "index": 0, "finishReason": "STOP"}], "responseId": "old"});
        let (back, _) = round_trip(Wire::Gemini, &whole, false);
        assert_eq!(back["candidates"], whole["candidates"]);
        assert_ne!(back["responseId"], "old");
    }

    #[test]
    fn an_anthropic_answer_replays_as_a_stream_that_gathers_back_to_it() {
        let whole = json!({
            "id": "msg_old", "type": "message", "role": "assistant", "model": "claude",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Hi there"},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"a": 1}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 9, "output_tokens": 12},
        });
        let (back, sse) = round_trip(Wire::Anthropic, &whole, false);
        assert_ne!(back["id"], "msg_old");
        for field in ["content", "stop_reason", "usage", "model"] {
            assert_eq!(back[field], whole[field], "{field}");
        }
        assert!(sse.starts_with("event: message_start\n"));
        assert!(sse.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }

    #[test]
    fn a_response_replays_as_typed_events_that_gather_back_to_it() {
        let whole = json!({
            "id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
            "model": "claude-x", "output": [
                {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "plan"}]},
                {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Hi", "annotations": []}]},
                {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "c1",
                 "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                {"id": "ctc_1", "type": "custom_tool_call", "status": "completed", "call_id": "c2",
                 "name": "apply_patch", "input": "patch"}],
            "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        });
        let (back, sse) = round_trip(Wire::Responses, &whole, false);
        assert_eq!(
            back, whole,
            "the terminal event holds the response as it was"
        );
        let events: Vec<Value> = sse
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.custom_tool_call_input.delta",
                "response.custom_tool_call_input.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i);
        }
        assert_eq!(events[0]["response"]["status"], "in_progress");
        assert_eq!(events[8]["item"]["content"], json!([]));
        assert_eq!(
            (&events[10]["item_id"], &events[10]["delta"]),
            (&json!("msg_1"), &json!("Hi"))
        );
        assert_eq!(events[15]["delta"], "{\"cmd\":\"ls\"}");
        let failed =
            "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{}}\n\n";
        assert!(collect::whole(Wire::Responses, &[Bytes::from(failed)], None).is_none());
    }
}
