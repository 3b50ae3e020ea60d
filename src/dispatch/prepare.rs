//! One model's call, prepared once and sent on every try: credentials, URL, the body in its
//! provider's format, and how to translate the answer back.

use super::request::ModelRequest;
use crate::body::{raw_string, JsonBody};
use crate::catalog;
use crate::config::{BaseUrl, ProviderConfig, ProviderKind};
use crate::error::GatewayError;
use crate::providers::{self, echo, Credentials, Operation};
use crate::routing::Route;
use crate::state::Snapshot;
use crate::translate::{self, ResponsePlan, TranslateError};
use crate::wire::Wire;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Uri};
use pingora::http::RequestHeader;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::VecDeque;

pub struct Prepared<'a> {
    pub target: Target<'a>,
    /// The request body in the provider's format.
    pub body: Bytes,
    pub plan: ResponsePlan,
}

pub enum Target<'a> {
    /// The echo provider: answered in-process.
    Echo,
    /// Anthropic's count_tokens for a model another provider serves: estimated here.
    Estimate,
    Remote {
        header: Box<RequestHeader>,
        /// The provider's, or one a request's credentials name.
        base_url: Cow<'a, BaseUrl>,
    },
}

/// Prepares the call of `model` (sent upstream as `upstream_model`) along `route`.
pub fn prepare<'a>(
    request: &'a ModelRequest<'_>,
    snapshot: &Snapshot,
    downstream: &RequestHeader,
    route: &Route<'a>,
    model: &str,
    upstream_model: &str,
) -> Result<Prepared<'a>, GatewayError> {
    let provider = route.provider;
    let wire = provider.kind.wire(request.ingress);
    if matches!(request.operation, Operation::CountTokens { .. })
        && request.ingress == Wire::Anthropic
        && wire != Wire::Anthropic
    {
        return Ok(Prepared {
            target: Target::Estimate,
            body: Bytes::new(),
            plan: ResponsePlan::identity(Wire::Anthropic, upstream_model),
        });
    }
    let native = wire == request.ingress;
    let (body, plan) = if native {
        let mut plan = ResponsePlan::identity(request.ingress, upstream_model);
        let usage_option = usage_for_gateway(request, provider);
        plan.usage_for_gateway = usage_option.is_some();
        let body = encode_body(request, provider, upstream_model, usage_option.as_deref());
        (body, plan)
    } else {
        let target = translate::Target {
            max_output_tokens: route
                .max_output_tokens
                .or_else(|| catalog::max_output_tokens(upstream_model)),
            reasons: catalog::reasons(upstream_model),
            web_search: route.web_search,
        };
        let t = translate::request(request.ingress, wire, &request.body, upstream_model, target)
            .map_err(translate_error)?;
        (Bytes::from(t.body), t.plan)
    };
    if provider.kind == ProviderKind::Echo {
        return Ok(Prepared {
            target: Target::Echo,
            body,
            plan,
        });
    }
    let creds = providers::credentials(
        provider,
        model,
        upstream_model,
        &request.params,
        snapshot.config.auth.is_some(),
    )?;
    let operation = match request.operation {
        Operation::Generate { stream, .. } if wire == Wire::Responses => {
            Operation::Respond { stream }
        }
        op => op,
    };
    let mut path = providers::model_call_path(provider, operation, upstream_model, &creds)?;
    if native {
        path = with_app_query(path, downstream.uri.query());
    }
    let header = upstream_header(downstream, provider, &creds, &path, body.len())?;
    Ok(Prepared {
        target: Target::Remote {
            header: Box::new(header),
            base_url: creds.base_url,
        },
        body,
        plan,
    })
}

/// The body for a provider of the app's own format: the app's, minus Respan parameters,
/// with the upstream model name (Gemini's is in the URL), and `metadata` back only for
/// stored completions at OpenAI.
fn encode_body(
    request: &ModelRequest<'_>,
    provider: &ProviderConfig,
    upstream_model: &str,
    stream_options: Option<&RawValue>,
) -> Bytes {
    // The app's `model` stays as it is when the provider gets the same name.
    let renamed =
        request.ingress != Wire::Gemini && request.model.as_deref() != Some(upstream_model);
    let model = renamed.then(|| raw_string(upstream_model));
    let mut overrides: Vec<(&str, &RawValue)> = Vec::new();
    if let Some(model) = &model {
        overrides.push(("model", model));
    }
    if let Some(options) = stream_options {
        overrides.push(("stream_options", options));
    }
    if let (true, ProviderKind::OpenAi, Some(metadata)) = (
        request.store,
        provider.kind,
        request.body_metadata.as_deref(),
    ) {
        overrides.push(("metadata", metadata));
    }
    Bytes::from(request.body.encode(&overrides, &[]))
}

/// The app's query string on a call in its own API (`/v1/messages?beta=true`, as Claude
/// Code sends), added to the provider's path: all of it but a key (Gemini's `key=`, which
/// the gateway's credentials replace) and the parameters the path sets itself.
fn with_app_query(mut path: String, query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return path;
    };
    let own: Vec<String> = path
        .split_once('?')
        .map(|(_, q)| q.split('&').map(|p| name_of(p).to_string()).collect())
        .unwrap_or_default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = name_of(pair);
        if name == "key" || own.iter().any(|o| o == name) {
            continue;
        }
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(pair);
    }
    path
}

