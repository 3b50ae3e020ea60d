use super::request::{to_openai, ResponsesRequest};
use super::response::from_openai;
use super::stream::FromOpenAi;
use super::ToolNames;
use crate::translate::openai::{
    ChatChunk, ChatResponse, ChunkChoice, Delta, FunctionDelta, ToolCallDelta, Usage, UsageField,
};
use crate::translate::sse::SseParser;
use serde_json::{json, Value};

/// A whole answer as the `response` object's JSON, parsed back.
fn response(answer: ChatResponse, tool_names: &ToolNames) -> Value {
    serde_json::from_slice(&from_openai(answer, tool_names).unwrap()).unwrap()
}

fn request(
    body: Value,
) -> Result<crate::translate::openai::ChatRequest, crate::translate::TranslateError> {
    to_openai(serde_json::from_value::<ResponsesRequest>(body).unwrap()).map(|(chat, _)| chat)
}

#[test]
fn input_items_become_a_conversation_with_its_tool_turns() {
    let thinking = json!([{"type": "thinking", "thinking": "t", "signature": "sig"}]);
    let chat = request(json!({
        "model": "claude-x", "instructions": "be brief", "max_output_tokens": 100,
        "reasoning": {"effort": "high", "summary": "auto"},
        "input": [
            {"role": "developer", "content": "dev"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "run ls"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}],
             "encrypted_content": thinking.to_string()},
            {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "done"}]}
        ],
        "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": false}],
        "tool_choice": {"type": "function", "name": "shell"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}}
    }))
    .unwrap();
    let roles: Vec<&str> = chat.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(
        roles,
        ["system", "system", "user", "assistant", "tool", "assistant"]
    );
    let call_turn = &chat.messages[3];
    assert_eq!(call_turn.tool_calls.as_ref().unwrap()[0].id, "call_1");
    assert_eq!(call_turn.reasoning_content.as_deref(), Some("plan"));
    assert_eq!(
        call_turn.thinking_blocks.as_ref().unwrap()[0]["signature"],
        "sig"
    );
    assert_eq!(chat.messages[4].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(chat.max_tokens, Some(100));
    assert_eq!(chat.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(chat.tools.unwrap()[0].function.name, "shell");
    let v = serde_json::to_value(chat.response_format.unwrap()).unwrap();
    assert_eq!(v["json_schema"]["name"], "out");
}

#[test]
fn an_offered_web_search_rides_the_chat_form_and_past_searches_are_dropped() {
    let chat = request(json!({"input": [
        {"role": "user", "content": "news?"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
            "action": {"type": "search", "query": "news"}},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Here.", "annotations": []}]},
        {"role": "user", "content": "more"}],
        "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}},
            {"type": "web_search_preview", "search_context_size": "low",
             "user_location": {"type": "approximate", "city": "Lyon"}}]}))
    .unwrap();
    let search = chat.web_search_options.unwrap();
    assert_eq!(search.search_context_size.as_deref(), Some("low"));
    assert_eq!(search.user_location.unwrap()["city"], "Lyon");
    assert_eq!(chat.tools.unwrap().len(), 1);
    assert_eq!(chat.messages.len(), 3);
    // Offered alone, it sends no empty tool list.
    let chat = request(json!({"input": "hi", "tools": [{"type": "web_search"}]})).unwrap();
    assert!(chat.tools.is_none() && chat.web_search_options.is_some());
}

#[test]
fn what_only_openai_can_do_is_refused_by_name() {
    let err = request(json!({"input": "hi", "tools": [{"type": "file_search"}]})).unwrap_err();
    assert!(err.to_string().contains("file_search"), "{err}");
    let err = request(json!({"input": "hi", "previous_response_id": "resp_1"})).unwrap_err();
    assert!(err.to_string().contains("previous_response_id"), "{err}");
    let err = request(json!({"input": [{"type": "item_reference", "id": "x"}]})).unwrap_err();
    assert!(err.to_string().contains("item_reference"), "{err}");
    let err = request(json!({"input": [{"role": "user", "content": [
        {"type": "input_file", "file_url": "https://example.com/a.pdf"}]}]}))
    .unwrap_err();
    assert!(
        err.to_string().contains("input[0].content[0].file_url"),
        "{err}"
    );
    let err = request(json!({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}))
        .unwrap_err();
    assert!(
        err.to_string().contains("input[0].content[0].type"),
        "{err}"
    );
}

