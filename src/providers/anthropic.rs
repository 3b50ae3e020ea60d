//! Anthropic: `{base_url}/v1/messages` (and `/count_tokens`), key in `x-api-key`, and an
//! `anthropic-version` on every call.

use super::{Headers, Operation};
use crate::config::Secret;
use crate::error::GatewayError;
use http::header::{HeaderName, HeaderValue};

pub fn path(base: &str, op: Operation) -> Result<String, GatewayError> {
    match op {
        Operation::Generate { .. } => Ok(format!("{base}/v1/messages")),
        Operation::Respond { .. } => Err(GatewayError::Unsupported(
            "Anthropic is sent Responses API requests as messages".into(),
        )),
        Operation::CountTokens { .. } => Ok(format!("{base}/v1/messages/count_tokens")),
        Operation::Embed => Err(GatewayError::Unsupported(
            "Anthropic models do not serve embeddings".into(),
        )),
    }
}

pub fn auth(key: &Secret) -> (HeaderName, String) {
    (
        HeaderName::from_static("x-api-key"),
        key.expose().to_string(),
    )
}

const VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// An app's `anthropic-*` header (version, beta flags): for an Anthropic provider only.
pub fn is_own_header(name: &str) -> bool {
    name.starts_with("anthropic-")
}

/// Sets the `anthropic-version` Anthropic requires, when the app sent none.
pub fn add_version(req: &mut impl Headers) -> Result<(), GatewayError> {
    if req.has(&VERSION) {
        return Ok(());
    }
    let version = HeaderValue::from_static(crate::translate::anthropic::DEFAULT_VERSION);
    req.set(VERSION, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            path(
                "",
                Operation::Generate {
                    stream: true,
                    version: None
                }
            )
            .unwrap(),
            "/v1/messages"
        );
        assert_eq!(
            path("/x", Operation::CountTokens { version: None }).unwrap(),
            "/x/v1/messages/count_tokens"
        );
        assert!(path("", Operation::Embed).is_err());
    }
}
