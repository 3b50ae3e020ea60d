//! What differs between providers on the wire: where a call goes (URL path and query), how
//! it is authenticated, and which of the app's headers may follow it.
//!
//! One module per provider type; this one dispatches on [`ProviderKind`] and holds what they
//! share: choosing the credentials of an attempt and cleaning the forwarded headers.

mod anthropic;
mod azure_openai;
pub(crate) mod echo;
mod gemini;
mod openai;

use crate::config::{BaseUrl, ProviderConfig, ProviderKind, Secret};
use crate::error::GatewayError;
use crate::params::{Credential, RespanParams};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use std::borrow::Cow;

/// Where the key of an attempt comes from.
#[derive(Debug, Clone, Copy)]
pub enum KeySource<'a> {
    /// The provider's configured key.
    Configured(&'a Secret),
    /// From `customer_credentials` or `credential_override`.
    Key(&'a Secret),
    /// No key configured: the app's own key headers are passed through unchanged.
    BringYourOwn,
    /// No key configured and the app's key is this gateway's token: no key goes upstream
    /// (a local OpenAI-compatible server often needs none).
    None,
}

/// The credentials and address of one upstream attempt.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    pub key: KeySource<'a>,
    pub base_url: Cow<'a, BaseUrl>,
    pub api_version: Option<&'a str>,
}

/// Chooses an attempt's credentials, most specific first: `credential_override` for the
/// model (by the name the app used, then the upstream name), `customer_credentials` for the
/// provider, the configured key, and finally the app's own key, but only when the app's key
/// is not this gateway's own token (`auth.keys` configured); then no key is sent.
pub fn credentials<'a>(
    provider: &'a ProviderConfig,
    requested_model: &str,
    upstream_model: &str,
    params: &'a RespanParams,
    gateway_auth: bool,
) -> Result<Credentials<'a>, GatewayError> {
    let overrides = params.credential_override.as_ref();
    let from_request = overrides
        .and_then(|o| o.get(requested_model).or_else(|| o.get(upstream_model)))
        .map(|c| ("credential_override", c))
        .or_else(|| {
            let customer = params.customer_credentials.as_ref()?;
            Some(("customer_credentials", customer.get(&provider.name)?))
        });
    let configured_base = provider.base_url.as_ref();
    match from_request {
        Some((param, credential)) => request_credentials(provider, param, credential),
        None => {
            let key = match (&provider.api_key, gateway_auth) {
                (Some(key), _) => KeySource::Configured(key),
                (None, false) => KeySource::BringYourOwn,
                (None, true) => KeySource::None,
            };
            Ok(Credentials {
                key,
                base_url: Cow::Borrowed(base_or_error(provider, configured_base)?),
                api_version: provider.api_version.as_deref(),
            })
        }
    }
}

fn request_credentials<'a>(
    provider: &'a ProviderConfig,
    param: &str,
    credential: &'a Credential,
) -> Result<Credentials<'a>, GatewayError> {
    let base_url = match &credential.api_base {
        Some(url) => Cow::Owned(BaseUrl::parse(url).map_err(|e| {
            GatewayError::invalid_field(format!("{param}.api_base"), format!("`{url}` {e}"))
        })?),
        None => Cow::Borrowed(base_or_error(provider, provider.base_url.as_ref())?),
    };
    Ok(Credentials {
        key: KeySource::Key(&credential.api_key),
        base_url,
        api_version: credential
            .api_version
            .as_deref()
            .or(provider.api_version.as_deref()),
    })
}

fn base_or_error<'a>(
    provider: &ProviderConfig,
    base: Option<&'a BaseUrl>,
) -> Result<&'a BaseUrl, GatewayError> {
    base.ok_or_else(|| {
        GatewayError::Unsupported(format!("provider `{}` has no base_url", provider.name))
    })
}

