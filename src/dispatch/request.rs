//! A model call's request, parsed once: which API, which model, the body without the Respan
//! parameters, and those parameters typed.

use crate::body::JsonBody;
use crate::endpoint::{Endpoint, GeminiAction, GeminiCall};
use crate::error::GatewayError;
use crate::params::{self, Extracted, RespanParams};
use crate::providers::Operation;
use crate::wire::Wire;
use pingora::http::RequestHeader;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A parsed model call, ready to be sent to any provider.
pub struct ModelRequest<'a> {
    pub ingress: Wire,
    pub operation: Operation,
    /// The model the app asked for (from the body, or the path on Gemini's API); a
    /// `load_balance_group` may stand in for it.
    pub model: Option<String>,
    /// The app's body without the Respan parameters.
    pub body: JsonBody<'a>,
    pub params: RespanParams,
    /// The body's own `metadata` (see `params::Extracted::body_metadata`).
    pub body_metadata: Option<Cow<'a, RawValue>>,
    pub stream: bool,
    pub store: bool,
}

/// Parses a model call's body (nested at most `max_depth` deep, its conversation in shape).
pub fn parse<'a>(
    endpoint: Endpoint,
    bytes: &'a [u8],
    req: &RequestHeader,
    max_depth: usize,
) -> Result<ModelRequest<'a>, GatewayError> {
    let ingress = endpoint.ingress();
    let mut body = JsonBody::parse(bytes)?;
    let shape = super::shape::bound(endpoint, &body, max_depth)?;
    let header = |name: &str| req.headers.get(name).map(|v| v.as_bytes());
    let Extracted {
        params,
        body_metadata,
    } = params::extract(
        &mut body,
        [
            ("X-Data-Respan-Params", header("x-data-respan-params")),
            (
                "X-Data-Keywordsai-Params",
                header("x-data-keywordsai-params"),
            ),
        ],
        ingress,
    )?;
    let flag = |name: &str| {
        body.get_as::<Option<bool>>(name)
            .map(|v| v.flatten().unwrap_or(false))
            .map_err(|e| GatewayError::invalid_field(name, e))
    };
    let (model, operation) = match endpoint {
        Endpoint::Gemini => {
            let call = GeminiCall::parse(req.uri.path())
                .ok_or_else(|| GatewayError::invalid_field("model", "no model in the path"))?;
            let version = Some(call.version);
            let op = match call.action {
                GeminiAction::Generate => Operation::Generate {
                    stream: false,
                    version,
                },
                GeminiAction::Stream => Operation::Generate {
                    stream: true,
                    version,
                },
                GeminiAction::CountTokens => Operation::CountTokens { version },
            };
            (Some(call.model), op)
        }
        _ => {
            let model = body
                .get_as::<Option<String>>("model")
                .map_err(|e| GatewayError::invalid_field("model", e))?
                .flatten();
            let op = match endpoint {
                Endpoint::Embeddings => Operation::Embed,
                Endpoint::AnthropicCountTokens => Operation::CountTokens { version: None },
                _ => Operation::Generate {
                    stream: flag("stream")?,
                    version: None,
                },
            };
            (model, op)
        }
    };
    shape.check(&body)?;
    let stream = matches!(operation, Operation::Generate { stream: true, .. });
    let store = flag("store")?;
    Ok(ModelRequest {
        ingress,
        operation,
        model,
        body,
        params,
        body_metadata,
        stream,
        store,
    })
}

/// `X-Respan-Route-Provider`, if given.
pub fn pinned_provider(req: &RequestHeader) -> Result<Option<String>, GatewayError> {
    req.headers
        .get("x-respan-route-provider")
        .map(|v| {
            v.to_str().map(str::to_string).map_err(|_| {
                GatewayError::invalid_field("X-Respan-Route-Provider", "is not valid text")
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> String {
        let req = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        let parsed = parse(Endpoint::ChatCompletions, body.as_bytes(), &req, 64);
        parsed.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_body_too_deep_is_told_first_and_a_conversation_out_of_shape_last() {
        let e = refused(r#"{"model":5,"messages":[{}]}"#);
        assert!(e.contains("`model`") && !e.contains("messages"), "{e}");
        let deep = format!(
            r#"{{"model":5,"messages":[{{"role":"user","content":{}1{}}}]}}"#,
            "[".repeat(70),
            "]".repeat(70)
        );
        assert!(refused(&deep).contains("nested deeper than 64"));
        assert!(refused(r#"{"model":"m","messages":[{}]}"#).contains("`messages[0]`"));
    }
}
