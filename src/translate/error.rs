//! What goes wrong in a translation: a request the provider cannot be asked, an answer that
//! cannot be read, and a provider's error answer told in the caller's format.

use crate::error::{error_body, status_for_caller};
use crate::wire::Wire;
use serde_json::Value;

/// Why a translation could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The request cannot be expressed for the provider: the app gets a 400 naming `param`.
    #[error("`{param}`: {message}")]
    Invalid { param: String, message: String },
    /// The provider's answer could not be read.
    #[error("the upstream answer could not be read: {0}")]
    Upstream(String),
}

impl TranslateError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        TranslateError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// Translates an error answer: the provider's message in the ingress format, with the status
/// the caller's API uses (Anthropic's 529 "overloaded" is a 503 elsewhere). Bodies in the
/// same format pass unchanged.
pub fn translate_error(from: Wire, to: Wire, status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    if to == from {
        return (status, body.to_vec());
    }
    let status = status_for_caller(status, to);
    let message = message_of(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(500).collect();
        if text.trim().is_empty() {
            format!("the provider answered {status}")
        } else {
            text
        }
    });
    (status, error_body(to, status, &message, None, None))
}

/// The message of an error body in a provider's format (all three use `error.message`).
fn message_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = match &value {
        Value::Array(items) => items.first()?.get("error")?,
        other => other.get("error")?,
    };
    error["message"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_errors_for_openai_callers() {
        let body =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let (status, out) = translate_error(Wire::Anthropic, Wire::OpenAi, 529, body);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(status, 503);
        assert_eq!(v["error"]["message"], "Overloaded");
        assert_eq!(v["error"]["type"], "server_error");
    }

    #[test]
    fn gemini_errors_and_unreadable_bodies() {
        let body = br#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
        let (status, out) = translate_error(Wire::Gemini, Wire::OpenAi, 429, body);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (status, v["error"]["type"].as_str()),
            (429, Some("rate_limit_error"))
        );
        let (_, out) = translate_error(Wire::OpenAi, Wire::Anthropic, 500, b"<html>oops</html>");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["message"], "<html>oops</html>");
        assert_eq!(
            translate_error(Wire::OpenAi, Wire::OpenAi, 400, b"x"),
            (400, b"x".to_vec())
        );
    }
}
