//! The official Python SDKs against the real sidecar (installed by `.ci/run` from
//! `tests/requirements.txt`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use support::mock::Flavor;
use support::{Mock, Reply, Sidecar};

/// Runs a Python script from `tests/sdk/` with `SIDECAR_URL` set; fails with its output.
fn run_python(script: &str, sidecar_url: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let output = Command::new("python3")
        .arg(&path)
        .env("SIDECAR_URL", sidecar_url)
        .output()
        .expect("python3 is needed for the SDK tests");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "install the SDKs first: python3 -m pip install -r tests/requirements.txt\n{stderr}"
    );
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_python_sdk() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  mock:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-mock\n  echo:\n    type: echo\n\
         \x20 down:\n    type: openai\n    base_url: \"http://127.0.0.1:{}/v1\"\n\
         load_balance_groups:\n  pool:\n    models:\n      - {{model: echo}}\n      - {{model: echo-2}}\n\
         routes:\n  - match: echo\n    provider: echo\n  - match: \"echo-*\"\n    provider: echo\n  - match: mock-down\n    provider: down\n  - match: \"mock-*\"\n    provider: mock\n",
        mock.url("/v1"),
        support::free_port()
    );
    let sidecar = Sidecar::start(&config).await;
    let url = sidecar.url("/v1");
    tokio::task::spawn_blocking(move || run_python("openai_sdk.py", &url))
        .await
        .unwrap();
    let got = mock.received();
    assert!(got.len() >= 2);
    assert!(got
        .iter()
        .all(|g| g.header("authorization") == Some("Bearer sk-mock")));
    assert!(got
        .iter()
        .all(|g| g.json().get("customer_identifier").is_none()));
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_python_sdk() {
    let native = Mock::start_as(Flavor::Anthropic).await;
    let counter = Mock::start_as(Flavor::Anthropic).await;
    counter.push(Reply::status(200, serde_json::json!({"input_tokens": 12})));
    let openai = Mock::start().await;
    let tools = Mock::start().await;
    tools.push(Reply::json_text(200, &fixture("openai/tool_call.json")));
    tools.push(Reply::sse_text(&fixture("openai/stream_tool.sse")));
    let config = format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         \x20 count:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         \x20 oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-oa\n\
         \x20 tools:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-oa\n  echo:\n    type: echo\n\
         routes:\n  - match: claude-count\n    provider: count\n  - match: \"claude-*\"\n    provider: an\n\
         \x20 - match: gpt-tools\n    provider: tools\n  - match: echo\n    provider: echo\n  - match: \"gpt-*\"\n    provider: oa\n",
        native.url(""),
        counter.url(""),
        openai.url("/v1"),
        tools.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let url = sidecar.url("");
    tokio::task::spawn_blocking(move || run_python("anthropic_sdk.py", &url))
        .await
        .unwrap();

    let got = native.received();
    // A plain answer, a stream, and the one miss of the cached stream.
    assert_eq!(got.len(), 3);
    let first = &got[0];
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.header("x-api-key"), Some("sk-an"));
    assert_eq!(
        first.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert!(first.header("anthropic-version").is_some());
    assert_eq!(first.header("authorization"), None);
    assert_eq!(
        first.json()["metadata"],
        serde_json::json!({"user_id": "u-1"})
    );
    assert_eq!(counter.last().path, "/v1/messages/count_tokens");
    let translated = openai.received();
    assert_eq!(
        translated[0].json()["messages"][0],
        serde_json::json!({"role": "system", "content": "be brief"})
    );
    assert!(translated
        .iter()
        .all(|r| r.header("anthropic-version").is_none()));
    let after_tool = openai.last().json();
    assert_eq!(
        after_tool["messages"][1]["tool_calls"][0]["id"],
        after_tool["messages"][2]["tool_call_id"]
    );
    assert_eq!(tools.count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn google_genai_python_sdk() {
    let gemini = Mock::start_as(Flavor::Gemini).await;
    gemini.push(Reply::json_text(200, &fixture("gemini/tool_call.json")));
    gemini.push(Reply::status(200, serde_json::json!({"totalTokens": 5})));
    let config = format!(
        "providers:\n  ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: sk-ge\n  oa:\n    type: openai\n    base_url: \"http://127.0.0.1:9/v1\"\n\
         routes:\n  - match: \"gemini-*\"\n    provider: ge\n  - match: \"*\"\n    provider: oa\n",
        gemini.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let url = sidecar.url("");
    tokio::task::spawn_blocking(move || run_python("gemini_sdk.py", &url))
        .await
        .unwrap();
    let got = gemini.received();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "/v1beta/models/gemini-2.5-flash:countTokens",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "/v1/models/gemini-2.5-flash:generateContent",
        ]
    );
    assert!(got
        .iter()
        .all(|r| r.header("x-goog-api-key") == Some("sk-ge")));
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_python_sdk_responses_api_on_claude_and_gemini() {
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    anthropic.push(Reply::status(
        200,
        serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"cmd": "ls"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}}),
    ));
    anthropic.push(Reply::anthropic_message("claude-x", "mock answer"));
    anthropic.push(Reply::status(
        200,
        serde_json::json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig-1"},
                {"type": "text", "text": "thought"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}}),
    ));
    let gemini = Mock::start_as(Flavor::Gemini).await;
    let config = format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         \x20 ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: sk-ge\n\
         routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"gemini-*\"\n    provider: ge\n\
         responses:\n  store: true\n",
        anthropic.url(""),
        gemini.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let url = sidecar.url("/v1");
    tokio::task::spawn_blocking(move || run_python("responses_sdk.py", &url))
        .await
        .unwrap();
    let got = anthropic.received();
    // The tool's output went back as Anthropic's tool_result for the call it answers.
    let after_tool = got[1].json();
    assert_eq!(after_tool["messages"][1]["content"][0]["id"], "toolu_1");
    assert_eq!(
        after_tool["messages"][2]["content"][0]["tool_use_id"],
        "toolu_1"
    );
    // The signed thinking came back, exactly, on the next turn, from encrypted_content.
    let next_turn = got[3].json();
    assert_eq!(
        next_turn["messages"][1]["content"][0],
        serde_json::json!({"type": "thinking", "thinking": "hmm", "signature": "sig-1"})
    );
    // previous_response_id: the last turn went with the whole conversation.
    let roles = |body: serde_json::Value, field: &str| -> Vec<String> {
        let turns = body[field].as_array().cloned().unwrap_or_default();
        turns
            .iter()
            .map(|t| t["role"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let last = got.last().unwrap().json();
    assert_eq!(roles(last, "messages"), ["user", "assistant", "user"]);
    let last = gemini.received().last().unwrap().json();
    assert_eq!(roles(last, "contents"), ["user", "model", "user"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_agents_sdk_runs_a_tool_agent_on_a_claude_model() {
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    anthropic.push(Reply::status(
        200,
        serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 9, "output_tokens": 5}}),
    ));
    anthropic.push(Reply::anthropic_message(
        "claude-x",
        "It is sunny in Paris.",
    ));
    let config = format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         routes:\n  - match: \"claude-*\"\n    provider: an\n",
        anthropic.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let url = sidecar.url("/v1");
    tokio::task::spawn_blocking(move || run_python("agents_sdk.py", &url))
        .await
        .unwrap();
    let got = anthropic.received();
    assert_eq!(got.len(), 2);
    let first = got[0].json();
    assert_eq!(first["tools"][0]["name"], "get_weather");
    assert_eq!(first["system"][0]["text"], "Answer with the tool's help.");
    // The tool's answer went back to Claude as the result of its call.
    let second = got[1].json();
    let result = &second["messages"][2]["content"][0];
    assert_eq!(result["tool_use_id"], "toolu_w");
    assert!(result.to_string().contains("sunny in Paris"), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_python_sdk_meets_a_limit_as_a_rate_limit_error() {
    let config = "providers:\n  echo:\n    type: echo\nroutes:\n  - match: \"*\"\n    provider: echo\nlimits:\n  rules:\n    - {name: per-minute, per: global, window: minute, requests: 2}\n";
    let sidecar = Sidecar::start(config).await;
    let url = sidecar.url("/v1");
    tokio::task::spawn_blocking(move || run_python("limits_sdk.py", &url))
        .await
        .unwrap();
}
