use super::*;
use serde_json::json;

fn openai(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn to_anthropic(v: Value) -> Value {
    let (req, _) = from_openai(openai(v)).unwrap();
    serde_json::to_value(req).unwrap()
}

#[test]
fn system_is_hoisted_and_turns_merged() {
    let out = to_anthropic(json!({"model": "claude", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a"},
        {"role": "developer", "content": "and kind"},
        {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": "c"},
    ]}));
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "be brief"}, {"type": "text", "text": "and kind"}])
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
        ])
    );
    assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
}

#[test]
fn tool_round_trip() {
    let out = to_anthropic(json!({"model": "claude", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "thanks"},
    ], "tools": [{"type": "function", "function": {"name": "get", "description": "d", "parameters": {"type": "object"}}}],
       "tool_choice": "required", "parallel_tool_calls": false}));
    assert_eq!(
        out["messages"][1]["content"],
        json!([
            {"type": "tool_use", "id": "call_1", "name": "get", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get", "input": {}},
        ])
    );
    assert_eq!(
        out["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
            {"type": "text", "text": "thanks"},
        ]})
    );
    assert_eq!(
        out["tools"],
        json!([{"name": "get", "description": "d", "input_schema": {"type": "object"}}])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
}

#[test]
fn invalid_tool_arguments_are_a_client_error() {
    let err = from_openai(openai(json!({"model": "c", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
    ]}))).unwrap_err();
    assert!(matches!(err, TranslateError::Invalid { .. }));
}

#[test]
fn parameters_map_or_are_dropped() {
    let out = to_anthropic(
        json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
        "max_completion_tokens": 99, "max_tokens": 5, "stop": "END", "temperature": 1.7, "top_p": 0.9,
        "seed": 1, "presence_penalty": 0.5, "logprobs": true, "user": "u-1", "stream": true}),
    );
    assert_eq!(out["max_tokens"], 99);
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["temperature"], 1.0);
    assert_eq!(out["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(out["stream"], true);
    for dropped in ["seed", "presence_penalty", "logprobs", "user", "n"] {
        assert!(out.get(dropped).is_none(), "{dropped}");
    }
    assert!(from_openai(openai(json!({"model": "c", "messages": [], "n": 2}))).is_err());
}

#[test]
fn images_by_data_url_and_https() {
    let out = to_anthropic(
        json!({"model": "c", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
        ]}]}),
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
        ])
    );
    assert!(from_openai(openai(
        json!({"model": "c", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]})
    ))
    .is_err());
}

#[test]
fn files_become_documents_and_documents_files() {
    let text = BASE64_STANDARD.encode("plain words");
    let out = to_anthropic(
        json!({"model": "c", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0", "filename": "a.pdf"}},
            {"type": "file", "file": {"file_data": format!("data:text/plain;base64,{text}")}},
        ]}]}),
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "document", "title": "a.pdf",
             "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
        ])
    );
    for (file, why) in [
        (json!({"file_id": "file-1"}), "file_id"),
        (
            json!({"file_data": "data:image/tiff;base64,AA"}),
            "image/tiff",
        ),
        (json!({"file_data": "not a data url"}), "data URL"),
    ] {
        let req = openai(
            json!({"model": "c", "messages": [{"role": "user", "content": [
            {"type": "file", "file": file}]}]}),
        );
        let err = from_openai(req).unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
    }

    // Claude Code's documents, toward another provider: a file part each.
    let req: MessagesRequest = serde_json::from_value(json!({"model": "gpt-4o", "max_tokens": 10,
        "messages": [{"role": "user", "content": [
            {"type": "document", "title": "a.pdf",
             "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
            {"type": "text", "text": "summarise"}]}]}))
    .unwrap();
    let v = serde_json::to_value(to_openai(req).unwrap()).unwrap();
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0", "filename": "a.pdf"}},
            {"type": "file", "file": {"file_data": format!("data:text/plain;base64,{text}")}},
            {"type": "text", "text": "summarise"},
        ])
    );
    let by_url: MessagesRequest =
        serde_json::from_value(json!({"model": "gpt-4o", "max_tokens": 10,
        "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}]}]}))
        .unwrap();
    assert!(to_openai(by_url).is_err());
}

#[test]
fn json_schema_becomes_a_forced_tool_and_json_object_an_instruction() {
    let (req, mode) = from_openai(openai(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "the answer!", "schema": {"type": "object", "properties": {"a": {"type": "number"}}}}}}))).unwrap();
    let v = serde_json::to_value(req).unwrap();
    assert_eq!(mode, JsonMode::ForcedTool("the_answer_".into()));
    assert_eq!(
        v["tool_choice"],
        json!({"type": "tool", "name": "the_answer_"})
    );
    assert_eq!(
        v["tools"][0]["input_schema"]["properties"]["a"]["type"],
        "number"
    );
    let out = to_anthropic(
        json!({"model": "c", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
    );
    assert!(out["system"][0]["text"].as_str().unwrap().contains("JSON"));
}

#[test]
fn thinking_blocks_go_back_unchanged() {
    let out = to_anthropic(json!({"model": "c", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "sig=="}]},
        {"role": "user", "content": "q2"}]}));
    assert_eq!(
        out["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": "hmm", "signature": "sig=="})
    );
}

