//! The Responses API (`/v1/responses`): routed by model, native to OpenAI providers, and
//! translated both ways (answers and typed event streams) for the others.

use crate::support::{client, post_json, Mock, Reply, Sidecar};
use serde_json::{json, Value};

/// `claude-*` to an Anthropic mock, `gemini-*` to a Gemini mock, the rest to an OpenAI mock.
async fn three() -> (Mock, Mock, Mock, Sidecar) {
    let openai = Mock::start().await;
    let anthropic = Mock::start().await;
    let gemini = Mock::start().await;
    let sidecar = Sidecar::start(&format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-oa\n\
         \x20 an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         \x20 ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: sk-ge\n\
         routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"gemini-*\"\n    provider: ge\n\
         \x20 - match: \"*\"\n    provider: oa\n",
        openai.url("/v1"),
        anthropic.url(""),
        gemini.url("")
    ))
    .await;
    (openai, anthropic, gemini, sidecar)
}

/// The events of an SSE body: (`event:` name, data).
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default();
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            (name.to_string(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn an_openai_model_gets_the_body_as_it_is_at_its_responses_path() {
    let (openai, anthropic, _, sidecar) = three().await;
    openai.push(Reply::status(
        200,
        json!({"id": "resp_up", "object": "response", "status": "completed",
        "output": [], "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}),
    ));
    let body = json!({"model": "gpt-5", "input": "hi", "store": false, "reasoning": {"effort": "low"},
        "customer_identifier": "c-1"});
    let r = post_json(&sidecar, "/v1/responses", &body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], "resp_up");
    let got = openai.last();
    assert_eq!(got.path, "/v1/responses");
    assert_eq!(got.header("authorization"), Some("Bearer sk-oa"));
    assert_eq!(
        got.json(),
        json!({"model": "gpt-5", "input": "hi", "store": false, "reasoning": {"effort": "low"}})
    );
    assert_eq!(anthropic.count(), 0);
}

#[tokio::test]
async fn a_claude_model_is_asked_in_messages_and_answers_a_response() {
    let (openai, anthropic, _, sidecar) = three().await;
    anthropic.push(Reply::anthropic_message("claude-x", "hello"));
    let body = json!({"model": "claude-x", "instructions": "be brief", "input": "hi",
        "max_output_tokens": 50, "store": false});
    let r = post_json(&sidecar, "/api/responses", &body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["object"].as_str(), v["status"].as_str()),
        (Some("response"), Some("completed"))
    );
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    let message = &v["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(
        message["content"][0],
        json!({"type": "output_text", "text": "hello", "annotations": []})
    );
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 2);
    let got = anthropic.last();
    assert_eq!(got.path, "/v1/messages");
    let sent = got.json();
    assert_eq!(sent["system"][0]["text"], "be brief");
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["messages"][0]["content"][0]["text"], "hi");
    assert_eq!(openai.count(), 0);
}

#[tokio::test]
async fn a_tool_round_trip_reaches_anthropic_as_tool_use_and_tool_result() {
    let (_, anthropic, _, sidecar) = three().await;
    anthropic.push(Reply::status(200, json!({"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-x", "content": [{"type": "tool_use", "id": "toolu_1", "name": "shell",
        "input": {"cmd": "ls"}}], "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}})));
    let tools = json!([{"type": "function", "name": "shell", "description": "run",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}, "strict": false}]);
    let first = post_json(
        &sidecar,
        "/v1/responses",
        &json!({"model": "claude-x", "input": "list files", "tools": tools}),
    )
    .await;
    let first: Value = first.json().await.unwrap();
    let call = first["output"][0].clone();
    assert_eq!(call["type"], "function_call");
    assert_eq!(
        (call["call_id"].as_str(), call["name"].as_str()),
        (Some("toolu_1"), Some("shell"))
    );
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"cmd": "ls"})
    );

    anthropic.push(Reply::anthropic_message("claude-x", "one file"));
    let input = json!([{"role": "user", "content": "list files"}, call,
        {"type": "function_call_output", "call_id": "toolu_1", "output": "a.txt"}]);
    let second = post_json(
        &sidecar,
        "/v1/responses",
        &json!({"model": "claude-x", "input": input, "tools": tools}),
    )
    .await;
    assert_eq!(second.status(), 200);
    let sent = anthropic.last().json();
    assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(sent["messages"][1]["content"][0]["id"], "toolu_1");
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(sent["tools"][0]["name"], "shell");
}

#[tokio::test]
async fn a_claude_stream_is_told_as_typed_events_with_a_terminal_response() {
    let (_, anthropic, gemini, sidecar) = three().await;
    anthropic.push(Reply::anthropic_stream("claude-x", &["Hel", "lo"]));
    gemini.push(Reply::gemini(&["Hel", "lo"], true));
    for model in ["claude-x", "gemini-2.5-flash"] {
        let r = post_json(
            &sidecar,
            "/v1/responses",
            &json!({"model": model, "input": "hi", "stream": true}),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let events = events(&r.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names.first(),
            Some(&"response.created"),
            "{model}: {names:?}"
        );
        assert_eq!(
            names.last(),
            Some(&"response.completed"),
            "{model}: {names:?}"
        );
        let deltas: String = events
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "Hello", "{model}");
        for (i, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i, "{model}");
        }
        let done = &events.last().unwrap().1["response"];
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello", "{model}");
        assert_eq!(done["usage"]["output_tokens"], 2, "{model}");
    }
    assert!(gemini.last().path.contains(":streamGenerateContent"));
}

#[tokio::test]
async fn what_only_openai_runs_is_refused_before_any_provider_is_asked() {
    let (openai, anthropic, _, sidecar) = three().await;
    let cases = [
        (
            json!({"model": "claude-x", "input": "hi", "tools": [{"type": "web_search"}]}),
            "web_search",
        ),
        (
            json!({"model": "claude-x", "input": "hi", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"model": "claude-x", "input": 5}), "body"),
    ];
    for (body, named) in cases {
        let r = client()
            .post(sidecar.url("/v1/responses"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
    assert_eq!(openai.count() + anthropic.count(), 0);
}