fn name_of(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name)
}

/// For an OpenAI stream whose app did not ask for usage: the app's `stream_options` with
/// `include_usage` on, so the trace gets the counts (the relay drops that chunk for the app).
/// Only toward OpenAI itself (and the echo provider): other OpenAI-compatible APIs may refuse
/// the option, and Azure only takes it from some API versions on.
fn usage_for_gateway(
    request: &ModelRequest<'_>,
    provider: &ProviderConfig,
) -> Option<Cow<'static, RawValue>> {
    let eligible = matches!(provider.kind, ProviderKind::OpenAi | ProviderKind::Echo);
    if !(eligible && request.stream && request.ingress == Wire::OpenAi) {
        return None;
    }
    // Most apps send no options (or `null`): the option alone, made once.
    if request.body.get_non_null("stream_options").is_none() {
        return Some(Cow::Borrowed(include_usage()));
    }
    // A `stream_options` that is not an object is the provider's to refuse, untouched.
    let given = request
        .body
        .get_as::<Option<serde_json::Map<String, serde_json::Value>>>("stream_options")
        .ok()?;
    let mut options = given.flatten().unwrap_or_default();
    if options.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
        return None;
    }
    options.insert("include_usage".into(), true.into());
    serde_json::value::to_raw_value(&options)
        .ok()
        .map(Cow::Owned)
}

/// `{"include_usage":true}`.
fn include_usage() -> &'static RawValue {
    static OPTION: std::sync::LazyLock<Box<RawValue>> = std::sync::LazyLock::new(|| {
        RawValue::from_string(r#"{"include_usage":true}"#.to_string()).unwrap_or_default()
    });
    &OPTION
}

/// Anthropic's `count_tokens` answer for a model without a tokenizer here: about four
/// characters a token over the conversation, tools and system prompt.
pub fn token_estimate(body: &JsonBody<'_>) -> echo::LocalAnswer {
    let chars: usize = ["system", "messages", "tools"]
        .iter()
        .filter_map(|key| body.get(key))
        .map(|raw| raw.get().len())
        .sum();
    let tokens = (chars / 4).max(1);
    echo::LocalAnswer {
        status: 200,
        content_type: "application/json",
        chunks: VecDeque::from([Bytes::from(format!("{{\"input_tokens\":{tokens}}}"))]),
    }
}

#[cfg(test)]
#[test]
fn the_apps_query_joins_the_path_but_never_a_key() {
    let q = |path: &str, query| with_app_query(path.to_string(), query);
    assert_eq!(
        q("/v1/messages", Some("beta=true")),
        "/v1/messages?beta=true"
    );
    assert_eq!(q("/v1/messages", None), "/v1/messages");
    assert_eq!(
        q(
            "/v1beta/models/m:streamGenerateContent?alt=sse",
            Some("alt=sse&key=AIza&x=1")
        ),
        "/v1beta/models/m:streamGenerateContent?alt=sse&x=1"
    );
}

fn translate_error(e: TranslateError) -> GatewayError {
    match e {
        TranslateError::Invalid { param, message } => GatewayError::InvalidField { param, message },
        TranslateError::Upstream(message) => GatewayError::Unsupported(message),
    }
}

/// The headers the gateway frames a model call's body with itself; the app's are not copied.
const FRAMING: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::TRANSFER_ENCODING,
    header::EXPECT,
    header::ACCEPT_ENCODING,
];

/// The upstream request header: the app's headers that may travel, the provider's, and the
/// framing for a JSON body of `length` bytes at `path`. Compression is not asked for: the
/// gateway reads what comes back. Built fresh as an `http` head and handed to Pingora whole,
/// rather than cloned and pruned, or filled in through Pingora's setters (which re-parse and
/// copy every header name); header case is not kept, HTTP/1.1 gives it no meaning.
fn upstream_header(
    downstream: &RequestHeader,
    provider: &ProviderConfig,
    creds: &Credentials<'_>,
    path: &str,
    length: usize,
) -> Result<RequestHeader, GatewayError> {
    let uri = Uri::try_from(path)
        .map_err(|_| GatewayError::Unsupported(format!("bad upstream path `{path}`")))?;
    let (mut head, ()) = http::Request::new(()).into_parts();
    head.method = Method::POST;
    head.uri = uri;
    let headers = &mut head.headers;
    headers.reserve(downstream.headers.len() + FRAMING.len() + provider.headers.len() + 2);
    for (name, value) in &downstream.headers {
        if !FRAMING.contains(name) && providers::travels(name, provider, creds) {
            headers.append(name.clone(), value.clone());
        }
    }
    providers::add_provider_headers(headers, provider, creds)?;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, crate::head::number(length));
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    Ok(RequestHeader::from(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_made_once_is_the_one_made_from_no_options() {
        let mut options = serde_json::Map::new();
        options.insert("include_usage".into(), true.into());
        assert_eq!(
            include_usage().get(),
            serde_json::to_string(&options).unwrap()
        );
    }
}