#[test]
fn a_whole_answer_becomes_a_response_with_its_items() {
    let answer: ChatResponse = serde_json::from_value(json!({
        "id": "x", "created": 5, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "hi", "reasoning_content": "why",
            "thinking_blocks": [{"type": "thinking", "thinking": "why", "signature": "s"}],
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    }))
    .unwrap();
    let r = response(answer, &ToolNames::default());
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    let kinds: Vec<&str> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(r["output"][1]["content"][0]["text"], "hi");
    assert_eq!(r["output"][2]["call_id"], "call_9");
    assert_eq!(r["usage"]["total_tokens"], 7);
    // The opaque thinking comes back whole on the next turn.
    let opaque = r["output"][0]["encrypted_content"].as_str().unwrap();
    assert_eq!(super::thinking_of(opaque)[0]["signature"], "s");
}

#[test]
fn a_length_stop_is_incomplete() {
    let answer: ChatResponse = serde_json::from_value(json!({"id": "x", "choices": [
        {"message": {"role": "assistant", "content": "cut"}, "finish_reason": "length"}]}))
    .unwrap();
    let r = response(answer, &ToolNames::default());
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
}

fn chunk(delta: Delta, finish: Option<&str>) -> ChatChunk {
    ChatChunk {
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish.map(str::to_string),
            logprobs: None,
        }],
        ..ChatChunk::default()
    }
}

/// A delta of text alone.
fn text(t: &str) -> Delta {
    Delta {
        content: Some(t.into()),
        ..Delta::default()
    }
}

fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut parser = SseParser::default();
    let mut on = |e: &crate::translate::sse::Event| {
        out.push((e.name.clone(), serde_json::from_str(&e.data).unwrap()))
    };
    parser.feed(bytes, &mut on).unwrap();
    parser.finish(&mut on);
    out
}

/// Every event about an item names the item last added, and its index: deltas too, which
/// are written from a frame made at each item's first delta (here two message items, a
/// call between them).
#[test]
fn every_item_event_names_its_own_item() {
    let mut e = FromOpenAi::new("m".into(), ToolNames::default());
    let mut out = Vec::new();
    let call = Delta {
        tool_calls: Some(vec![ToolCallDelta {
            index: 0,
            id: Some("call_1".into()),
            kind: None,
            function: Some(FunctionDelta {
                name: Some("shell".into()),
                arguments: Some("{}".into()),
            }),
        }]),
        ..Delta::default()
    };
    for delta in [text("a"), text("b"), call, text("c"), text("d")] {
        e.chunk(&chunk(delta, None), &mut out);
    }
    e.finish(None, &mut out);
    let (mut item, mut checked) = (None, 0);
    for (name, data) in events(&out) {
        if name == "response.output_item.added" {
            item = Some((data["item"]["id"].clone(), data["output_index"].clone()));
        } else if data.get("item_id").is_some() {
            let (id, index) = item.clone().unwrap();
            assert_eq!(
                (&data["item_id"], &data["output_index"]),
                (&id, &index),
                "{name}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12, "every delta, part and done event was checked");
}

#[test]
fn a_stream_is_told_as_typed_events_in_order() {
    let mut e = FromOpenAi::new("m".into(), ToolNames::default());
    let mut out = Vec::new();
    e.chunk(
        &chunk(
            Delta {
                reasoning_content: Some("think".into()),
                ..Delta::default()
            },
            None,
        ),
        &mut out,
    );
    e.chunk(&chunk(text("Hel"), None), &mut out);
    e.chunk(&chunk(text("lo"), None), &mut out);
    let call = |id: Option<&str>, name: Option<&str>, args: &str| Delta {
        tool_calls: Some(vec![ToolCallDelta {
            index: 0,
            id: id.map(str::to_string),
            kind: None,
            function: Some(FunctionDelta {
                name: name.map(str::to_string),
                arguments: Some(args.into()),
            }),
        }]),
        ..Delta::default()
    };
    e.chunk(
        &chunk(call(Some("call_1"), Some("shell"), "{\"a\""), None),
        &mut out,
    );
    e.chunk(
        &chunk(call(None, None, ":1}"), Some("tool_calls")),
        &mut out,
    );
    let usage = Usage {
        prompt_tokens: 2,
        completion_tokens: 3,
        total_tokens: 5,
        ..Usage::default()
    };
    e.chunk(
        &ChatChunk {
            usage: UsageField::Some(usage),
            ..ChatChunk::default()
        },
        &mut out,
    );
    e.finish(None, &mut out);
    let events = events(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i);
    }
    let done = &events[12].1;
    assert_eq!(
        (done["text"].as_str(), done["output_index"].as_u64()),
        (Some("Hello"), Some(1))
    );
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][2]["arguments"], "{\"a\":1}");
    assert_eq!(completed["output"][2]["call_id"], "call_1");
    assert_eq!(completed["usage"]["input_tokens"], 2);
    assert_eq!(completed["id"], events[0].1["response"]["id"]);
}

