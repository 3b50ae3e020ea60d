//! The built-in `echo` provider: answers in OpenAI format from the request itself, with no
//! network and no key, so the default config works offline and demos show real answers.
//!
//! Chat: the reply is the text of the last user message (streamed word by word when asked).
//! Embeddings: a small deterministic vector per input. Usage counts words.

use crate::body::JsonBody;
use crate::endpoint::Endpoint;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// An answer made in-process: the same shape the relay reads from an HTTP upstream.
#[derive(Debug)]
pub struct LocalAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub chunks: VecDeque<Bytes>,
}

/// Answers one request. A body the echo cannot use (no `messages` array) gets a 400 in
/// OpenAI shape, as a real provider would give.
pub fn answer(endpoint: Endpoint, body: &JsonBody<'_>, model: &str, stream: bool) -> LocalAnswer {
    match endpoint {
        Endpoint::Embeddings => json_answer(200, &embeddings(body, model)),
        _ => match body.get_as::<Vec<Value>>("messages") {
            Ok(Some(messages)) => {
                let include_usage = body
                    .get_as::<Value>("stream_options")
                    .ok()
                    .flatten()
                    .is_some_and(|o| o["include_usage"] == true);
                chat(&messages, model, stream, include_usage)
            }
            _ => json_answer(
                400,
                &json!({"error": {"message": "`messages` must be an array of messages",
                    "type": "invalid_request_error", "param": "messages", "code": null}}),
            ),
        },
    }
}

fn json_answer(status: u16, value: &Value) -> LocalAnswer {
    LocalAnswer {
        status,
        content_type: "application/json",
        chunks: VecDeque::from([Bytes::from(serde_json::to_vec(value).unwrap_or_default())]),
    }
}

fn chat(messages: &[Value], model: &str, stream: bool, include_usage: bool) -> LocalAnswer {
    let reply = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text_of)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "(echo) there is no user message to echo".to_string());
    let prompt_tokens: usize = messages.iter().map(|m| words(&text_of(m))).sum();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": words(&reply),
        "total_tokens": prompt_tokens + words(&reply),
    });
    let id = format!("chatcmpl-echo{:016x}", rand::random::<u64>());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if !stream {
        return json_answer(
            200,
            &json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                    "logprobs": null, "finish_reason": "stop"}],
                "usage": usage,
            }),
        );
    }
    let chunk = |delta: Value, finish: Value, usage: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null,
            "finish_reason": finish}]});
        if include_usage {
            c["usage"] = usage;
        }
        sse(&c)
    };
    let mut chunks = VecDeque::new();
    chunks.push_back(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
        Value::Null,
    ));
    for piece in reply.split_inclusive(' ') {
        chunks.push_back(chunk(json!({"content": piece}), Value::Null, Value::Null));
    }
    chunks.push_back(chunk(json!({}), json!("stop"), Value::Null));
    if include_usage {
        chunks.push_back(sse(&json!({"id": id, "object": "chat.completion.chunk",
            "created": created, "model": model, "choices": [], "usage": usage})));
    }
    chunks.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    LocalAnswer {
        status: 200,
        content_type: "text/event-stream",
        chunks,
    }
}

fn sse(value: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    out.extend(serde_json::to_vec(value).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The text of a message: a string content, or its text parts joined.
fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn embeddings(body: &JsonBody<'_>, model: &str) -> Value {
    let inputs: Vec<String> = match body.get_as::<Value>("input").ok().flatten() {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
        _ => Vec::new(),
    };
    let dims = body
        .get_as::<usize>("dimensions")
        .ok()
        .flatten()
        .unwrap_or(8)
        .clamp(1, 4096);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(
            |(i, text)| json!({"object": "embedding", "index": i, "embedding": vector(text, dims)}),
        )
        .collect();
    let tokens: usize = inputs.iter().map(|t| words(t).max(1)).sum();
    json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}

/// A unit-length vector derived from the text (FNV-1a seeded per dimension): the same text
/// always gets the same embedding.
fn vector(text: &str, dims: usize) -> Vec<f64> {
    let raw: Vec<f64> = (0..dims as u64)
        .map(|d| {
            let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325 ^ d, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            (hash % 2001) as f64 / 1000.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::EPSILON);
    raw.iter().map(|x| x / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> JsonBody<'_> {
        JsonBody::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn echoes_the_last_user_message() {
        let b = body(
            r#"{"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},
            {"role":"user","content":[{"type":"text","text":"hello there"}]}]}"#,
        );
        let a = answer(Endpoint::ChatCompletions, &b, "echo", false);
        let v: Value = serde_json::from_slice(&a.chunks[0]).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello there");
        assert_eq!(v["usage"]["completion_tokens"], 2);
        assert_eq!(v["model"], "echo");
    }

    #[test]
    fn streams_word_by_word_with_usage_on_request() {
        let b = body(
            r#"{"messages":[{"role":"user","content":"a b c"}],"stream_options":{"include_usage":true}}"#,
        );
        let a = answer(Endpoint::ChatCompletions, &b, "echo", true);
        let text: String = a
            .chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        assert_eq!(a.content_type, "text/event-stream");
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(text.matches("\"content\":\"").count(), 4); // role chunk + 3 words
        assert!(text.contains("\"choices\":[],"));
    }

    #[test]
    fn bad_messages_are_a_400() {
        let a = answer(
            Endpoint::ChatCompletions,
            &body(r#"{"messages":"hi"}"#),
            "echo",
            false,
        );
        assert_eq!(a.status, 400);
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let b = body(r#"{"input":["a","b"],"dimensions":4}"#);
        let v = embeddings(&b, "echo-embed");
        let first: Vec<f64> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(first.len(), 4);
        assert!((first.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(v, embeddings(&b, "echo-embed"));
        assert_ne!(v["data"][0], v["data"][1]["embedding"]);
    }
}
