//! Gemini (Google AI Studio): `{base_url}/{version}/models/{model}:{method}`, key in
//! `x-goog-api-key`; streams ask for `alt=sse`.

use super::Operation;
use crate::config::Secret;
use crate::error::GatewayError;
use http::header::HeaderName;

/// The version used for translated calls: `v1beta` has every feature the translation uses
/// (system instructions, tools, response schemas).
const DEFAULT_VERSION: &str = "v1beta";

pub fn path(base: &str, op: Operation, model: &str) -> Result<String, GatewayError> {
    // Model names are letters, digits, `-`, `_` and `.`: anything else would change the URL.
    let valid = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(GatewayError::invalid_field(
            "model",
            format!("`{model}` is not a valid Gemini model name"),
        ));
    }
    let (version, method) = match op {
        Operation::Generate {
            stream: true,
            version,
        } => (version, "streamGenerateContent?alt=sse"),
        Operation::Generate {
            stream: false,
            version,
        } => (version, "generateContent"),
        Operation::CountTokens { version } => (version, "countTokens"),
        Operation::Embed => {
            return Err(GatewayError::Unsupported(
                "embeddings are served by OpenAI-type providers".into(),
            ))
        }
        Operation::Respond { .. } => {
            return Err(GatewayError::Unsupported(
                "Gemini is sent Responses API requests as generateContent".into(),
            ))
        }
    };
    let version = version.unwrap_or(DEFAULT_VERSION);
    Ok(format!("{base}/{version}/models/{model}:{method}"))
}

pub fn auth(key: &Secret) -> (HeaderName, String) {
    (
        HeaderName::from_static("x-goog-api-key"),
        key.expose().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let stream = Operation::Generate {
            stream: true,
            version: Some("v1"),
        };
        assert_eq!(
            path("", stream, "gemini-2.5-flash").unwrap(),
            "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        let plain = Operation::Generate {
            stream: false,
            version: None,
        };
        assert_eq!(
            path("/p", plain, "g").unwrap(),
            "/p/v1beta/models/g:generateContent"
        );
        assert!(path("", plain, "../x").is_err());
        assert!(path("", Operation::Embed, "g").is_err());
    }
}