#[test]
fn namespace_tools_go_flat_and_their_calls_come_back_in_their_namespace() {
    let body = json!({"input": [
            {"type": "function_call", "call_id": "c0", "namespace": "agents", "name": "spawn",
             "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c0", "output": "ok"}],
        "tools": [{"type": "function", "name": "a__b", "parameters": {}},
            {"type": "namespace", "name": "agents", "description": "sub-agents",
             "tools": [{"type": "function", "name": "spawn", "parameters": {}}]}]});
    let (chat, tool_names) = to_openai(serde_json::from_value(body).unwrap()).unwrap();
    let names: Vec<&str> = chat
        .tools
        .iter()
        .flatten()
        .map(|t| t.function.name.as_str())
        .collect();
    assert_eq!(names, ["a__b", "agents__spawn"]);
    let sent = chat.messages[0].tool_calls.as_ref().unwrap();
    assert_eq!(sent[0].function.name, "agents__spawn");

    let answer: ChatResponse = serde_json::from_value(json!({"id": "x", "object": "chat.completion",
        "created": 1, "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "agents__spawn", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "a__b", "arguments": "{}"}}]}}]}))
    .unwrap();
    let r = response(answer, &tool_names);
    assert_eq!(
        (&r["output"][0]["namespace"], &r["output"][0]["name"]),
        (&json!("agents"), &json!("spawn"))
    );
    assert_eq!(r["output"][1]["name"], "a__b");
    assert!(r["output"][1].get("namespace").is_none());
}

/// A function's schema, alone or in a namespace, goes on as the app wrote it (carried as
/// text: keys in their order, numbers and spacing as they were); a namespace whose `tools`
/// are not tools is refused by name.
#[test]
fn tool_schemas_are_carried_as_the_app_wrote_them() {
    let schema = r#"{ "type": "object", "properties": {"z": {"type": "number", "maximum": 1.50}, "a": {}} }"#;
    let body = format!(
        r#"{{"input": "hi", "tools": [
            {{"type": "function", "name": "f", "parameters": {schema}, "strict": false}},
            {{"type": "namespace", "name": "ns", "tools": [{{"type": "function", "name": "g", "parameters": {schema}}}]}},
            {{"type": "function", "name": "h", "parameters": null}}]}}"#
    );
    let (chat, _) = to_openai(serde_json::from_str(&body).unwrap()).unwrap();
    let tools = chat.tools.unwrap();
    let schemas: Vec<_> = tools
        .iter()
        .map(|t| t.function.parameters.as_ref().map(|p| p.get()))
        .collect();
    assert_eq!(schemas, [Some(schema), Some(schema), None]);
    let not_tools =
        json!({"input": "hi", "tools": [{"type": "namespace", "name": "ns", "tools": 3}]});
    let err = request(not_tools).unwrap_err();
    assert!(err.to_string().contains("tools[0].tools"), "{err}");
    // What is not a tool at all is refused by its index, as a tool of no type.
    for not_a_tool in [json!("x"), json!(null), json!([1]), json!(2.5)] {
        let body = format!(
            r#"{{"input": "hi", "tools": [{{"type": "function", "name": "f"}}, {not_a_tool}]}}"#
        );
        let err = to_openai(serde_json::from_str(&body).unwrap()).unwrap_err();
        assert!(err.to_string().contains("tools[1].type"), "{err}");
    }
}

