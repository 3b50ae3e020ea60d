//! Which API a request is for, from its method and path.

use crate::wire::Wire;
use http::Method;

/// What the gateway does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Routed by the body's `model`; translated for non-OpenAI providers.
    ChatCompletions,
    /// OpenAI's Responses API, routed by the body's `model`: native to OpenAI providers,
    /// translated for others.
    Responses,
    /// `GET` or `DELETE /v1/responses/{id}` (and `GET .../input_items`): answered from the
    /// responses the sidecar kept; one it did not keep is a passthrough (OpenAI may hold it).
    StoredResponse,
    /// Routed by the body's `model` to an OpenAI-type provider.
    Embeddings,
    /// Answered locally from the config.
    Models,
    /// Anthropic Messages: native to Anthropic providers, translated for others.
    AnthropicMessages,
    /// Anthropic token counting: native to Anthropic providers, estimated for others.
    AnthropicCountTokens,
    /// Gemini `generateContent`, `streamGenerateContent`, `countTokens` (see [`GeminiCall`]).
    Gemini,
    /// `GET /v1/realtime?model=...` (or under `/api/`) upgraded to a WebSocket: routed by
    /// `model` to an OpenAI-type or Azure provider, frames relayed both ways.
    Realtime,
    /// Any other `/v1/...` path: proxied untouched to the first openai provider.
    Passthrough,
    NotFound,
}

impl Endpoint {
    pub fn classify(method: &Method, path: &str) -> Endpoint {
        let post = method == Method::POST;
        match path {
            "/v1/chat/completions" | "/api/chat/completions" | "/chat/completions" if post => {
                Endpoint::ChatCompletions
            }
            "/api/anthropic/v1/messages" | "/anthropic/v1/messages" | "/v1/messages" if post => {
                Endpoint::AnthropicMessages
            }
            "/api/anthropic/v1/messages/count_tokens"
            | "/anthropic/v1/messages/count_tokens"
            | "/v1/messages/count_tokens"
                if post =>
            {
                Endpoint::AnthropicCountTokens
            }
            _ if post && GeminiCall::parse(path).is_some() => Endpoint::Gemini,
            "/v1/embeddings" | "/api/embeddings" if post => Endpoint::Embeddings,
            "/v1/responses" | "/api/responses" if post => Endpoint::Responses,
            "/v1/models" | "/api/models" if method == Method::GET => Endpoint::Models,
            "/v1/realtime" | "/api/realtime" if method == Method::GET => Endpoint::Realtime,
            _ if StoredResponseCall::parse(method, path).is_some() => Endpoint::StoredResponse,
            _ if path.starts_with("/v1/") => Endpoint::Passthrough,
            _ => Endpoint::NotFound,
        }
    }

    /// The format the caller speaks, and gets errors in.
    pub fn ingress(self) -> Wire {
        match self {
            Endpoint::AnthropicMessages | Endpoint::AnthropicCountTokens => Wire::Anthropic,
            Endpoint::Gemini => Wire::Gemini,
            Endpoint::Responses => Wire::Responses,
            _ => Wire::OpenAi,
        }
    }

    /// The `endpoint` label of metrics and traces.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::StoredResponse => "responses.stored",
            Endpoint::Models => "models",
            Endpoint::AnthropicMessages => "anthropic.messages",
            Endpoint::AnthropicCountTokens => "anthropic.count_tokens",
            Endpoint::Gemini => "gemini.generate_content",
            Endpoint::Realtime => "realtime",
            Endpoint::Passthrough => "passthrough",
            Endpoint::NotFound => "not_found",
        }
    }
}