/// What a model call asks a provider to do, whatever API the app used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Chat completions, Anthropic messages, Gemini generateContent. `version`: the Gemini API
    /// version the app's path named, if any.
    Generate {
        stream: bool,
        version: Option<&'static str>,
    },
    CountTokens {
        version: Option<&'static str>,
    },
    Embed,
    /// OpenAI's Responses API, spoken natively (to OpenAI providers only).
    Respond {
        stream: bool,
    },
}

/// The path and query of a model call at this provider.
pub fn model_call_path(
    provider: &ProviderConfig,
    op: Operation,
    upstream_model: &str,
    creds: &Credentials<'_>,
) -> Result<String, GatewayError> {
    let base = creds.base_url.path.as_str();
    match provider.kind {
        ProviderKind::OpenAi => openai::path(base, op),
        ProviderKind::AzureOpenAi => {
            azure_openai::path(base, op, upstream_model, creds.api_version)
        }
        ProviderKind::Anthropic => anthropic::path(base, op),
        ProviderKind::Gemini => gemini::path(base, op, upstream_model),
        ProviderKind::Echo => Err(GatewayError::Unsupported(
            "the echo provider has no upstream".into(),
        )),
    }
}

/// Headers that describe one hop of a connection, not the message: never relayed either way.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Whether an answer's header `name` goes back to the app: not the hop-by-hop ones, not
/// `x-respan-*` (only the gateway sets those), and not `Server`, which would name the
/// provider behind a gateway whose point is that the app need not know it.
pub fn relays_back(name: &str) -> bool {
    !(HOP_BY_HOP.contains(&name) || name == "server" || name.starts_with("x-respan-"))
}

/// Headers that carry the app's key; forwarded only for bring-your-own-key.
const KEY_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// Whether the app's header `name` may travel to `provider`. Hop-by-hop headers and `Host`
/// never do (the gateway sets its own); the app's keys and the gateway's control headers are
/// not for the provider.
pub fn travels(name: &HeaderName, provider: &ProviderConfig, creds: &Credentials<'_>) -> bool {
    let n = name.as_str();
    !(HOP_BY_HOP.contains(&n)
        || n == "host"
        || n.starts_with("x-respan-")
        || n.starts_with("x-data-respan-")
        || n.starts_with("x-data-keywordsai-")
        || (anthropic::is_own_header(n) && provider.kind != ProviderKind::Anthropic)
        || (KEY_HEADERS.contains(&n) && !matches!(creds.key, KeySource::BringYourOwn)))
}

/// Turns the app's request header into the upstream's, in place: removes what must not
/// travel, then adds the provider's headers.
pub fn prepare_upstream_header(
    req: &mut RequestHeader,
    provider: &ProviderConfig,
    creds: &Credentials<'_>,
) -> Result<(), GatewayError> {
    let drop: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|name| !travels(name, provider, creds))
        .cloned()
        .collect();
    for name in drop {
        req.remove_header(&name);
    }
    add_provider_headers(req, provider, creds)
}

/// A request header being filled in with the provider's headers: the one a model call builds
/// (an `http` header map, handed to Pingora whole) or Pingora's own for a passthrough.
pub trait Headers {
    fn has(&self, name: &HeaderName) -> bool;
    fn set(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), GatewayError>;
}

impl Headers for HeaderMap {
    fn has(&self, name: &HeaderName) -> bool {
        self.contains_key(name)
    }

    fn set(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), GatewayError> {
        self.insert(name, value);
        Ok(())
    }
}

impl Headers for RequestHeader {
    fn has(&self, name: &HeaderName) -> bool {
        self.headers.contains_key(name)
    }

    fn set(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), GatewayError> {
        self.insert_header(name, value)
            .map_err(|e| GatewayError::Unsupported(e.to_string()))
    }
}

