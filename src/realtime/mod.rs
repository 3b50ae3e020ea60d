//! The Realtime API (`GET /v1/realtime?model=...` upgraded to a WebSocket): where a session
//! goes upstream, and what its trace learns from the frames it relays.
//!
//! OpenAI serves it at `{base}/realtime?model={model}`; Azure OpenAI at
//! `{base}/openai/realtime?api-version={version}&deployment={deployment}`. The sidecar routes
//! the session by its `model` like any model call, injects the provider's key, and then
//! relays frames untouched (`proxy::realtime`); only `response.done` events are read, for
//! their usage.

pub(crate) mod frames;

use crate::config::ProviderKind;
use crate::error::GatewayError;
use crate::telemetry::record::TokenUsage;
use serde::Deserialize;

/// What a Realtime session's trace reads from the server's messages.
pub const USAGE_EVENT: &[u8] = b"\"response.done\"";

/// The `model` query parameter of a Realtime URL, decoded.
pub fn model_of(query: Option<&str>) -> Option<String> {
    let query = query?;
    form_pairs(query)
        .find(|(k, _)| k == "model")
        .map(|(_, v)| v)
        .filter(|m| !m.is_empty())
}

/// The upstream path and query for a session on `kind` at base path `base`: the app's other
/// query parameters kept, the model (or deployment) the route's.
pub fn upstream_path(
    kind: ProviderKind,
    base: &str,
    query: Option<&str>,
    upstream_model: &str,
    api_version: Option<&str>,
) -> Result<String, GatewayError> {
    let kept: Vec<(String, String)> = form_pairs(query.unwrap_or(""))
        .filter(|(k, _)| !matches!(k.as_str(), "model" | "deployment" | "api-version"))
        .collect();
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(kept.len() + 2);
    let path = match kind {
        ProviderKind::OpenAi => {
            pairs.push(("model", upstream_model));
            format!("{base}/realtime")
        }
        ProviderKind::AzureOpenAi => {
            pairs.push(("api-version", api_version.unwrap_or_default()));
            pairs.push(("deployment", upstream_model));
            format!("{base}/openai/realtime")
        }
        other => {
            return Err(GatewayError::Unsupported(format!(
                "the Realtime API is served by openai and azure_openai providers; `{upstream_model}` routes to a provider of type {}",
                other.as_str()
            )))
        }
    };
    pairs.extend(kept.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Ok(format!("{path}?{query}"))
}

/// `a=b&c=d` as decoded pairs.
fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// The usage of a `response.done` event, in the shape every provider's is kept in.
pub fn usage(message: &[u8]) -> Option<TokenUsage> {
    #[derive(Deserialize)]
    struct Event {
        response: Response,
    }
    #[derive(Deserialize)]
    struct Response {
        usage: Option<Usage>,
    }
    #[derive(Deserialize)]
    struct Usage {
        #[serde(default)]
        input_tokens: u64,
        #[serde(default)]
        output_tokens: u64,
        #[serde(default)]
        input_token_details: Details,
    }
    #[derive(Deserialize, Default)]
    struct Details {
        #[serde(default)]
        cached_tokens: u64,
    }
    let event: Event = serde_json::from_slice(message).ok()?;
    let u = event.response.usage?;
    Some(TokenUsage {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        total_tokens: u.input_tokens + u.output_tokens,
        cached_tokens: u.input_token_details.cached_tokens,
        ..TokenUsage::default()
    })
}

/// Adds one response's usage to a session's.
pub fn add(total: &mut Option<TokenUsage>, more: TokenUsage) {
    let t = total.get_or_insert_with(TokenUsage::default);
    t.prompt_tokens += more.prompt_tokens;
    t.completion_tokens += more.completion_tokens;
    t.total_tokens += more.total_tokens;
    t.cached_tokens += more.cached_tokens;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_for_openai_and_azure() {
        let q = Some("model=my%20alias&intent=transcription");
        assert_eq!(model_of(q).as_deref(), Some("my alias"));
        assert_eq!(model_of(Some("x=1")), None);
        assert_eq!(model_of(Some("model=")), None);
        assert_eq!(
            upstream_path(ProviderKind::OpenAi, "/v1", q, "gpt-realtime", None).unwrap(),
            "/v1/realtime?model=gpt-realtime&intent=transcription"
        );
        assert_eq!(
            upstream_path(ProviderKind::AzureOpenAi, "", q, "rt-prod", Some("2025-04-01-preview"))
                .unwrap(),
            "/openai/realtime?api-version=2025-04-01-preview&deployment=rt-prod&intent=transcription"
        );
        assert!(upstream_path(ProviderKind::Anthropic, "", q, "claude", None).is_err());
    }

    #[test]
    fn usage_of_response_done() {
        let done = br#"{"type":"response.done","event_id":"e1","response":{"id":"r","usage":{"total_tokens":30,"input_tokens":20,"output_tokens":10,"input_token_details":{"cached_tokens":5,"audio_tokens":3}}}}"#;
        let u = usage(done).unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
                u.cached_tokens
            ),
            (20, 10, 30, 5)
        );
        assert!(usage(br#"{"type":"response.done","response":{"usage":null}}"#).is_none());
        let mut total = None;
        add(&mut total, u);
        add(&mut total, u);
        assert_eq!(total.unwrap().total_tokens, 60);
    }
}
