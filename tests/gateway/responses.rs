//! The Responses API (`/v1/responses`): routed by model, native to OpenAI providers, and
//! translated both ways (answers and typed event streams) for the others.

use crate::support::{client, post_json, Mock, Redis, Reply, Sidecar};
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

/// A `custom` tool (the Codex CLI's `apply_patch` is one: free-form text in).
fn apply_patch_tool() -> Value {
    json!([{"type": "custom", "name": "apply_patch", "description": "Edit files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"}}])
}

#[tokio::test]
async fn a_custom_tool_reaches_anthropic_as_a_tool_of_one_string_and_streams_back_as_a_custom_call()
{
    let (_, anthropic, _, sidecar) = three().await;
    let patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch";
    let args = serde_json::to_string(&json!({"input": patch})).unwrap();
    let (head, tail) = args.split_at(args.len() / 2);
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let sse = [
        event("message_start", json!({"type": "message_start", "message": {"id": "msg_1",
            "type": "message", "role": "assistant", "model": "claude-x", "content": [],
            "usage": {"input_tokens": 5, "output_tokens": 1}}})),
        event("content_block_start", json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_p", "name": "apply_patch", "input": {}}})),
        event("content_block_delta", json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": head}})),
        event("content_block_delta", json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": tail}})),
        event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        event("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}})),
        event("message_stop", json!({"type": "message_stop"})),
    ]
    .concat();
    anthropic.push(Reply::sse_text(&sse));
    let body = json!({"model": "claude-x", "input": "add a.txt", "stream": true,
        "tools": apply_patch_tool()});
    let r = post_json(&sidecar, "/v1/responses", &body).await;
    assert_eq!(r.status(), 200);
    let sent = anthropic.last().json();
    assert_eq!(sent["tools"][0]["name"], "apply_patch");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["input"])
    );
    let events = events(&r.text().await.unwrap());
    let input_done = events
        .iter()
        .find(|(n, _)| n == "response.custom_tool_call_input.done")
        .map(|(_, d)| d["input"].clone());
    assert_eq!(input_done, Some(json!(patch)));
    assert!(!events
        .iter()
        .any(|(n, _)| n == "response.function_call_arguments.delta"));
    let call = events.last().unwrap().1["response"]["output"][0].clone();
    assert_eq!(
        (&call["type"], &call["call_id"], &call["input"]),
        (&json!("custom_tool_call"), &json!("toolu_p"), &json!(patch))
    );

    // The next turn sends the call back as a tool_use with that input, and its output.
    anthropic.push(Reply::anthropic_message("claude-x", "added"));
    let input = json!([{"role": "user", "content": "add a.txt"}, call,
        {"type": "custom_tool_call_output", "call_id": "toolu_p", "output": "Done!"}]);
    let body = json!({"model": "claude-x", "input": input, "tools": apply_patch_tool()});
    let second = post_json(&sidecar, "/v1/responses", &body).await;
    assert_eq!(second.status(), 200);
    let sent = anthropic.last().json();
    let used = &sent["messages"][1]["content"][0];
    assert_eq!(
        (&used["type"], &used["input"]),
        (&json!("tool_use"), &json!({"input": patch}))
    );
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], "toolu_p");
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
            json!({"model": "claude-x", "input": "hi", "tools": [{"type": "file_search"}]}),
            "file_search",
        ),
        (
            json!({"model": "claude-x", "input": "hi", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"model": "claude-x", "input": 5}), "input"),
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

/// An Anthropic and a Gemini provider, no OpenAI one, and `responses.store` on (in Redis when
/// `redis` is given).
async fn keeping(anthropic: &Mock, gemini: &Mock, redis: Option<u16>) -> Sidecar {
    let backend = redis.map_or(String::new(), |port| {
        format!("cache:\n  backend: redis\n  redis_url: \"redis://127.0.0.1:{port}\"\n")
    });
    Sidecar::start(&format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         \x20 ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: sk-ge\n\
         routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"gemini-*\"\n    provider: ge\n\
         responses:\n  store: true\n{backend}",
        anthropic.url(""),
        gemini.url("")
    ))
    .await
}

/// The roles and texts of the Anthropic messages a mock was last sent.
fn anthropic_turns(sent: &Value) -> Vec<(String, String)> {
    sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = m["content"]
                .as_array()
                .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
                .unwrap_or_else(|| m["content"].as_str().unwrap_or_default().to_string());
            (m["role"].as_str().unwrap().to_string(), text)
        })
        .collect()
}