/// Sets `Host`, the provider's key, Anthropic's version when the app gave none, and the
/// provider's configured extra headers.
pub fn add_provider_headers(
    req: &mut impl Headers,
    provider: &ProviderConfig,
    creds: &Credentials<'_>,
) -> Result<(), GatewayError> {
    req.set(header::HOST, creds.base_url.host_header().clone())?;
    let key = match creds.key {
        KeySource::Configured(key) => {
            match provider
                .key_header
                .get_or_init(|| key_header(provider.kind, key).ok())
            {
                Some(made) => Some(made.clone()),
                // Made again only to say why it cannot be.
                None => Some(key_header(provider.kind, key)?),
            }
        }
        KeySource::Key(key) => Some(key_header(provider.kind, key)?),
        KeySource::BringYourOwn | KeySource::None => None,
    };
    if let Some((name, value)) = key {
        req.set(name, value)?;
    }
    if provider.kind == ProviderKind::Anthropic {
        anthropic::add_version(req)?;
    }
    for (name, value) in &provider.headers {
        req.set(name.clone(), value.clone())?;
    }
    Ok(())
}

/// Makes a provider's configured key header when its config is prepared, so that a key that
/// cannot be sent refuses the config (at start or reload) instead of failing every request.
pub fn prepare(provider: &ProviderConfig) -> Result<(), GatewayError> {
    if let Some(key) = &provider.api_key {
        let made = key_header(provider.kind, key)?;
        // A provider is prepared once, by the snapshot that owns it.
        let _ = provider.key_header.set(Some(made));
    }
    Ok(())
}

/// The header that carries `key` at a provider of `kind`.
///
/// Keys come from config files and request parameters: a newline in one must not become a
/// header injection, so invalid values are refused without echoing them. The text is taken
/// over, not copied.
fn key_header(kind: ProviderKind, key: &Secret) -> Result<(HeaderName, HeaderValue), GatewayError> {
    let (name, value) = match kind {
        ProviderKind::AzureOpenAi => azure_openai::auth(key),
        ProviderKind::Anthropic => anthropic::auth(key),
        ProviderKind::Gemini => gemini::auth(key),
        ProviderKind::OpenAi | ProviderKind::Echo => openai::auth(key),
    };
    let mut value = HeaderValue::try_from(value).map_err(|_| invalid_key(&name))?;
    // Keeps the key out of any debug output of the header.
    value.set_sensitive(true);
    Ok((name, value))
}

fn invalid_key(name: &HeaderName) -> GatewayError {
    GatewayError::Unsupported(format!(
        "the value for header `{name}` is not a valid header"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;

    fn provider(kind: &str, key: &str) -> ProviderConfig {
        let yaml = format!(
            "providers:\n  p:\n    type: {kind}\n    base_url: \"http://10.0.0.1:8000/v1\"\n    api_key: \"{key}\"\n"
        );
        let loaded = parse(&yaml, Path::new("."), &|_: &str| None).unwrap();
        loaded.config.providers[0].clone()
    }

    fn headers(provider: &ProviderConfig) -> Result<HeaderMap, GatewayError> {
        let params = RespanParams::default();
        let creds = credentials(provider, "m", "m", &params, false)?;
        let mut headers = HeaderMap::new();
        add_provider_headers(&mut headers, provider, &creds)?;
        Ok(headers)
    }

    #[test]
    fn the_configured_key_header_is_made_once_and_reused() {
        let openai = provider("openai", "sk-1");
        for _ in 0..2 {
            let h = headers(&openai).unwrap();
            assert_eq!(h["authorization"], "Bearer sk-1");
            assert!(h["authorization"].is_sensitive());
            assert_eq!(h["host"], "10.0.0.1:8000");
        }
        assert!(openai.key_header.get().is_some());
        let azure = provider("azure_openai", "az-1");
        assert_eq!(headers(&azure).unwrap()["api-key"], "az-1");
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused_without_echoing_it() {
        let bad = provider("openai", "sk-se\\ncret");
        let e = prepare(&bad).unwrap_err().to_string();
        assert!(e.contains("authorization") && !e.contains("cret"), "{e}");
        for _ in 0..2 {
            let e = headers(&bad).unwrap_err().to_string();
            assert!(e.contains("authorization") && !e.contains("cret"), "{e}");
        }
    }
}
