//! The conversation's shape, checked before any provider is asked: a request whose
//! `messages` (or `input`, or `contents`) a provider cannot read is the caller's 400, not a
//! provider's error, and never a translation that guesses.
//!
//! Only the outline is read (each turn an object, with a string `role` where the API
//! requires one); what a turn holds is left to the translators and providers.

use crate::body::JsonBody;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::translate::json_text::OptionalStr;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Checks the conversation field of a model call's body, where it is present (a `prompt`
/// may still provide it; an absent required field is the provider's to name).
pub fn check(endpoint: Endpoint, body: &JsonBody<'_>) -> Result<(), GatewayError> {
    match endpoint {
        Endpoint::ChatCompletions
        | Endpoint::AnthropicMessages
        | Endpoint::AnthropicCountTokens => turns(body, "messages", Need::Role),
        Endpoint::Gemini => turns(body, "contents", Need::Object),
        Endpoint::Responses => match body.get("input") {
            Some(input) if input.get().starts_with('"') => Ok(()),
            Some(_) => turns(body, "input", Need::RoleOrType),
            None => Ok(()),
        },
        Endpoint::Embeddings => embeddings_input(body),
        _ => Ok(()),
    }
}

/// What each turn must have besides being an object.
#[derive(Clone, Copy)]
enum Need {
    Object,
    Role,
    /// A Responses input item: a message (`role`) or a typed item (`type`).
    RoleOrType,
}

/// The fields of a turn that its outline needs.
#[derive(Deserialize)]
struct Turn<'a> {
    #[serde(borrow, default)]
    role: OptionalStr<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: OptionalStr<'a>,
}

fn turns(body: &JsonBody<'_>, field: &str, need: Need) -> Result<(), GatewayError> {
    let Some(raw) = body.get(field) else {
        return Ok(());
    };
    let list: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| GatewayError::invalid_field(field, "must be an array of objects"))?;
    for (i, turn) in list.iter().enumerate() {
        let what = match need {
            Need::Object => "an object",
            Need::Role => "an object with a string `role`",
            Need::RoleOrType => "an object with a string `role` or `type`",
        };
        let bad = || GatewayError::invalid_field(field, format!("`{field}[{i}]` must be {what}"));
        // An array would also deserialize into `Turn`, field by position.
        if !turn.get().starts_with('{') {
            return Err(bad());
        }
        let turn: Turn<'_> = match serde_json::from_str(turn.get()) {
            Ok(turn) => turn,
            Err(_) => return Err(bad()),
        };
        let ok = match need {
            Need::Object => true,
            Need::Role => turn.role.is_some(),
            Need::RoleOrType => turn.role.is_some() || turn.kind.is_some(),
        };
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// Embeddings' `input`: a string, or an array of strings, of token ids, or of arrays of
/// token ids.
fn embeddings_input(body: &JsonBody<'_>) -> Result<(), GatewayError> {
    let Some(raw) = body.get("input") else {
        return Ok(());
    };
    let item = |text: &str| {
        text.starts_with('"')
            || text.bytes().all(|b| b.is_ascii_digit())
            || serde_json::from_str::<Vec<u64>>(text).is_ok()
    };
    let valid = raw.get().starts_with('"')
        || serde_json::from_str::<Vec<&RawValue>>(raw.get())
            .is_ok_and(|items| items.iter().all(|i| item(i.get())));
    if valid {
        return Ok(());
    }
    Err(GatewayError::invalid_field(
        "input",
        "must be a string, an array of strings, or an array of token ids (or of arrays of them)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(endpoint: Endpoint, text: &str) -> Result<(), String> {
        let body = JsonBody::parse(text.as_bytes()).unwrap();
        check(endpoint, &body).map_err(|e| e.to_string())
    }

    #[test]
    fn chat_and_anthropic_turns_need_a_role() {
        for endpoint in [Endpoint::ChatCompletions, Endpoint::AnthropicMessages] {
            assert!(checked(endpoint, r#"{"messages":[{"role":"user","content":"hi"}]}"#).is_ok());
            assert!(checked(endpoint, r#"{"model":"m"}"#).is_ok());
            for bad in [
                r#"{"messages":"hi"}"#,
                r#"{"messages":{"role":"user"}}"#,
                r#"{"messages":[[{"role":"user"}]]}"#,
                r#"{"messages":[{"role":"user"},{"content":"no role"}]}"#,
                r#"{"messages":[{"role":1}]}"#,
                r#"{"messages":[null]}"#,
            ] {
                let e = checked(endpoint, bad).unwrap_err();
                assert!(e.starts_with("`messages` is invalid"), "{bad}: {e}");
            }
        }
        let e = checked(
            Endpoint::ChatCompletions,
            r#"{"messages":[{"role":"user"},{}]}"#,
        );
        assert!(e.unwrap_err().contains("`messages[1]` must be"));
    }

    #[test]
    fn responses_gemini_and_embeddings() {
        fn ok(e: Endpoint, t: &str) {
            assert!(checked(e, t).is_ok(), "{t}");
        }
        fn bad(e: Endpoint, t: &str) {
            assert!(checked(e, t).is_err(), "{t}");
        }
        ok(Endpoint::Responses, r#"{"input":"hi"}"#);
        ok(
            Endpoint::Responses,
            r#"{"input":[{"role":"user","content":"hi"},{"type":"function_call_output","call_id":"c","output":"x"}]}"#,
        );
        bad(Endpoint::Responses, r#"{"input":[["deep"]]}"#);
        bad(Endpoint::Responses, r#"{"input":[{"content":"x"}]}"#);
        ok(
            Endpoint::Gemini,
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        );
        bad(Endpoint::Gemini, r#"{"contents":[[[]]]}"#);
        for input in [r#""a""#, r#"["a","b"]"#, "[1,2]", "[[1],[2,3]]"] {
            ok(Endpoint::Embeddings, &format!(r#"{{"input":{input}}}"#));
        }
        for input in ["[[[1]]]", r#"[{"a":1}]"#, "1", "[[-1]]"] {
            bad(Endpoint::Embeddings, &format!(r#"{{"input":{input}}}"#));
        }
    }
}