#[tokio::test]
async fn previous_response_id_continues_a_kept_conversation_across_providers() {
    let (anthropic, gemini) = (Mock::start().await, Mock::start().await);
    let sidecar = keeping(&anthropic, &gemini, None).await;
    anthropic.push(Reply::anthropic_message("claude-x", "hello"));
    let first = post_json(
        &sidecar,
        "/v1/responses",
        &json!({"model": "claude-x", "input": "hi", "instructions": "be brief"}),
    )
    .await;
    let first: Value = first.json().await.unwrap();
    let first_id = first["id"].as_str().unwrap();

    // The second turn streams: its response is kept from the stream's terminal event.
    anthropic.push(Reply::anthropic_stream("claude-x", &["fine", "."]));
    let body = json!({"model": "claude-x", "input": "how are you?", "stream": true,
        "previous_response_id": first_id});
    let second = post_json(&sidecar, "/v1/responses", &body).await;
    let events = events(&second.text().await.unwrap());
    let second_id = events.last().unwrap().1["response"]["id"].clone();
    let sent = anthropic.last().json();
    assert_eq!(
        anthropic_turns(&sent),
        [
            ("user".into(), "hi".into()),
            ("assistant".into(), "hello".into()),
            ("user".into(), "how are you?".into())
        ]
    );
    // Instructions are the turn's own, not carried over.
    assert!(sent.get("system").is_none(), "{sent}");

    // The third turn goes to Gemini, with the whole conversation.
    gemini.push(Reply::gemini(&["bye"], false));
    let body =
        json!({"model": "gemini-2.5-flash", "input": "bye", "previous_response_id": second_id});
    let third = post_json(&sidecar, "/v1/responses", &body).await;
    assert_eq!(third.status(), 200);
    let contents = gemini.last().json()["contents"].clone();
    let roles: Vec<&str> = contents
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user", "model", "user"]);
    assert_eq!(contents[3]["parts"][0]["text"], "fine.");

    // The kept response, its input items, and its deletion.
    let client = client();
    let url = sidecar.url(&format!("/v1/responses/{}", second_id.as_str().unwrap()));
    let got: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["id"], second_id);
    assert_eq!(got["output"][0]["content"][0]["text"], "fine.");
    let items = client
        .get(format!("{url}/input_items"))
        .send()
        .await
        .unwrap();
    let items: Value = items.json().await.unwrap();
    assert_eq!(items["object"], "list");
    let texts: Vec<&str> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["how are you?", "hello", "hi"], "newest first");
    let deleted: Value = client
        .delete(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["deleted"], true);
    let gone = client.get(&url).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let gone: Value = gone.json().await.unwrap();
    assert_eq!(gone["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_response_asked_not_to_be_stored_is_not_kept() {
    let (anthropic, gemini) = (Mock::start().await, Mock::start().await);
    let sidecar = keeping(&anthropic, &gemini, None).await;
    anthropic.push(Reply::anthropic_message("claude-x", "hello"));
    let body = json!({"model": "claude-x", "input": "hi", "store": false});
    let first: Value = post_json(&sidecar, "/v1/responses", &body)
        .await
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().unwrap();
    let got = client()
        .get(sidecar.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 404);
    let body = json!({"model": "claude-x", "input": "again", "previous_response_id": id});
    let next = post_json(&sidecar, "/v1/responses", &body).await;
    assert_eq!(next.status(), 400);
    let v: Value = next.json().await.unwrap();
    assert_eq!(v["error"]["param"], "previous_response_id", "{v}");
    assert_eq!(anthropic.count(), 1);
}

#[tokio::test]
async fn sidecars_sharing_redis_continue_each_other_s_conversations() {
    let redis = Redis::start_on(crate::support::free_port()).await;
    let (anthropic, gemini) = (Mock::start().await, Mock::start().await);
    let one = keeping(&anthropic, &gemini, Some(redis.port)).await;
    let other = keeping(&anthropic, &gemini, Some(redis.port)).await;
    anthropic.push(Reply::anthropic_message("claude-x", "hello"));
    let first: Value = post_json(
        &one,
        "/v1/responses",
        &json!({"model": "claude-x", "input": "hi"}),
    )
    .await
    .json()
    .await
    .unwrap();
    anthropic.push(Reply::anthropic_message("claude-x", "again"));
    let body = json!({"model": "claude-x", "input": "more", "previous_response_id": first["id"]});
    let second = post_json(&other, "/v1/responses", &body).await;
    assert_eq!(second.status(), 200);
    let turns = anthropic_turns(&anthropic.last().json());
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert_eq!(turns[1], ("assistant".into(), "hello".into()));
}

#[tokio::test]
async fn a_system_turn_mid_conversation_stays_a_system_turn_toward_openai_shaped_providers() {
    let openai = Mock::start().await;
    let azure = Mock::start().await;
    let sidecar = Sidecar::start(&format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-oa\n\
         \x20 az:\n    type: azure_openai\n    base_url: \"{}\"\n    api_key: az-key\n    api_version: \"2024-10-21\"\n\
         routes:\n  - match: \"az-*\"\n    provider: az\n  - match: \"*\"\n    provider: oa\n",
        openai.url("/v1"),
        azure.url("")
    ))
    .await;
    let roles = |sent: &Value| -> Vec<String> {
        sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap().to_string())
            .collect()
    };
    // Chat completions: the conversation goes as it was sent, a late system turn included.
    let messages = json!([{"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "now answer in French"}, {"role": "user", "content": "bye"}]);
    for model in ["gpt-4o", "az-gpt-4o"] {
        let body = json!({"model": model, "messages": messages});
        let r = post_json(&sidecar, "/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 200, "{model}");
        let mock = if model == "gpt-4o" { &openai } else { &azure };
        assert_eq!(mock.last().json()["messages"], messages, "{model}");
    }
    // The Responses API translated to chat: a developer item in the middle is a system turn there.
    let input = json!([{"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
        {"role": "developer", "content": "now answer in French"},
        {"role": "user", "content": "bye"}]);
    let body = json!({"model": "az-gpt-4o", "instructions": "be brief", "input": input});
    let r = post_json(&sidecar, "/v1/responses", &body).await;
    assert_eq!(r.status(), 200);
    let sent = azure.last().json();
    assert_eq!(
        roles(&sent),
        ["system", "user", "assistant", "system", "user"]
    );
    assert_eq!(sent["messages"][3]["content"], "now answer in French");
}

#[tokio::test]
async fn an_input_file_reaches_claude_as_a_document_and_gemini_inline() {
    let (openai, anthropic, gemini, sidecar) = three().await;
    anthropic.push(Reply::anthropic_message("claude-x", "a summary"));
    gemini.push(Reply::gemini(&["a summary"], false));
    let input = json!([{"role": "user", "content": [
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0"},
        {"type": "input_text", "text": "summarise"}]}]);
    for model in ["claude-x", "gemini-2.5-flash"] {
        let body = json!({"model": model, "input": input});
        let r = post_json(&sidecar, "/v1/responses", &body).await;
        assert_eq!(r.status(), 200, "{model}");
    }
    let document = &anthropic.last().json()["messages"][0]["content"][0];
    assert_eq!(
        (
            &document["type"],
            &document["title"],
            &document["source"]["data"]
        ),
        (&json!("document"), &json!("a.pdf"), &json!("JVBERi0"))
    );
    let part = &gemini.last().json()["contents"][0]["parts"][0];
    assert_eq!(part["inlineData"]["mimeType"], "application/pdf");
    // A file kept by OpenAI cannot be read elsewhere: a 400 before any provider is asked.
    let asked = anthropic.count();
    let body = json!({"model": "claude-x", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file-abc"}]}]});
    let r = post_json(&sidecar, "/v1/responses", &body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("file_id"),
        "{v}"
    );
    assert_eq!(anthropic.count(), asked);
    assert_eq!(openai.count(), 0);
}

#[tokio::test]
async fn an_offered_web_search_is_left_out_where_there_is_none_and_the_trace_says_so() {
    let anthropic = Mock::start().await;
    let azure = Mock::start().await;
    let sidecar = Sidecar::start(&format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         \x20 az:\n    type: azure_openai\n    base_url: \"{}\"\n    api_key: az\n\
         \x20 e:\n    type: echo\n\
         routes:\n  - match: \"claude-quiet\"\n    provider: an\n    web_search: \"off\"\n\
         \x20 - match: \"claude-*\"\n    provider: an\n  - match: \"echo\"\n    provider: e\n\
         \x20 - match: \"*\"\n    provider: az\n",
        anthropic.url(""),
        azure.url("")
    ))
    .await;
    let ask = |model: &str| {
        json!({"model": model, "input": "news?", "tools": [{"type": "web_search"},
            {"type": "function", "name": "f", "parameters": {"type": "object"}}]})
    };
    // A route that turns it off, Azure (no server-side search), the echo provider.
    anthropic.push(Reply::anthropic_message("claude-quiet", "no search"));
    azure.push(Reply::openai_chat("gpt-4o", "no search"));
    for model in ["claude-quiet", "gpt-4o", "echo"] {
        let r = post_json(&sidecar, "/v1/responses", &ask(model)).await;
        assert_eq!(r.status(), 200, "{model}");
        let trace = &sidecar.traces("limit=1").await[0];
        assert_eq!(trace["web_search"], "left_out", "{model}");
    }
    let sent = anthropic.last().json();
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1, "{sent}");
    let sent = azure.last().json();
    assert!(sent.get("web_search_options").is_none(), "{sent}");
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1, "{sent}");
    // The same on a route that allows it: Claude's own search.
    anthropic.push(Reply::anthropic_message("claude-x", "searched"));
    let r = post_json(&sidecar, "/v1/responses", &ask("claude-x")).await;
    assert_eq!(r.status(), 200);
    let tools = anthropic.last().json()["tools"].clone();
    assert_eq!(tools[1]["type"], "web_search_20250305", "{tools}");
    assert_eq!(
        sidecar.traces("limit=1").await[0]["web_search"],
        "anthropic_web_search"
    );
}
