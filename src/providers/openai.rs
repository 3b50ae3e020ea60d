//! OpenAI and every OpenAI-compatible API: `{base_url}/chat/completions`, bearer key.

use super::Operation;
use crate::config::Secret;
use crate::error::GatewayError;
use http::header::{self, HeaderName};

pub fn path(base: &str, op: Operation) -> Result<String, GatewayError> {
    let suffix = match op {
        Operation::Generate { .. } => "/chat/completions",
        Operation::Embed => "/embeddings",
        Operation::Respond { .. } => "/responses",
        Operation::CountTokens { .. } => {
            return Err(GatewayError::Unsupported(
                "OpenAI-type providers do not count tokens".into(),
            ))
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
        let chat = Operation::Generate {
            stream: true,
            version: None,
        };
        assert_eq!(path("/v1", chat).unwrap(), "/v1/chat/completions");
        assert_eq!(path("", Operation::Embed).unwrap(), "/embeddings");
        assert!(path("/v1", Operation::CountTokens { version: None }).is_err());
    }
}
