//! The app's key: where each SDK puts it, and the check against `auth.keys`.

use crate::config::{AuthConfig, AuthKey};
use crate::error::GatewayError;
use pingora::http::RequestHeader;

/// The key the app sent: `Authorization: Bearer` (OpenAI SDK, recent Anthropic SDKs),
/// `x-api-key` (older Anthropic SDKs) or `x-goog-api-key` (google-genai).
pub fn app_key(req: &RequestHeader) -> Option<&[u8]> {
    if let Some(authorization) = req.headers.get(http::header::AUTHORIZATION) {
        return bearer_token(authorization.as_bytes());
    }
    ["x-api-key", "x-goog-api-key"]
        .iter()
        .find_map(|name| req.headers.get(*name))
        .map(|v| v.as_bytes().trim_ascii())
}

/// The token of an `Authorization: Bearer` header (the scheme in any case).
pub fn bearer(req: &RequestHeader) -> Option<&[u8]> {
    bearer_token(req.headers.get(http::header::AUTHORIZATION)?.as_bytes())
}

/// The token of an `Authorization` value that uses the Bearer scheme.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| value[7..].trim_ascii())
}

/// With `auth.keys` configured, the matching key (its default `customer_identifier` applies
/// to the request); without, every caller passes.
pub fn check<'a>(
    auth: Option<&'a AuthConfig>,
    req: &RequestHeader,
) -> Result<Option<&'a AuthKey>, GatewayError> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let presented = app_key(req).ok_or(GatewayError::Unauthorized)?;
    // Compare against every key, in constant time per key, so timing tells nothing.
    let mut found = None;
    for key in &auth.keys {
        if key.key.matches(presented) {
            found = Some(key);
        }
    }
    found.map(Some).ok_or(GatewayError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn config() -> AuthConfig {
        AuthConfig {
            keys: vec![AuthKey {
                name: "0".into(),
                key: Secret::new("tok-1"),
                customer_identifier: Some("team-a".into()),
            }],
        }
    }

    #[test]
    fn finds_the_key_in_each_sdk_header() {
        assert_eq!(
            app_key(&req(&[("authorization", "Bearer tok")])),
            Some(&b"tok"[..])
        );
        assert_eq!(
            app_key(&req(&[("authorization", "bearer  tok ")])),
            Some(&b"tok"[..])
        );
        assert_eq!(app_key(&req(&[("x-api-key", "k2")])), Some(&b"k2"[..]));
        assert_eq!(app_key(&req(&[("x-goog-api-key", "k3")])), Some(&b"k3"[..]));
        assert_eq!(app_key(&req(&[("authorization", "Basic abc")])), None);
        assert_eq!(app_key(&req(&[])), None);
    }

    #[test]
    fn checks_against_configured_keys() {
        let c = config();
        assert!(check(None, &req(&[])).unwrap().is_none());
        let key = check(Some(&c), &req(&[("authorization", "Bearer tok-1")])).unwrap();
        assert_eq!(key.unwrap().customer_identifier.as_deref(), Some("team-a"));
        assert!(check(Some(&c), &req(&[("x-api-key", "tok-2")])).is_err());
        assert!(check(Some(&c), &req(&[])).is_err());
    }
}