#[test]
fn custom_tools_go_as_functions_of_one_string_and_come_back_as_custom_calls() {
    let body = json!({"input": [
            {"type": "custom_tool_call", "call_id": "c0", "name": "apply_patch",
             "input": "*** Begin Patch\n*** End Patch"},
            {"type": "custom_tool_call_output", "call_id": "c0", "output": "Done"}],
        "tools": [{"type": "custom", "name": "apply_patch", "description": "Edit files.",
            "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"x\""}}],
        "tool_choice": {"type": "custom", "name": "apply_patch"}});
    let (chat, tool_names) = to_openai(serde_json::from_value(body).unwrap()).unwrap();
    let tool = &chat.tools.as_ref().unwrap()[0].function;
    assert_eq!(tool.description.as_deref(), Some("Edit files."));
    let schema: Value = serde_json::from_str(tool.parameters.as_ref().unwrap().get()).unwrap();
    assert_eq!(schema["required"], json!(["input"]));
    let told = schema["properties"]["input"]["description"]
        .as_str()
        .unwrap();
    assert!(
        told.contains("lark") && told.contains("start: \"x\""),
        "{told}"
    );
    let sent = &chat.messages[0].tool_calls.as_ref().unwrap()[0].function;
    assert_eq!(
        serde_json::from_str::<Value>(&sent.arguments).unwrap()["input"],
        "*** Begin Patch\n*** End Patch"
    );
    assert_eq!(
        (
            chat.messages[1].role.as_str(),
            chat.messages[1].tool_call_id.as_deref()
        ),
        ("tool", Some("c0"))
    );
    let choice = serde_json::to_value(chat.tool_choice.unwrap()).unwrap();
    assert_eq!(choice["function"]["name"], "apply_patch");

    // A whole answer: the call's input is the string its arguments held.
    let answer: ChatResponse = serde_json::from_value(json!({"id": "x", "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "apply_patch", "arguments": "{\"input\":\"patch text\"}"}}]}}]}))
    .unwrap();
    let r = response(answer, &tool_names);
    let item = &r["output"][0];
    assert_eq!(item["type"], "custom_tool_call");
    assert_eq!(
        (&item["call_id"], &item["input"]),
        (&json!("c1"), &json!("patch text"))
    );
    assert!(item["id"].as_str().unwrap().starts_with("ctc_"));

    // A stream: no argument deltas (they are JSON around the text), the input whole at the end.
    let mut e = FromOpenAi::new("m".into(), tool_names);
    let mut out = Vec::new();
    for (id, args) in [(Some("c2"), "{\"input\":\"li"), (None, "ne 1\\nline 2\"}")] {
        let delta = Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index: 0,
                id: id.map(str::to_string),
                kind: None,
                function: Some(FunctionDelta {
                    name: id.map(|_| "apply_patch".to_string()),
                    arguments: Some(args.into()),
                }),
            }]),
            ..Delta::default()
        };
        e.chunk(&chunk(delta, None), &mut out);
    }
    e.finish(None, &mut out);
    let events = events(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[2..],
        [
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[2].1["item"]["type"], "custom_tool_call");
    assert_eq!(events[3].1["delta"], "line 1\nline 2");
    assert_eq!(events[4].1["input"], "line 1\nline 2");
    let done = &events[6].1["response"]["output"][0];
    assert_eq!(
        (&done["type"], &done["input"]),
        (&json!("custom_tool_call"), &json!("line 1\nline 2"))
    );
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i);
    }
}

#[test]
fn input_files_become_file_parts() {
    let chat = request(json!({"input": [{"role": "user", "content": [
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0"},
        {"type": "input_text", "text": "summarise"}]}]}))
    .unwrap();
    let v = serde_json::to_value(&chat.messages[0]).unwrap();
    assert_eq!(
        v["content"][0],
        json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0", "filename": "a.pdf"}})
    );
}

/// Deltas are told apart by their leading type, unparsed; anything else is parsed.
#[test]
fn only_events_that_may_hold_the_response_are_parsed() {
    assert!(!super::may_hold_response(
        br#"{"type":"response.output_text.delta","delta":"x"}"#
    ));
    assert!(!super::may_hold_response(
        br#"{"type":"response.created","response":{"usage":null}}"#
    ));
    for whole in [
        &br#"{"type":"response.completed","response":{}}"#[..],
        br#"{"type":"response.failed","response":{}}"#,
        br#"{"type":"response.\u0063ompleted","response":{}}"#,
        br#"{ "type": "response.output_text.delta"}"#,
        br#"{"id":"resp_1","object":"response"}"#,
    ] {
        assert!(super::may_hold_response(whole));
    }
}