#[test]
fn anthropic_requests_become_openai() {
    let req: MessagesRequest = serde_json::from_value(json!({"model": "gpt-4o", "max_tokens": 100,
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "calling"}, {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"x": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "42"}]}, {"type": "text", "text": "and?"}]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["Z"], "stream": true, "metadata": {"user_id": "u"}})).unwrap();
    let v = serde_json::to_value(to_openai(req).unwrap()).unwrap();
    assert_eq!(
        v["messages"],
        json!([
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "calling", "tool_calls": [{"id": "tu_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
            {"role": "tool", "content": "42", "tool_call_id": "tu_1"},
            {"role": "user", "content": "and?"},
        ])
    );
    assert_eq!(v["tool_choice"], "required");
    assert_eq!(v["parallel_tool_calls"], false);
    assert_eq!(v["max_completion_tokens"], 100);
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
    assert_eq!(v["stop"], json!(["Z"]));
    // Anthropic's user_id is not OpenAI's `user` (Claude Code's is a blob of device and
    // session ids): it is on the trace instead.
    assert!(v.get("user").is_none());
}

/// A tool's schema reaches the provider as the app wrote it, either way: its keys in their
/// order, its numbers and spacing as they were (it is carried as text, never re-written).
#[test]
fn tool_schemas_are_carried_as_the_app_wrote_them() {
    let schema = r#"{ "type": "object", "properties": {"z": {"type": "number", "maximum": 1.50}, "a": {}} }"#;
    let anthropic = format!(
        r#"{{"model": "m", "max_tokens": 10, "messages": [{{"role": "user", "content": "hi"}}],
            "tools": [{{"name": "f", "input_schema": {schema}, "cache_control": {{"type": "ephemeral"}}}}]}}"#
    );
    let chat = to_openai(serde_json::from_str(&anthropic).unwrap()).unwrap();
    let tools = chat.tools.as_ref().unwrap();
    assert_eq!(tools[0].function.parameters.as_ref().unwrap().get(), schema);
    let chat = serde_json::to_string(&chat).unwrap();
    assert!(
        chat.contains(&format!(r#""parameters":{schema}"#)),
        "{chat}"
    );
    let (back, _) = from_openai(serde_json::from_str(&chat).unwrap()).unwrap();
    let back = serde_json::to_string(&back).unwrap();
    assert!(
        back.contains(&format!(r#""input_schema":{schema}"#)),
        "{back}"
    );
}

/// A tool's result goes from a chat tool message into Anthropic's `tool_result` as the app
/// wrote it (`\u00e9` is still `\u00e9`: never unescaped and escaped again); the other way, its
/// text is the chat message's.
#[test]
fn tool_results_are_carried_as_the_app_wrote_them() {
    let result = r#""caf\u00e9 \"q\"\n""#;
    let chat = format!(
        r#"{{"model": "m", "messages": [{{"role": "user", "content": "hi"}},
            {{"role": "assistant", "tool_calls": [{{"id": "c1", "type": "function", "function": {{"name": "f", "arguments": "{{}}"}}}},
                {{"id": "c2", "type": "function", "function": {{"name": "f", "arguments": "{{}}"}}}},
                {{"id": "c3", "type": "function", "function": {{"name": "f", "arguments": "{{}}"}}}}]}},
            {{"role": "tool", "tool_call_id": "c1", "content": {result}}},
            {{"role": "tool", "tool_call_id": "c2", "content": [{{"type": "text", "text": "a"}}, {{"type": "text", "text": "b"}}]}},
            {{"role": "tool", "tool_call_id": "c3"}}]}}"#
    );
    let (req, _) = from_openai(serde_json::from_str(&chat).unwrap()).unwrap();
    let out = serde_json::to_string(&req).unwrap();
    assert!(
        out.contains(&format!(r#""tool_use_id":"c1","content":{result}"#)),
        "{out}"
    );
    assert!(
        out.contains(r#""tool_use_id":"c2","content":"a\nb""#),
        "{out}"
    );
    assert!(out.contains(r#""tool_use_id":"c3","content":"""#), "{out}");

    // Anthropic -> chat: the result's fields after its type, as the SDKs write them (read
    // straight from the text), or before it (read as a tree).
    let tool_message = |block: &str| {
        let anthropic = format!(
            r#"{{"model": "m", "max_tokens": 10, "messages": [
                {{"role": "assistant", "content": [{{"type": "tool_use", "id": "c1", "name": "f", "input": {{}}}}]}},
                {{"role": "user", "content": [{block}]}}]}}"#
        );
        let chat = to_openai(serde_json::from_str(&anthropic).unwrap()).unwrap();
        let tool = chat
            .messages
            .into_iter()
            .find(|m| m.role == "tool")
            .unwrap();
        assert_eq!(tool.tool_call_id.as_deref(), Some("c1"));
        tool.content.unwrap()
    };
    let content = |content: &str| {
        let block = format!(r#"{{"type": "tool_result", "tool_use_id": "c1"{content}}}"#);
        tool_message(&block).text()
    };
    let written = tool_message(&format!(
        r#"{{"type": "tool_result", "content": {result}, "tool_use_id": "c1", "cache_control": {{}}}}"#
    ));
    assert_eq!(serde_json::to_string(&written).unwrap(), result);
    let tree = tool_message(&format!(
        r#"{{"tool_use_id": "c1", "type": "tool_result", "content": {result}}}"#
    ));
    assert_eq!(tree.text(), "café \"q\"\n");
    let blocks = r#", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]"#;
    assert_eq!(content(blocks), "a\nb");
    assert_eq!(content(r#", "content": {"n": 1}"#), r#"{"n":1}"#);
    assert_eq!(content(r#", "content": null"#), "");
    assert_eq!(content(""), "");
    // Refused as serde refused them: no id, a field given twice (the type too, whichever
    // way the block is read), a lone surrogate.
    let refused = [
        (
            r#"{"type": "tool_result", "content": "x"}"#,
            "missing field `tool_use_id`",
        ),
        (
            r#"{"type": "tool_result", "tool_use_id": "a", "tool_use_id": "b"}"#,
            "duplicate field `tool_use_id`",
        ),
        (
            r#"{"type": "tool_result", "tool_use_id": "a", "type": "text"}"#,
            "duplicate field `type`",
        ),
        (
            r#"{"type": "text", "text": "a", "text": "b"}"#,
            "duplicate field `text`",
        ),
        (
            r#"{"tool_use_id": "a", "type": "tool_result", "type": "text"}"#,
            "duplicate field `type`",
        ),
        (
            r#"{"type": "tool_result", "tool_use_id": "a", "content": "\ud800"}"#,
            "hex escape",
        ),
    ];
    for (block, why) in refused {
        let anthropic = format!(
            r#"{{"model": "m", "max_tokens": 10, "messages": [{{"role": "user", "content": [{block}]}}]}}"#
        );
        let e = serde_json::from_str::<MessagesRequest>(&anthropic).unwrap_err();
        assert!(e.to_string().contains(why), "{block}: {e}");
    }
    // The chat side: a lone surrogate in a text is refused, as it was when it was read.
    let chat = r#"{"model": "m", "messages": [{"role": "user", "content": "a \udc00 b"}]}"#;
    let e = serde_json::from_str::<ChatRequest>(chat).unwrap_err();
    assert!(e.to_string().contains("lone"), "{e}");
    let paired = r#"{"model": "m", "messages": [{"role": "user", "content": "\ud83e\udd8a"}]}"#;
    let chat: ChatRequest = serde_json::from_str(paired).unwrap();
    assert_eq!(chat.messages[0].content.as_ref().unwrap().text(), "🦊");
}
