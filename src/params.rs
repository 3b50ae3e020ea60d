//! The Respan request parameters: found, merged, typed and removed from the body.
//!
//! They arrive, highest precedence first, as top-level body keys (where the OpenAI SDK's
//! `extra_body` puts them), inside a `respan_params` object (legacy: `keywordsai_params`), on
//! the Anthropic paths inside `metadata.respan_params`, and in the `X-Data-Respan-Params`
//! header (legacy: `X-Data-Keywordsai-Params`) as base64 JSON.
//! They are merged key by key, typed in one pass (a wrong type names the parameter), and every
//! one of them is gone from the body before it is sent anywhere.

use crate::body::{raw_json, BodyError, JsonBody};
use crate::config::Secret;
use crate::wire::Wire;
use base64::Engine;
use compact_str::CompactString;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// Top-level body keys that are Respan parameters, never provider parameters.
const BODY_PARAMS: &[&str] = &[
    "customer_identifier",
    "customer_params",
    "thread_identifier",
    "metadata",
    "custom_identifier",
    "disable_log",
    "request_breakdown",
    "fallback_models",
    "disable_fallback",
    "load_balance_group",
    "retry_params",
    "cache_enabled",
    "cache_ttl",
    "cache_options",
    "customer_credentials",
    "credential_override",
    "model_name_map",
    "prompt",
];

/// Body keys that hold a whole parameter object, highest precedence first.
const BODY_CONTAINERS: &[&str] = &["respan_params", "keywordsai_params"];

/// Longest `customer_identifier` kept; longer ones are truncated.
const MAX_CUSTOMER_ID_CHARS: usize = 254;

/// The typed parameters of one request. Absent means "not given": defaults are applied by
/// whoever uses the value, since some come from the config.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RespanParams {
    pub customer_identifier: Option<String>,
    pub customer_params: Option<CustomerParams>,
    pub thread_identifier: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub custom_identifier: Option<String>,
    pub disable_log: Option<bool>,
    pub request_breakdown: Option<bool>,
    pub fallback_models: Option<Vec<String>>,
    pub disable_fallback: Option<bool>,
    pub load_balance_group: Option<LoadBalanceGroupParam>,
    pub retry_params: Option<RetryParams>,
    pub cache_enabled: Option<bool>,
    pub cache_ttl: Option<u64>,
    pub cache_options: Option<CacheOptions>,
    pub customer_credentials: Option<HashMap<String, Credential>>,
    pub credential_override: Option<HashMap<String, Credential>>,
    pub model_name_map: Option<HashMap<String, String>>,
    pub prompt: Option<PromptParam>,
}

impl RespanParams {
    /// The customer a request is for: its own `customer_identifier`, else `default` (its
    /// auth key's).
    pub fn customer_or(&self, default: Option<CompactString>) -> Option<CompactString> {
        let own = self.customer_identifier.as_deref().map(CompactString::from);
        own.or(default)
    }
}

