//! What the app must get, whatever the provider: the OpenAI side of each capability.

use crate::providers::{Capability, ProviderCase};
use crate::support::{Mock, Reply, Sidecar};
use crate::{call, reply};
use serde_json::{json, Value};

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn parse(provider: &str, status: u16, text: &str) -> Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{provider} ({status}): not JSON ({e}): {text}"))
}

/// The `data:` payloads of an SSE body.
fn events(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect()
}

fn chunks(text: &str) -> Vec<Value> {
    events(text)
        .into_iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

pub async fn run(cap: Capability, case: &ProviderCase, mock: &Mock, sidecar: &Sidecar) {
    let p = case.kind;
    let model = "conf-model";
    match cap {
        Capability::Text | Capability::System | Capability::MultiTurn => {
            mock.push(reply(case, "text.json"));
            let messages = match cap {
                Capability::Text => json!([user("Say hello")]),
                Capability::System => {
                    json!([{"role": "system", "content": "Be brief."}, user("Say hello")])
                }
                _ => {
                    json!([user("Hi"), {"role": "assistant", "content": "Hello!"}, user("How are you?")])
                }
            };
            let (status, text) = call(sidecar, json!({"model": model, "messages": messages})).await;
            let v = parse(p, status, &text);
            assert_eq!(status, 200, "{p}: {text}");
            assert_eq!(v["object"], "chat.completion", "{p}");
            assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"), "{p}");
            assert_eq!(v["choices"][0]["message"]["role"], "assistant", "{p}");
            assert_eq!(v["choices"][0]["message"]["content"], "Hello there", "{p}");
            assert_eq!(v["choices"][0]["finish_reason"], "stop", "{p}");
            assert_eq!(v["usage"]["total_tokens"], 27, "{p}: {text}");
        }
        Capability::ToolRoundTrip => {
            mock.push(reply(case, "tool_call.json"));
            let first = json!({"model": model, "messages": [user("Weather in Paris?")], "tools": weather_tool()});
            let (status, text) = call(sidecar, first).await;
            let v = parse(p, status, &text);
            assert_eq!(status, 200, "{p}: {text}");
            assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{p}");
            let tool_call = v["choices"][0]["message"]["tool_calls"][0].clone();
            assert_eq!(tool_call["type"], "function", "{p}");
            assert_eq!(tool_call["function"]["name"], "get_weather", "{p}");
            let args: Value =
                serde_json::from_str(tool_call["function"]["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(args["city"], "Paris", "{p}");
            assert!(!tool_call["id"].as_str().unwrap().is_empty(), "{p}");
            mock.push(reply(case, "text.json"));
            let second = json!({"model": model, "tools": weather_tool(), "messages": [
                user("Weather in Paris?"),
                {"role": "assistant", "content": null, "tool_calls": [tool_call]},
                {"role": "tool", "tool_call_id": tool_call["id"], "content": "{\"temp\": 21}"}]});
            let (status, text) = call(sidecar, second).await;
            assert_eq!(status, 200, "{p}: {text}");
            assert_eq!(
                parse(p, status, &text)["choices"][0]["message"]["content"],
                "Hello there",
                "{p}"
            );
        }
        Capability::JsonMode => {
            mock.push(reply(case, "json_mode.json"));
            let schema = json!({"type": "object", "properties": {"answer": {"type": "integer"}},
                "required": ["answer"], "additionalProperties": false});
            let body = json!({"model": model, "messages": [user("The answer?")],
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}}});
            let (status, text) = call(sidecar, body).await;
            let v = parse(p, status, &text);
            assert_eq!(status, 200, "{p}: {text}");
            let content: Value =
                serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap())
                    .unwrap();
            assert_eq!(content["answer"], 42, "{p}");
            assert_eq!(v["choices"][0]["finish_reason"], "stop", "{p}");
            assert!(
                v["choices"][0]["message"].get("tool_calls").is_none(),
                "{p}"
            );
        }
        Capability::StreamText => {
            mock.push(reply(case, "stream_text.sse"));
            let body = json!({"model": model, "messages": [user("Say hello")], "stream": true,
                "stream_options": {"include_usage": true}});
            let (status, text) = call(sidecar, body).await;
            assert_eq!(status, 200, "{p}: {text}");
            let all = chunks(&text);
            assert_eq!(all[0]["choices"][0]["delta"]["role"], "assistant", "{p}");
            assert!(
                all.iter()
                    .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == all[0]["id"]),
                "{p}"
            );
            let content: String = all
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(content, "Hello there", "{p}");
            assert!(
                all.iter()
                    .any(|c| c["choices"][0]["finish_reason"] == "stop"),
                "{p}"
            );
            let usage = all.last().unwrap();
            assert_eq!(usage["choices"], json!([]), "{p}: {text}");
            assert_eq!(usage["usage"]["total_tokens"], 27, "{p}: {text}");
            assert_eq!(events(&text).last(), Some(&"[DONE]"), "{p}");
        }
        Capability::StreamToolCall => {
            mock.push(reply(case, "stream_tool.sse"));
            let body = json!({"model": model, "messages": [user("Weather in Paris?")], "tools": weather_tool(), "stream": true});
            let (status, text) = call(sidecar, body).await;
            assert_eq!(status, 200, "{p}: {text}");
            let all = chunks(&text);
            let calls: Vec<&Value> = all
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
                .flatten()
                .filter(|t| t["index"] == 0)
                .collect();
            assert_eq!(calls[0]["function"]["name"], "get_weather", "{p}: {text}");
            assert!(
                calls[0]["id"].as_str().is_some_and(|id| !id.is_empty()),
                "{p}"
            );
            assert!(
                calls.iter().skip(1).all(|t| t.get("id").is_none()),
                "{p}: one call, one id"
            );
            let args: String = calls
                .iter()
                .filter_map(|t| t["function"]["arguments"].as_str())
                .collect();
            let args: Value =
                serde_json::from_str(&args).unwrap_or_else(|e| panic!("{p}: {e}: {args}"));
            assert_eq!(args["city"], "Paris", "{p}");
            assert!(
                all.iter()
                    .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"),
                "{p}"
            );
            assert!(!text.contains("\"usage\""), "{p}: usage was not asked for");
            assert_eq!(events(&text).last(), Some(&"[DONE]"), "{p}");
        }
        Capability::RateLimit | Capability::BadRequest => {
            let (fixture, expected) = if cap == Capability::RateLimit {
                ("error_429.json", 429)
            } else {
                ("error_400.json", 400)
            };
            mock.push(reply(case, fixture));
            let (status, text) =
                call(sidecar, json!({"model": model, "messages": [user("x")]})).await;
            let v = parse(p, status, &text);
            assert_eq!(status, expected, "{p}: {text}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{p}: {text}"
            );
            assert_eq!(mock.count(), 1, "{p}: retries were off");
        }
        Capability::StreamCut => {
            let Reply::Sse { blocks, .. } = reply(case, "stream_text.sse") else {
                unreachable!()
            };
            // Cut right after the first content: the app already has some of the answer.
            let cut = blocks.iter().position(|b| b.contains("Hello")).unwrap() + 1;
            mock.push(Reply::Sse {
                blocks,
                gap: std::time::Duration::from_millis(10),
                cut_after: Some(cut),
            });
            let body = json!({"model": model, "messages": [user("Say hello")], "stream": true});
            let (status, text) = call(sidecar, body).await;
            assert_eq!(status, 200, "{p}: {text}");
            let last = *events(&text).last().unwrap();
            let error: Value =
                serde_json::from_str(last).unwrap_or_else(|e| panic!("{p}: {e}: {text}"));
            assert!(error["error"]["message"].as_str().is_some(), "{p}: {text}");
            assert!(
                !text.contains("[DONE]"),
                "{p}: a cut stream must not look complete"
            );
            let content: String = chunks(&text)
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(
                content, "Hello",
                "{p}: what came before the cut reached the app"
            );
        }
    }
    (case.check)(cap, &mock.received());
}
