use super::*;
use serde_json::json;

fn to_gemini(v: Value) -> Value {
    let req: ChatRequest = serde_json::from_value(v).unwrap();
    serde_json::to_value(from_openai(req).unwrap()).unwrap()
}

#[test]
fn roles_system_and_merging() {
    let out = to_gemini(json!({"model": "gemini-2.5-flash", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"}]}));
    assert_eq!(
        out["systemInstruction"],
        json!({"parts": [{"text": "be brief"}]})
    );
    assert_eq!(
        out["contents"],
        json!([
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}]}])
    );
}

#[test]
fn tool_round_trip_keeps_names_and_signatures() {
    let out = to_gemini(json!({"model": "g", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_ab__thought__SIG==", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_cd", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_ab__thought__SIG==", "content": "{\"temp\": 21}"},
        {"role": "tool", "tool_call_id": "call_cd", "content": "noon"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "additionalProperties": false, "properties": {"city": {"type": ["string", "null"]}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}));
    assert_eq!(
        out["contents"][1],
        json!({"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "SIG=="},
        {"functionCall": {"name": "get_time", "args": {}}}]})
    );
    assert_eq!(
        out["contents"][2],
        json!({"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}}]})
    );
    assert_eq!(
        out["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object", "properties": {"city": {"nullable": true, "type": "string"}}})
    );
    assert_eq!(
        out["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
}

#[test]
fn unknown_tool_results_are_refused() {
    let req: ChatRequest = serde_json::from_value(json!({"model": "g", "messages": [
        {"role": "tool", "tool_call_id": "nope", "content": "x"}]}))
    .unwrap();
    assert!(from_openai(req).is_err());
}

#[test]
fn generation_config_and_json_modes() {
    let out = to_gemini(
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 50, "stop": ["A", "B"], "temperature": 0.2, "top_p": 0.8, "n": 2, "seed": 7,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true,
            "schema": {"$schema": "x", "type": "object", "properties": {"a": {"type": "integer", "const": 3}}, "required": ["a"]}}}}),
    );
    assert_eq!(
        out["generationConfig"],
        json!({"temperature": 0.2, "topP": 0.8, "maxOutputTokens": 50,
        "stopSequences": ["A", "B"], "candidateCount": 2, "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"a": {"type": "integer", "enum": [3]}}, "required": ["a"]}, "seed": 7})
    );
    let out = to_gemini(
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
    );
    assert_eq!(
        out["generationConfig"]["responseMimeType"],
        "application/json"
    );
}

#[test]
fn images_inline_and_by_uri() {
    let out = to_gemini(
        json!({"model": "g", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.PNG?x=1"}}]}]}),
    );
    assert_eq!(
        out["contents"][0]["parts"],
        json!([
        {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a.PNG?x=1"}}])
    );
}

#[test]
fn files_are_sent_inline() {
    let out = to_gemini(
        json!({"model": "g", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0", "filename": "a.pdf"}},
        {"type": "text", "text": "summarise"}]}]}),
    );
    assert_eq!(
        out["contents"][0]["parts"],
        json!([{"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0"}}, {"text": "summarise"}])
    );
    let req: ChatRequest = serde_json::from_value(json!({"model": "g", "messages": [
        {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}))
    .unwrap();
    assert!(from_openai(req)
        .unwrap_err()
        .to_string()
        .contains("file_id"));
}

/// A tool's text result is wrapped as the app wrote it; one that is a JSON object (after any
/// whitespace, escaped or not) is passed as that object.
#[test]
fn a_tool_result_is_wrapped_as_it_came_or_passed_as_an_object() {
    let response = |content: &str| {
        let chat = format!(
            r#"{{"model": "g", "messages": [{{"role": "user", "content": "hi"}},
                {{"role": "assistant", "tool_calls": [{{"id": "c1", "type": "function", "function": {{"name": "f", "arguments": "{{}}"}}}}]}},
                {{"role": "tool", "tool_call_id": "c1", "content": {content}}}]}}"#
        );
        let req = from_openai(serde_json::from_str(&chat).unwrap()).unwrap();
        let out = serde_json::to_string(&req).unwrap();
        let at = out.find(r#""response":"#).unwrap() + r#""response":"#.len();
        let value: Value = serde_json::Deserializer::from_str(&out[at..])
            .into_iter()
            .next()
            .unwrap()
            .unwrap_or_default();
        (out[at..].to_string(), value)
    };
    let (text, _) = response(r#""caf\u00e9 \"q\"""#);
    assert!(
        text.starts_with(r#"{"result":"caf\u00e9 \"q\""}"#),
        "{text}"
    );
    for object in [
        r#""{\"a\": 1}""#,
        r#""\n  {\"a\": 1}""#,
        r#""\u0020{\"a\": 1}""#,
    ] {
        assert_eq!(response(object).1, json!({"a": 1}), "{object}");
    }
    let not_objects = [
        r#""[1]""#,
        r#""{not json""#,
        r#""x {\"a\": 1}""#,
        r#""""#,
        // JSON, but not an object; an object Gemini could not read.
        r#""\"done\"""#,
        r#""\u00201""#,
        r#""{\"a\": 1e400}""#,
    ];
    for not_an_object in not_objects {
        let (_, value) = response(not_an_object);
        let text: String = serde_json::from_str(not_an_object).unwrap();
        assert_eq!(value, json!({"result": text}), "{not_an_object}");
    }
    let (_, parts) = response(r#"[{"type": "text", "text": "{\"a\": 2}"}]"#);
    assert_eq!(parts, json!({"a": 2}));
    // An object is passed as a tree reads it: a key given twice, once.
    let (text, _) = response(r#""{\"a\": 1, \"a\": 2}""#);
    assert!(text.starts_with(r#"{"a":2}"#), "{text}");
}