/// An item's events are written with their fields in the order the API writes them (apps
/// that match on the text, as well as parsers, see the same bytes).
#[test]
fn item_events_keep_the_apis_field_order() {
    let mut e = FromOpenAi::new("m".into(), ToolNames::default());
    let mut out = Vec::new();
    let text = Delta {
        content: Some("Hi".into()),
        ..Delta::default()
    };
    e.chunk(&chunk(text, Some("stop")), &mut out);
    e.finish(None, &mut out);
    let out = String::from_utf8(out).unwrap();
    let id = out
        .split("\"item_id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    for event in [
        format!(
            r#"{{"type":"response.content_part.added","sequence_number":3,"item_id":"{id}","output_index":0,"content_index":0,"part":{{"type":"output_text","text":"","annotations":[]}}}}"#
        ),
        format!(
            r#"{{"type":"response.output_text.delta","sequence_number":4,"item_id":"{id}","output_index":0,"content_index":0,"delta":"Hi","logprobs":[]}}"#
        ),
        format!(
            r#"{{"type":"response.output_text.done","sequence_number":5,"item_id":"{id}","output_index":0,"content_index":0,"text":"Hi","logprobs":[]}}"#
        ),
        format!(
            r#"{{"type":"response.content_part.done","sequence_number":6,"item_id":"{id}","output_index":0,"content_index":0,"part":{{"type":"output_text","text":"Hi","annotations":[]}}}}"#
        ),
    ] {
        assert!(
            out.contains(&format!("data: {event}\n\n")),
            "{event}\nnot in\n{out}"
        );
    }
}

/// The cache keeps the terminal event's response; an error event, told by its type without
/// the rest being parsed, keeps nothing.
#[test]
fn a_stream_gathers_to_its_terminal_response_and_an_error_to_nothing() {
    use super::collect::ResponsesStream;
    let delta = r#"{"type":"response.output_text.delta","delta":"a"}"#;
    let done = r#"{"type":"response.completed","response":{"id":"r","status":"completed"}}"#;
    let mut stream = ResponsesStream::default();
    for data in [delta, done] {
        assert!(stream.event(data).is_some());
    }
    assert_eq!(stream.whole.unwrap()["id"], "r");
    let mut stream = ResponsesStream::default();
    assert!(stream.event(delta).is_some());
    assert!(stream.event(r#"{"type":"error","message":"x"}"#).is_none());
}

/// A reasoning item's bytes, written from its borrowed parts: no summary part when there is
/// no summary, and the thinking blocks as `encrypted_content` (the shape the `json!` map it
/// replaced wrote).
#[test]
fn reasoning_items_are_written_in_the_apis_order() {
    let bare = serde_json::to_string(&super::reasoning_item("rs_1", "", &[])).unwrap();
    assert_eq!(bare, r#"{"id":"rs_1","type":"reasoning","summary":[]}"#);
    let signed = [json!({"type": "thinking", "thinking": "", "signature": "s"})];
    let item = serde_json::to_string(&super::reasoning_item("rs_2", "plan \"a\"", &signed));
    assert_eq!(
        item.unwrap(),
        r#"{"id":"rs_2","type":"reasoning","summary":[{"type":"summary_text","text":"plan \"a\""}],"encrypted_content":"[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"s\"}]"}"#
    );
}

/// A `function_call_output`'s text goes on as the app wrote it (`\u00e9` is still `\u00e9`);
/// its parts' text joined; anything else as its JSON text.
#[test]
fn tool_outputs_are_carried_as_the_app_wrote_them() {
    let output = r#""caf\u00e9 \"q\"\n""#;
    let content = |output: &str| {
        let body = format!(
            r#"{{"input": [{{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{{}}"}},
                {{"type": "function_call_output", "call_id": "c1"{output}}}]}}"#
        );
        let (chat, _) = to_openai(serde_json::from_str(&body).unwrap()).unwrap();
        let tool = chat
            .messages
            .into_iter()
            .find(|m| m.role == "tool")
            .unwrap();
        serde_json::to_string(&tool.content.unwrap()).unwrap()
    };
    assert_eq!(content(&format!(r#", "output": {output}"#)), output);
    let parts =
        r#", "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]"#;
    assert_eq!(content(parts), r#""ab""#);
    assert_eq!(content(r#", "output": {"n": 1}"#), r#""{\"n\":1}""#);
    assert_eq!(content(r#", "output": null"#), r#""null""#);
    assert_eq!(content(""), r#""""#);
    // A key given twice: the last holds, as in a tree.
    assert_eq!(content(r#", "output": "a", "output": "b""#), r#""b""#);
    // A lone surrogate is refused, as it was when the output was read as a string.
    let body =
        r#"{"input": [{"type": "function_call_output", "call_id": "c1", "output": "\ud800"}]}"#;
    let e = serde_json::from_str::<ResponsesRequest>(body).unwrap_err();
    assert!(e.to_string().contains("hex escape"), "{e}");
}
