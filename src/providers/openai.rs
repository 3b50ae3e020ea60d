//! OpenAI and every OpenAI-compatible API: `{base_url}/chat/completions`, bearer key.

use crate::config::Secret;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use http::header::{self, HeaderName};

pub fn path(base: &str, endpoint: Endpoint) -> Result<String, GatewayError> {
    let suffix = match endpoint {
        Endpoint::ChatCompletions => "/chat/completions",
        Endpoint::Embeddings => "/embeddings",
        other => {
            return Err(GatewayError::Unsupported(format!(
                "{} is not a model call",
                other.label()
            )))
        }
    };
    Ok(format!("{base}{suffix}"))
}

pub fn auth(key: &Secret) -> (HeaderName, String) {
    (header::AUTHORIZATION, format!("Bearer {}", key.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_append_to_the_base() {
        assert_eq!(
            path("/v1", Endpoint::ChatCompletions).unwrap(),
            "/v1/chat/completions"
        );
        assert_eq!(path("", Endpoint::Embeddings).unwrap(), "/embeddings");
        assert!(path("/v1", Endpoint::Models).is_err());
    }
}