/// The extended customer form: the known fields, and any others as given (kept for traces).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct CustomerParams {
    pub customer_identifier: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LoadBalanceGroupParam {
    pub group_id: String,
    pub models: Option<Vec<WeightedModelParam>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WeightedModelParam {
    pub model: String,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct RetryParams {
    pub retry_enabled: Option<bool>,
    pub num_retries: Option<u32>,
    pub retry_after: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CacheOptions {
    pub cache_by_customer: Option<bool>,
    pub omit_log: Option<bool>,
    /// `false`: one answer serves the same conversation whatever model it is routed to.
    pub is_cached_by_model: Option<bool>,
}

/// Credentials a request brings for a provider or a model; `Debug` never shows the key.
#[derive(Debug, Clone, Deserialize)]
pub struct Credential {
    pub api_key: Secret,
    pub api_base: Option<String>,
    pub api_version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PromptParam {
    pub prompt_id: String,
    #[serde(default)]
    pub variables: Map<String, Value>,
    /// One of the prompt's versions; the deployed one without it.
    pub version: Option<u64>,
    #[serde(default, rename = "override")]
    pub override_params: bool,
    #[serde(default)]
    pub echo: bool,
}

/// A parameter that could not be read; answered 400 naming `param`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Respan parameter `{param}`: {message}")]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl ParamError {
    fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        ParamError {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// What [`extract`] found.
#[derive(Debug, Default)]
pub struct Extracted<'a> {
    pub params: RespanParams,
    /// The body's own top-level `metadata`, removed with the rest; put back only for an
    /// OpenAI provider when the request has `store: true` (stored completions use the field).
    pub body_metadata: Option<Cow<'a, RawValue>>,
}

/// The parameter headers as they arrived, highest precedence first
/// (`X-Data-Respan-Params`, then `X-Data-Keywordsai-Params`).
pub type ParamHeaders<'a> = [(&'static str, Option<&'a [u8]>); 2];

/// Removes every Respan parameter from `body` and returns them typed and merged.
///
/// The merge is done on raw JSON (a one-level [`JsonBody`], where a later key replaces an
/// earlier one), lowest precedence first, and typed once at the end: values are never built
/// into a tree, and those from the body are never copied.
pub fn extract<'a>(
    body: &mut JsonBody<'a>,
    headers: ParamHeaders<'_>,
    ingress: Wire,
) -> Result<Extracted<'a>, ParamError> {
    let mut merged = JsonBody::default();
    for (name, value) in headers.iter().rev() {
        if let Some(value) = value {
            merge(&mut merged, decode_header(name, value)?);
        }
    }
    if ingress == Wire::Anthropic {
        anthropic_metadata(body, &mut merged)?;
    }
    for name in BODY_CONTAINERS.iter().rev() {
        if let Some(raw) = body.take(name) {
            if let Some(object) =
                object(raw).map_err(|_| ParamError::new(*name, "must be an object"))?
            {
                merge(&mut merged, object);
            }
        }
    }
    let mut body_metadata = None;
    for name in BODY_PARAMS {
        // Anthropic's own `metadata` was sorted out above.
        if *name == "metadata" && ingress == Wire::Anthropic {
            continue;
        }
        let Some(raw) = body.take(name) else { continue };
        if *name == "metadata" {
            body_metadata = Some(raw.clone());
        }
        merged.set(*name, raw);
    }
    let mut params = typed(&merged)?;
    if params.customer_identifier.is_none() {
        params.customer_identifier = params
            .customer_params
            .as_ref()
            .and_then(|c| c.customer_identifier.clone());
    }
    if let Some(id) = params.customer_identifier.as_mut() {
        truncate_chars(id, MAX_CUSTOMER_ID_CHARS);
    }
    Ok(Extracted {
        params,
        body_metadata,
    })
}

/// Sets every key of `object` in `merged`, over what was there.
fn merge<'a>(merged: &mut JsonBody<'a>, object: JsonBody<'a>) {
    for (key, value) in object.into_fields() {
        merged.set(key, value);
    }
}

/// A parameter container's object; `None` for `null`, `Err` for anything else.
fn object(raw: Cow<'_, RawValue>) -> Result<Option<JsonBody<'_>>, BodyError> {
    if raw.get() == "null" {
        return Ok(None);
    }
    match raw {
        Cow::Borrowed(raw) => JsonBody::parse(raw.get().as_bytes()).map(Some),
        Cow::Owned(raw) => JsonBody::parse(raw.get().as_bytes()).map(|o| Some(o.into_owned())),
    }
}

/// On the Anthropic paths `metadata` is Anthropic's own field, which allows `user_id` only:
/// `user_id` stays, `respan_params` inside it is read as parameters, and any other key is
/// Respan metadata (recorded, never sent).
fn anthropic_metadata(
    body: &mut JsonBody<'_>,
    merged: &mut JsonBody<'_>,
) -> Result<(), ParamError> {
    let Some(raw) = body.take("metadata") else {
        return Ok(());
    };
    let mut metadata = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Object(object)) => object,
        Ok(Value::Null) => return Ok(()),
        _ => return Err(ParamError::new("metadata", "must be an object")),
    };
    match metadata.remove("respan_params") {
        Some(Value::Object(params)) => {
            for (key, value) in params {
                merged.set(key, Cow::Owned(raw_json(&value)));
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => {
            return Err(ParamError::new(
                "metadata.respan_params",
                "must be an object",
            ))
        }
    }
    // Anthropic's own field stays in the body, and is on the trace too (Claude Code's is a
    // JSON text of device and session ids).
    if let Some(user_id) = metadata.get("user_id") {
        let user = serde_json::json!({ "user_id": user_id });
        body.set("metadata", Cow::Owned(raw_json(&user)));
    }
    if !metadata.is_empty() {
        merged.set("metadata", Cow::Owned(raw_json(&Value::Object(metadata))));
    }
    Ok(())
}

/// Types the merged parameters; a mismatch names the parameter by its path.
fn typed(merged: &JsonBody<'_>) -> Result<RespanParams, ParamError> {
    // `null` means "not given", as the SDKs send it for unset optional fields.
    let given = || {
        let pairs = merged.fields().filter(|(_, v)| v.get() != "null");
        serde::de::value::MapDeserializer::new(pairs)
    };
    // Parsed without tracking the path first (the common case: the types are right); only a
    // failure is parsed again, to name the parameter in the error.
    RespanParams::deserialize(given()).or_else(|_: serde_json::Error| {
        serde_path_to_error::deserialize(given()).map_err(
            |e: serde_path_to_error::Error<serde_json::Error>| {
                let param = e.path().to_string();
                ParamError::new(param, e.into_inner().to_string())
            },
        )
    })
}

fn decode_header(name: &str, value: &[u8]) -> Result<JsonBody<'static>, ParamError> {
    let value = value.trim_ascii();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let decoded = engines
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .ok_or_else(|| ParamError::new(name, "is not base64"))?;
    JsonBody::parse(&decoded)
        .map(JsonBody::into_owned)
        .map_err(|_| ParamError::new(name, "is not base64 of a JSON object"))
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((byte_index, _)) = s.char_indices().nth(max) {
        s.truncate(byte_index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn run<'a>(body: &'a str, header: Option<&str>) -> (Result<Extracted<'a>, ParamError>, String) {
        let mut b = JsonBody::parse(body.as_bytes()).unwrap();
        let encoded = header.map(|h| STANDARD.encode(h));
        let headers = [
            (
                "X-Data-Respan-Params",
                encoded.as_deref().map(str::as_bytes),
            ),
            ("X-Data-Keywordsai-Params", None),
        ];
        let result = extract(&mut b, headers, Wire::OpenAi);
        (result, String::from_utf8(b.encode(&[], &[])).unwrap())
    }

    #[test]
    fn strips_every_source_and_respects_precedence() {
        let (r, rest) = run(
            r#"{"model":"m","customer_identifier":"top","respan_params":{"customer_identifier":"inner","thread_identifier":"t1"},
                "keywordsai_params":{"custom_identifier":"legacy"},"messages":[]}"#,
            Some(r#"{"customer_identifier":"hdr","disable_log":true}"#),
        );
        let p = r.unwrap().params;
        assert_eq!(p.customer_identifier.as_deref(), Some("top"));
        assert_eq!(p.thread_identifier.as_deref(), Some("t1"));
        assert_eq!(p.custom_identifier.as_deref(), Some("legacy"));
        assert_eq!(p.disable_log, Some(true));
        assert_eq!(rest, r#"{"model":"m","messages":[]}"#);
    }

    #[test]
    fn null_containers_and_values_mean_not_given() {
        let (r, rest) = run(
            r#"{"respan_params": null ,"customer_identifier" :  null ,"thread_identifier":"t","m\u006fdel":"x"}"#,
            Some(r#"{"customer_identifier":"hdr","disable_log":null}"#),
        );
        let p = r.unwrap().params;
        assert_eq!(p.customer_identifier, None);
        assert_eq!(p.disable_log, None);
        assert_eq!(p.thread_identifier.as_deref(), Some("t"));
        assert_eq!(rest, r#"{"model":"x"}"#);
    }

    #[test]
    fn wrong_types_name_the_parameter() {
        let (r, _) = run(r#"{"fallback_models":"gpt-4o"}"#, None);
        assert_eq!(r.unwrap_err().param, "fallback_models");
        let (r, _) = run(r#"{"retry_params":{"num_retries":"three"}}"#, None);
        assert_eq!(r.unwrap_err().param, "retry_params.num_retries");
        let (r, _) = run(r#"{"respan_params":[1]}"#, None);
        assert_eq!(r.unwrap_err().param, "respan_params");
        let (r, _) = run("{}", Some("[1]"));
        assert_eq!(r.unwrap_err().param, "X-Data-Respan-Params");
    }

    #[test]
    fn bad_header_encoding_is_an_error() {
        let mut b = JsonBody::parse(b"{}").unwrap();
        let headers = [
            ("X-Data-Respan-Params", Some(&b"%%%"[..])),
            ("X-Data-Keywordsai-Params", None),
        ];
        assert_eq!(
            extract(&mut b, headers, Wire::OpenAi).unwrap_err().message,
            "is not base64"
        );
    }

    #[test]
    fn customer_identifier_is_truncated_and_defaults_from_customer_params() {
        let long = "é".repeat(300);
        let body = format!(r#"{{"customer_identifier":"{long}"}}"#);
        let (r, _) = run(&body, None);
        assert_eq!(
            r.unwrap()
                .params
                .customer_identifier
                .unwrap()
                .chars()
                .count(),
            254
        );
        let (r, _) = run(
            r#"{"customer_params":{"customer_identifier":"c1","email":"a@b"}}"#,
            None,
        );
        assert_eq!(r.unwrap().params.customer_identifier.as_deref(), Some("c1"));
    }

    #[test]
    fn anthropic_metadata_keeps_user_id_and_yields_respan_params() {
        let mut b = JsonBody::parse(
            br#"{"model":"m","metadata":{"user_id":"u-1","respan_params":{"customer_identifier":"c"},"team":"x"}}"#,
        )
        .unwrap();
        let e = extract(
            &mut b,
            [
                ("X-Data-Respan-Params", None),
                ("X-Data-Keywordsai-Params", None),
            ],
            Wire::Anthropic,
        )
        .unwrap();
        assert_eq!(e.params.customer_identifier.as_deref(), Some("c"));
        let metadata = e.params.metadata.unwrap();
        assert_eq!(
            (metadata["team"].as_str(), metadata["user_id"].as_str()),
            (Some("x"), Some("u-1"))
        );
        assert_eq!(
            b.encode(&[], &[]),
            br#"{"model":"m","metadata":{"user_id":"u-1"}}"#
        );
        let mut only_params = JsonBody::parse(br#"{"metadata":{"respan_params":{}}}"#).unwrap();
        extract(
            &mut only_params,
            [
                ("X-Data-Respan-Params", None),
                ("X-Data-Keywordsai-Params", None),
            ],
            Wire::Anthropic,
        )
        .unwrap();
        assert_eq!(only_params.encode(&[], &[]), b"{}");
    }

    #[test]
    fn metadata_is_kept_aside_and_credentials_hide_keys() {
        let (r, rest) = run(
            r#"{"metadata":{"k":"v"},"customer_credentials":{"openai":{"api_key":"sk-secret"}},"x":null}"#,
            None,
        );
        let e = r.unwrap();
        assert_eq!(e.body_metadata.unwrap().get(), r#"{"k":"v"}"#);
        assert!(!format!("{:?}", e.params).contains("sk-secret"));
        assert_eq!(rest, r#"{"x":null}"#);
    }
}
