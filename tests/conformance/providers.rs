//! The provider types under test: where their API lives, and what each must have received.

use crate::support::mock::Received;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Text,
    System,
    MultiTurn,
    ToolRoundTrip,
    JsonMode,
    StreamText,
    StreamToolCall,
    RateLimit,
    BadRequest,
    StreamCut,
}

pub struct ProviderCase {
    /// The provider `type` in the config.
    pub kind: &'static str,
    /// The folder under `tests/fixtures/`.
    pub fixtures: &'static str,
    /// The mock's path used as `base_url`.
    pub base_path: &'static str,
    /// The upstream model the route sends.
    pub model: &'static str,
    pub unsupported: &'static [Capability],
    /// Checks the requests the provider received for a capability, in order.
    pub check: fn(Capability, &[Received]),
}

pub const PROVIDERS: &[ProviderCase] = &[
    ProviderCase {
        kind: "openai",
        fixtures: "openai",
        base_path: "/v1",
        model: "gpt-4o-mini",
        unsupported: &[],
        check: check_openai,
    },
    ProviderCase {
        kind: "anthropic",
        fixtures: "anthropic",
        base_path: "",
        model: "claude-haiku-4-5",
        unsupported: &[],
        check: check_anthropic,
    },
    ProviderCase {
        kind: "gemini",
        fixtures: "gemini",
        base_path: "",
        model: "gemini-2.5-flash",
        unsupported: &[],
        check: check_gemini,
    },
];

fn roles(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m[key].as_str().unwrap().to_string())
        .collect()
}

fn check_openai(cap: Capability, got: &[Received]) {
    let last = got.last().unwrap();
    let body = last.json();
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(last.header("authorization"), Some("Bearer sk-conformance"));
    assert_eq!(body["model"], "gpt-4o-mini");
    match cap {
        Capability::System => assert_eq!(body["messages"][0]["role"], "system"),
        Capability::MultiTurn => {
            assert_eq!(
                roles(&body["messages"], "role"),
                ["user", "assistant", "user"]
            );
        }
        Capability::ToolRoundTrip => {
            let id = body["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
            assert_eq!(body["messages"][2]["tool_call_id"], id);
        }
        Capability::JsonMode => assert_eq!(body["response_format"]["type"], "json_schema"),
        Capability::StreamText | Capability::StreamToolCall | Capability::StreamCut => {
            assert_eq!(body["stream"], true);
        }
        _ => {}
    }
}

fn check_anthropic(cap: Capability, got: &[Received]) {
    let last = got.last().unwrap();
    let body = last.json();
    assert_eq!(last.path, "/v1/messages");
    assert_eq!(last.header("x-api-key"), Some("sk-conformance"));
    assert_eq!(last.header("authorization"), None);
    assert_eq!(last.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(body["model"], "claude-haiku-4-5");
    assert_eq!(body["max_tokens"], 4096);
    assert!(body.get("retry_params").is_none());
    match cap {
        Capability::Text => {
            assert_eq!(
                body["messages"][0]["content"][0],
                serde_json::json!({"type": "text", "text": "Say hello"})
            );
        }
        Capability::System => {
            assert_eq!(body["system"][0]["text"], "Be brief.");
            assert_eq!(roles(&body["messages"], "role"), ["user"]);
        }
        Capability::MultiTurn => {
            assert_eq!(
                roles(&body["messages"], "role"),
                ["user", "assistant", "user"]
            );
        }
        Capability::ToolRoundTrip => {
            let call = &body["messages"][1]["content"][0];
            assert_eq!(
                (call["type"].as_str(), call["name"].as_str()),
                (Some("tool_use"), Some("get_weather"))
            );
            assert_eq!(call["input"]["city"], "Paris");
            let result = &body["messages"][2]["content"][0];
            assert_eq!(result["type"], "tool_result");
            assert_eq!(result["tool_use_id"], call["id"]);
            assert_eq!(body["tools"][0]["name"], "get_weather");
        }
        Capability::JsonMode => {
            assert_eq!(
                body["tool_choice"],
                serde_json::json!({"type": "tool", "name": "answer"})
            );
            assert_eq!(body["tools"][0]["name"], "answer");
        }
        Capability::StreamText | Capability::StreamToolCall | Capability::StreamCut => {
            assert_eq!(body["stream"], true);
        }
        _ => {}
    }
}

fn check_gemini(cap: Capability, got: &[Received]) {
    let last = got.last().unwrap();
    let body = last.json();
    assert_eq!(last.header("x-goog-api-key"), Some("sk-conformance"));
    assert_eq!(last.header("authorization"), None);
    let streaming = matches!(
        cap,
        Capability::StreamText | Capability::StreamToolCall | Capability::StreamCut
    );
    let expected_path = if streaming {
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    } else {
        "/v1beta/models/gemini-2.5-flash:generateContent"
    };
    assert_eq!(last.path, expected_path);
    assert!(body.get("model").is_none() && body.get("messages").is_none());
    match cap {
        Capability::Text => assert_eq!(body["contents"][0]["parts"][0]["text"], "Say hello"),
        Capability::System => {
            assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
            assert_eq!(roles(&body["contents"], "role"), ["user"]);
        }
        Capability::MultiTurn => {
            assert_eq!(roles(&body["contents"], "role"), ["user", "model", "user"]);
        }
        Capability::ToolRoundTrip => {
            let call = &body["contents"][1]["parts"][0];
            assert_eq!(call["functionCall"]["name"], "get_weather");
            assert_eq!(
                call["thoughtSignature"], "CiQBVKhc7g==",
                "the signature must come back"
            );
            let answer = &body["contents"][2]["parts"][0]["functionResponse"];
            assert_eq!(answer["name"], "get_weather");
            assert_eq!(answer["response"]["temp"], 21);
        }
        Capability::JsonMode => {
            assert_eq!(
                body["generationConfig"]["responseMimeType"],
                "application/json"
            );
            let schema = &body["generationConfig"]["responseSchema"];
            assert_eq!(schema["properties"]["answer"]["type"], "integer");
            assert!(schema.get("additionalProperties").is_none());
        }
        _ => {}
    }
}
