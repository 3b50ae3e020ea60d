//! A whole Messages answer told again as its event stream (how the cache answers a streaming
//! request), under a fresh id.

use super::message_id;
use crate::translate::sse::write_json;
use serde_json::{json, Map, Value};

/// `message_start` (no content yet), each block (started empty, then its content as one
/// delta, then stopped), `message_delta` with the stop reason and usage, `message_stop`.
pub(crate) fn stream(mut whole: Map<String, Value>) -> Option<Vec<u8>> {
    let content = match whole.remove("content") {
        Some(Value::Array(blocks)) => blocks,
        _ => return None,
    };
    let stop_reason = whole.insert("stop_reason".into(), Value::Null);
    let stop_sequence = whole.insert("stop_sequence".into(), Value::Null);
    whole.insert("id".into(), message_id().into());
    whole.insert("content".into(), json!([]));
    let usage = whole.get("usage").cloned().unwrap_or_else(|| json!({}));
    let mut start_usage = usage.as_object().cloned().unwrap_or_default();
    start_usage.insert("output_tokens".into(), 0.into());
    whole.insert("usage".into(), Value::Object(start_usage));
    let mut out = Vec::new();
    let mut event = |name: &str, value: Value| write_json(&mut out, Some(name), &value);
    event(
        "message_start",
        json!({"type": "message_start", "message": whole}),
    );
    for (index, block) in content.into_iter().enumerate() {
        let (start, deltas) = unrolled(block);
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in deltas {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    let delta = json!({"stop_reason": stop_reason, "stop_sequence": stop_sequence});
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": delta, "usage": usage}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    Some(out)
}

/// A block as its `content_block_start` carries it, and the deltas that fill it in. Blocks
/// that never stream in pieces (tool results, redacted thinking) start whole.
fn unrolled(mut block: Value) -> (Value, Vec<Value>) {
    let kind = block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut take = |field: &str, empty: Value| match block.get_mut(field) {
        Some(value) => std::mem::replace(value, empty),
        None => Value::Null,
    };
    let deltas = match kind.as_str() {
        "text" => {
            let text = take("text", "".into());
            let citations = take("citations", json!([]));
            let mut deltas = vec![json!({"type": "text_delta", "text": text})];
            for citation in citations.as_array().into_iter().flatten() {
                deltas.push(json!({"type": "citations_delta", "citation": citation}));
            }
            deltas
        }
        "thinking" => {
            let thinking = take("thinking", "".into());
            let signature = take("signature", "".into());
            let mut deltas = vec![json!({"type": "thinking_delta", "thinking": thinking})];
            if signature.is_string() {
                deltas.push(json!({"type": "signature_delta", "signature": signature}));
            }
            deltas
        }
        "tool_use" | "server_tool_use" => {
            let input = take("input", json!({}));
            let partial_json = serde_json::to_string(&input).unwrap_or_default();
            vec![json!({"type": "input_json_delta", "partial_json": partial_json})]
        }
        _ => Vec::new(),
    };
    (block, deltas)
}
