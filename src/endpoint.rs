//! Which API a request is for, from its method and path.

use http::Method;

/// The API shape a caller speaks: errors (and, later, answers) are given back in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    OpenAi,
    Anthropic,
    Gemini,
}

/// What the gateway does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Routed by the body's `model`; translated for non-OpenAI providers.
    ChatCompletions,
    /// Routed by the body's `model` to an OpenAI-type provider.
    Embeddings,
    /// Answered locally from the config.
    Models,
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
            "/v1/embeddings" | "/api/embeddings" if post => Endpoint::Embeddings,
            "/v1/models" | "/api/models" if method == Method::GET => Endpoint::Models,
            _ if path.starts_with("/v1/") => Endpoint::Passthrough,
            _ => Endpoint::NotFound,
        }
    }

    /// The format errors are answered in.
    pub fn ingress(self) -> Ingress {
        Ingress::OpenAi
    }

    /// The `endpoint` label of metrics and traces.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Models => "models",
            Endpoint::Passthrough => "passthrough",
            Endpoint::NotFound => "not_found",
        }
    }

    /// Whether the request body is read and routed by the gateway itself.
    pub fn is_model_call(self) -> bool {
        matches!(self, Endpoint::ChatCompletions | Endpoint::Embeddings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            Endpoint::classify(&Method::GET, "/chat/completions"),
            Endpoint::NotFound
        );
    }
}