/// What a stored-response path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredResponseCall<'a> {
    Get(&'a str),
    InputItems(&'a str),
    Delete(&'a str),
}

impl<'a> StoredResponseCall<'a> {
    /// `/v1/responses/{id}` (or under `/api/`), `GET` or `DELETE`, and `GET
    /// /v1/responses/{id}/input_items`.
    pub fn parse(method: &Method, path: &'a str) -> Option<StoredResponseCall<'a>> {
        let rest = path
            .strip_prefix("/v1/responses/")
            .or_else(|| path.strip_prefix("/api/responses/"))?;
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if id.is_empty() {
            return None;
        }
        match (tail, method) {
            ("", &Method::GET) => Some(StoredResponseCall::Get(id)),
            ("", &Method::DELETE) => Some(StoredResponseCall::Delete(id)),
            ("input_items", &Method::GET) => Some(StoredResponseCall::InputItems(id)),
            _ => None,
        }
    }

    pub fn id(&self) -> &'a str {
        match self {
            StoredResponseCall::Get(id)
            | StoredResponseCall::InputItems(id)
            | StoredResponseCall::Delete(id) => id,
        }
    }
}

/// What a Gemini path asks for: `/api/google/gemini/{v1beta,v1}/models/{model}:{action}`
/// (also under `/gemini/`). The model is in the path, not the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiCall {
    /// `v1` (google-genai's default) or `v1beta`.
    pub version: &'static str,
    pub model: String,
    pub action: GeminiAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeminiAction {
    Generate,
    Stream,
    CountTokens,
}

impl GeminiAction {
    /// The method name in Gemini's URL.
    pub fn as_str(self) -> &'static str {
        match self {
            GeminiAction::Generate => "generateContent",
            GeminiAction::Stream => "streamGenerateContent",
            GeminiAction::CountTokens => "countTokens",
        }
    }
}

impl GeminiCall {
    pub fn parse(path: &str) -> Option<GeminiCall> {
        let rest = path
            .strip_prefix("/api/google/gemini/")
            .or_else(|| path.strip_prefix("/gemini/"))?;
        let (version, rest) = rest.split_once('/')?;
        let version = match version {
            "v1" => "v1",
            "v1beta" => "v1beta",
            _ => return None,
        };
        let (model, action) = rest.strip_prefix("models/")?.rsplit_once(':')?;
        let action = match action {
            "generateContent" => GeminiAction::Generate,
            "streamGenerateContent" => GeminiAction::Stream,
            "countTokens" => GeminiAction::CountTokens,
            _ => return None,
        };
        (!model.is_empty()).then(|| GeminiCall {
            version,
            model: model.to_string(),
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_paths() {
        let call = GeminiCall::parse("/gemini/v1/models/gemini-2.5-pro:generateContent").unwrap();
        assert_eq!(
            (call.version, call.model.as_str(), call.action),
            ("v1", "gemini-2.5-pro", GeminiAction::Generate)
        );
        let call = GeminiCall::parse("/api/google/gemini/v1beta/models/g:countTokens").unwrap();
        assert_eq!(call.action, GeminiAction::CountTokens);
        for bad in [
            "/gemini/v2/models/g:generateContent",
            "/gemini/v1/models/:generateContent",
            "/gemini/v1/models/g:embed",
            "/gemini/v1/g:generateContent",
        ] {
            assert!(GeminiCall::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn stored_response_paths() {
        let get = Method::GET;
        let call = StoredResponseCall::parse(&get, "/v1/responses/resp_1/input_items");
        assert_eq!(call, Some(StoredResponseCall::InputItems("resp_1")));
        let call = StoredResponseCall::parse(&Method::DELETE, "/api/responses/resp_1");
        assert_eq!(call, Some(StoredResponseCall::Delete("resp_1")));
        for (method, bad) in [
            (&get, "/v1/responses/"),
            (&Method::POST, "/v1/responses/resp_1/cancel"),
            (&Method::POST, "/v1/responses/resp_1"),
            (&get, "/v1/responses/resp_1/other"),
        ] {
            assert!(StoredResponseCall::parse(method, bad).is_none(), "{bad}");
        }
        let e = Endpoint::classify(&Method::POST, "/v1/responses/resp_1/cancel");
        assert_eq!(e, Endpoint::Passthrough);
    }

    #[test]
    fn classifies_the_contract_paths() {
        let post = Method::POST;
        for p in [
            "/v1/chat/completions",
            "/api/chat/completions",
            "/chat/completions",
        ] {
            assert_eq!(Endpoint::classify(&post, p), Endpoint::ChatCompletions);
        }
        assert_eq!(
            Endpoint::classify(&post, "/api/embeddings"),
            Endpoint::Embeddings
        );
        assert_eq!(
            Endpoint::classify(&Method::GET, "/api/models"),
            Endpoint::Models
        );
        assert_eq!(
            Endpoint::classify(&post, "/v1/files"),
            Endpoint::Passthrough
        );
        // OpenAI lists stored completions with GET on the chat path: not ours to answer.
        assert_eq!(
            Endpoint::classify(&Method::GET, "/v1/chat/completions"),
            Endpoint::Passthrough
        );
        assert_eq!(Endpoint::classify(&post, "/nope"), Endpoint::NotFound);
        for p in [
            "/api/anthropic/v1/messages",
            "/anthropic/v1/messages",
            "/v1/messages",
        ] {
            assert_eq!(Endpoint::classify(&post, p), Endpoint::AnthropicMessages);
            let count = format!("{p}/count_tokens");
            assert_eq!(
                Endpoint::classify(&post, &count),
                Endpoint::AnthropicCountTokens
            );
        }
        let gemini = "/api/google/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent";
        assert_eq!(Endpoint::classify(&post, gemini), Endpoint::Gemini);
        assert_eq!(Endpoint::AnthropicMessages.ingress(), Wire::Anthropic);
        assert_eq!(
            Endpoint::classify(&Method::GET, "/chat/completions"),
            Endpoint::NotFound
        );
    }
}
