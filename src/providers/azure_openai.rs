//! Azure OpenAI: the model names a deployment in the URL, the key goes in `api-key`, and
//! every call carries `api-version`.
//! `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...`

use super::Operation;
use crate::config::Secret;
use crate::error::GatewayError;
use http::header::HeaderName;

pub fn path(
    base: &str,
    op: Operation,
    deployment: &str,
    api_version: Option<&str>,
) -> Result<String, GatewayError> {
    let operation = match op {
        Operation::Generate { .. } => "chat/completions",
        Operation::Embed => "embeddings",
        Operation::CountTokens { .. } => {
            return Err(GatewayError::Unsupported(
                "Azure OpenAI does not count tokens".into(),
            ))
        }
        Operation::Respond { .. } => {
            return Err(GatewayError::Unsupported(
                "Azure OpenAI is sent Responses API requests as chat completions".into(),
            ))
        }
    };
    // Deployment names are letters, digits, `-`, `_` and `.`; anything else would change the
    // URL's meaning, so it is refused rather than escaped.
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !valid(deployment) {
        return Err(GatewayError::invalid_field(
            "model",
            format!("`{deployment}` is not a valid Azure deployment name"),
        ));
    }
    // The config always sets one for azure_openai providers (with a default).
    let version = api_version.unwrap_or_default();
    if !valid(version) {
        return Err(GatewayError::invalid_field(
            "api_version",
            "is not a valid Azure api-version",
        ));
    }
    Ok(format!(
        "{base}/openai/deployments/{deployment}/{operation}?api-version={version}"
    ))
}

pub fn auth(key: &Secret) -> (HeaderName, String) {
    (HeaderName::from_static("api-key"), key.expose().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: Operation = Operation::Generate {
        stream: false,
        version: None,
    };

    #[test]
    fn deployment_urls() {
        assert_eq!(
            path("", CHAT, "gpt4o-prod", Some("2024-10-21")).unwrap(),
            "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            path("/x", Operation::Embed, "emb", Some("2025-01-01")).unwrap(),
            "/x/openai/deployments/emb/embeddings?api-version=2025-01-01"
        );
        assert!(path("", CHAT, "a", None).is_err());
        assert!(path("", CHAT, "a/../b", None).is_err());
        assert!(path("", CHAT, "a", Some("1&x=y")).is_err());
    }
}
