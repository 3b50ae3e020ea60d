//! What makes two requests the same for the cache: the API they came in on, the route
//! (provider and model), the body without the Respan parameters in a canonical form (keys
//! sorted, no whitespace, so key order and formatting do not matter), and the customer when
//! entries are scoped to it. Streaming or not is not part of it: one answer serves both.

use crate::body::JsonBody;
use crate::wire::Wire;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Body fields the answer does not depend on: the model is keyed as routed, and whether it
/// streams (and with a usage chunk) only changes how the same answer is told.
const NOT_KEYED: [&str; 3] = ["model", "stream", "stream_options"];

/// A sha256 of what the answer depends on.
pub type Key = [u8; 32];

/// The route and the customer a key is made for.
pub struct Scope<'a> {
    pub ingress: Wire,
    /// The provider and model routed to; `None` when answers are shared across models
    /// (`cache_options.is_cached_by_model: false`).
    pub route: Option<(&'a str, &'a str)>,
    /// `Some` when `cache_by_customer`.
    pub customer: Option<&'a str>,
}

/// The key of a request body (already without the Respan parameters) in `scope`.
pub fn of(body: &JsonBody<'_>, scope: &Scope<'_>) -> Key {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(b"respan-cache-v1");
    part(match scope.ingress {
        Wire::OpenAi => b"openai",
        Wire::Anthropic => b"anthropic",
        Wire::Gemini => b"gemini",
        Wire::Responses => b"responses",
    });
    let (provider, model) = scope.route.unwrap_or_default();
    part(provider.as_bytes());
    part(model.as_bytes());
    part(scope.customer.unwrap_or("").as_bytes());
    let mut fields: Vec<(&str, &serde_json::value::RawValue)> = body
        .fields()
        .filter(|(k, _)| !NOT_KEYED.contains(k))
        .collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = Vec::new();
    for (k, raw) in fields {
        part(k.as_bytes());
        text.clear();
        // Every value of a parsed body is valid JSON.
        let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
        canonical(&value, &mut text);
        part(&text);
    }
    hash.finalize().into()
}

/// JSON with object keys sorted at every depth.
fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(body: &str, customer: Option<&str>) -> Key {
        let body = JsonBody::parse(body.as_bytes()).unwrap();
        let scope = Scope {
            ingress: Wire::OpenAi,
            route: Some(("p", "m")),
            customer,
        };
        of(&body, &scope)
    }

    #[test]
    fn answers_shared_across_models_leave_the_route_out() {
        let body = JsonBody::parse(br#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let scope = |route| Scope {
            ingress: Wire::OpenAi,
            route,
            customer: None,
        };
        let any = of(&body, &scope(None));
        assert_eq!(any, of(&body, &scope(None)));
        assert_ne!(any, of(&body, &scope(Some(("p", "m")))));
        assert_ne!(
            of(&body, &scope(Some(("p", "m")))),
            of(&body, &scope(Some(("p", "n"))))
        );
    }

    #[test]
    fn streaming_or_not_is_the_same_entry() {
        let plain = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let streamed = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;
        assert_eq!(key(plain, None), key(streamed, None));
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter_but_content_does() {
        let a = key(
            r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
            None,
        );
        let b = key(
            r#"{ "temperature": 0, "messages": [ {"content": "hi", "role": "user"} ], "model": "y" }"#,
            None,
        );
        assert_eq!(a, b, "the routed model is in the scope, the body's is not");
        assert_ne!(
            a,
            key(
                r#"{"messages":[{"role":"user","content":"ho"}],"temperature":0}"#,
                None
            )
        );
        assert_ne!(
            a,
            key(
                r#"{"messages":[{"role":"user","content":"hi"}],"temperature":1}"#,
                None
            )
        );
        assert_ne!(
            a,
            key(
                r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
                Some("c")
            )
        );
        let body =
            JsonBody::parse(br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0}"#)
                .unwrap();
        let anthropic = Scope {
            ingress: Wire::Anthropic,
            route: Some(("p", "m")),
            customer: None,
        };
        assert_ne!(
            a,
            of(&body, &anthropic),
            "the answer's format is part of the key"
        );
    }
}
