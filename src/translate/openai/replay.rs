//! A whole chat completion told again as its chunk stream (how the cache answers a streaming
//! request), under a fresh id.

use super::stream::DONE;
use super::{completion_id, now_unix};
use crate::translate::sse::{write_data, write_json};
use serde_json::{json, Map, Value};

/// Per choice: the role, the text (with its logprobs), a refusal, each tool call, then the
/// finish reason; then the usage chunk if asked, and `[DONE]`.
pub(crate) fn stream(whole: Map<String, Value>, include_usage: bool) -> Option<Vec<u8>> {
    let mut head = Map::new();
    head.insert("id".into(), completion_id().into());
    head.insert("object".into(), "chat.completion.chunk".into());
    head.insert("created".into(), now_unix().into());
    for name in ["model", "system_fingerprint", "service_tier"] {
        if let Some(value) = whole.get(name).filter(|v| !v.is_null()) {
            head.insert(name.into(), value.clone());
        }
    }
    let mut out = Vec::new();
    let mut chunk = |choices: Value, usage: Option<&Value>| {
        let mut chunk = head.clone();
        chunk.insert("choices".into(), choices);
        if let Some(usage) = usage {
            chunk.insert("usage".into(), usage.clone());
        }
        write_json(&mut out, None, &chunk);
    };
    for choice in whole.get("choices")?.as_array()? {
        let index = choice.get("index").cloned().unwrap_or_else(|| 0.into());
        let message = choice.get("message")?;
        let delta = |delta: Value, extra: Option<(&str, &Value)>| {
            let mut one = json!({"index": index, "delta": delta, "finish_reason": null});
            if let Some((name, value)) = extra {
                one[name] = value.clone();
            }
            json!([one])
        };
        let role = message.get("role").cloned().unwrap_or("assistant".into());
        let content = message.get("content").and_then(Value::as_str);
        let first = json!({"role": role, "content": content.map(|_| "")});
        chunk(delta(first, None), None);
        if let Some(text) = content.filter(|t| !t.is_empty()) {
            let logprobs = choice.get("logprobs").filter(|l| !l.is_null());
            chunk(
                delta(
                    json!({ "content": text }),
                    logprobs.map(|l| ("logprobs", l)),
                ),
                None,
            );
        }
        if let Some(refusal) = message.get("refusal").filter(|r| r.is_string()) {
            chunk(delta(json!({ "refusal": refusal }), None), None);
        }
        let calls = message.get("tool_calls").and_then(Value::as_array);
        for (i, call) in calls.into_iter().flatten().enumerate() {
            let mut call = call.as_object()?.clone();
            call.insert("index".into(), i.into());
            chunk(delta(json!({ "tool_calls": [call] }), None), None);
        }
        let reason = choice.get("finish_reason").unwrap_or(&Value::Null);
        chunk(delta(json!({}), Some(("finish_reason", reason))), None);
    }
    if include_usage {
        chunk(json!([]), Some(whole.get("usage").unwrap_or(&Value::Null)));
    }
    write_data(&mut out, DONE.as_bytes());
    Some(out)
}
