//! Golden files for the Responses API on the providers it is translated for: the app's
//! request, what the provider received in its own wire format, and the answer (or the typed
//! event stream) the app got, one file per case under `tests/fixtures/responses/<provider>/`.
//! The provider answers from the same fixtures as the chat conformance cases.
//!
//! Ids and times the gateway makes afresh are numbered placeholders (`msg_1`), so a file is
//! the same on every run while still showing which events name the same item. With
//! `GOLDEN_UPDATE=1` the files are written anew instead of compared: review the diff.

use crate::providers::PROVIDERS;
use crate::support::post_json;
use crate::{reply, setup};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// Each case: its name, and the provider fixture that answers it.
const CASES: [(&str, &str); 6] = [
    ("text", "text.json"),
    ("tool_call", "tool_call.json"),
    ("stream_text", "stream_text.sse"),
    ("stream_tool", "stream_tool.sse"),
    ("web_search", "web_search.json"),
    ("stream_web_search", "stream_web_search.sse"),
];

/// Responses API id prefixes the gateway makes ids with.
const FRESH: [&str; 6] = ["resp", "msg", "fc", "ctc", "rs", "ws"];

/// The app's request for a case.
fn request(case: &str) -> Value {
    let mut body = json!({"model": "conf-model", "instructions": "Be brief.",
        "max_output_tokens": 200, "stream": case.starts_with("stream"),
        "retry_params": {"retry_enabled": false}});
    if case.ends_with("web_search") {
        // What the Codex CLI sends by default: its function tools and the built-in search.
        body["input"] = json!("What is new in Rust 2024?");
        body["tools"] = json!([{"type": "function", "name": "shell", "description": "Run a command",
            "strict": false, "parameters": {"type": "object",
            "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
            {"type": "web_search", "filters": {"allowed_domains": ["rust-lang.org"]}}]);
    } else if case.ends_with("tool") || case == "tool_call" {
        body["input"] = json!([{"role": "user",
            "content": [{"type": "input_text", "text": "Weather in Paris?"}]}]);
        body["tools"] = json!([{"type": "function", "name": "get_weather",
            "description": "Weather for a city", "strict": false, "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    } else {
        body["input"] = json!("Say hello");
    }
    body
}

/// Numbers fresh ids in the order they first appear, and zeroes times.
#[derive(Default)]
struct Placeholders(HashMap<String, String>);

impl Placeholders {
    fn apply(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    match (key.as_str(), &*v) {
                        ("created_at", Value::Number(_)) => *v = json!(0),
                        (_, Value::String(s)) => {
                            if let Some(named) = self.named(s) {
                                *v = json!(named);
                            }
                        }
                        _ => self.apply(v),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.apply(v)),
            _ => {}
        }
    }

    /// A string with a fresh id in it, with the id numbered; none for any other.
    fn named(&mut self, s: &str) -> Option<String> {
        let (prefix, rest) = s.split_once('_')?;
        let hex =
            |t: &str, n: usize| t.len() >= n && t.bytes().take(n).all(|b| b.is_ascii_hexdigit());
        let (id, tail) = match prefix {
            p if FRESH.contains(&p) && rest.len() == 32 && hex(rest, 32) => (s, ""),
            // Gemini gives calls no id: the gateway makes `call_<16 hex>`, with the call's
            // thought signature after it.
            "call" if hex(rest, 16) && (rest.len() == 16 || rest[16..].starts_with("__")) => {
                s.split_at(prefix.len() + 1 + 16)
            }
            _ => return None,
        };
        let n = self.0.len() + 1;
        let named = self
            .0
            .entry(id.to_string())
            .or_insert_with(|| format!("{prefix}_{n}"));
        Some(format!("{named}{tail}"))
    }
}

/// An SSE body as `[{"event": name, "data": data}, ...]`.
fn events(text: &str) -> Value {
    let events = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            let data: Value = serde_json::from_str(data.unwrap_or("null")).unwrap();
            json!({"event": name, "data": data})
        })
        .collect();
    Value::Array(events)
}

fn golden_path(provider: &str, case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/responses")
        .join(provider)
        .join(format!("{case}.json"))
}

/// Compares `got` with its golden file, or writes it there under `GOLDEN_UPDATE=1`.
fn golden(provider: &str, case: &str, got: &Value) {
    let path = golden_path(provider, case);
    let text = serde_json::to_string_pretty(got).unwrap() + "\n";
    if std::env::var_os("GOLDEN_UPDATE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (GOLDEN_UPDATE=1 writes it)", path.display()));
    let want: Value = serde_json::from_str(&want).unwrap();
    assert_eq!(
        got,
        &want,
        "{provider} {case} differs from {}; got:\n{text}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_requests_answers_and_streams_match_their_golden_files() {
    for provider in PROVIDERS.iter().filter(|p| p.kind != "openai") {
        let (mock, sidecar) = setup(provider).await;
        for (case, fixture) in CASES {
            mock.push(reply(provider, fixture));
            let request = request(case);
            let response = post_json(&sidecar, "/v1/responses", &request).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let answer = if case.starts_with("stream") {
                events(&text)
            } else {
                serde_json::from_str(&text).unwrap()
            };
            let sent = mock.last();
            let mut got = Map::new();
            got.insert("request".into(), request);
            got.insert(
                "sent".into(),
                json!({"path": sent.path, "body": sent.json()}),
            );
            got.insert("status".into(), status.into());
            got.insert("answer".into(), answer);
            let mut got = Value::Object(got);
            Placeholders::default().apply(&mut got);
            golden(provider.fixtures, case, &got);
        }
    }
}
