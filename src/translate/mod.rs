//! Translation between the API an app speaks (its ingress) and the wire format of the
//! provider that serves it: requests, whole answers, streams event by event, and errors.
//!
//! Every translation goes through the OpenAI form (`openai`): Anthropic <-> OpenAI and
//! Gemini -> OpenAI are written once, and Anthropic-in, Gemini-out is their composition.
//! Pure: bytes and values in, bytes and values out.

pub mod anthropic;
pub(crate) mod assembled;
pub mod collect;
mod error;
mod fields;
mod first;
pub(crate) mod gemini;
pub(crate) mod json_text;
pub(crate) mod openai;
mod plan;
mod reasoning;
pub mod replay;
pub mod responses;
pub mod sse;
mod stream;
mod text_or_list;
pub mod transcript;
pub mod usage;
pub(crate) mod web_search;

pub use error::{translate_error, TranslateError};
pub use plan::ResponsePlan;
pub use stream::StreamTranslator;

use crate::body::JsonBody;
use crate::wire::Wire;
use anthropic::request::JsonMode;
use openai::ChatRequest;
use responses::ToolNames;
use web_search::WebSearchUse;

/// A request body for a provider, and how to read its answer.
#[derive(Debug)]
pub struct Translated {
    pub body: Vec<u8>,
    pub plan: ResponsePlan,
}

/// What a translation must know of the model it is for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target {
    /// Its output limit, when known.
    pub max_output_tokens: Option<u64>,
    /// It is an OpenAI reasoning model, which takes `reasoning_effort` (others refuse it).
    pub reasons: bool,
    /// Its route lets an offered web search through (`web_search: off` does not).
    pub web_search: bool,
}

/// Builds the body of a model call for a provider speaking `wire`, from a request in the
/// `ingress` format (Respan parameters already removed), naming `upstream_model`.
///
/// Anthropic requires `max_tokens`, and its clients set it high (Claude Code: 64,000), so on
/// that ingress it is a ceiling, not a wish: it is lowered to the target model's limit, which
/// would otherwise refuse every request. Other ingresses' limits are the app's, untouched.
///
/// Same-format calls are not handled here: the caller forwards the body as it is.
pub fn request(
    ingress: Wire,
    wire: Wire,
    body: &JsonBody<'_>,
    upstream_model: &str,
    target: Target,
) -> Result<Translated, TranslateError> {
    let invalid_body = |e: serde_json::Error| TranslateError::invalid("body", e.to_string());
    let mut tool_names = ToolNames::default();
    let mut canonical: ChatRequest = match ingress {
        Wire::OpenAi => body.to_typed().map_err(invalid_body)?,
        Wire::Anthropic => anthropic::request::to_openai(body.to_typed().map_err(invalid_body)?)?,
        Wire::Responses => {
            let (chat, of_tools) =
                responses::request::to_openai(body.to_typed().map_err(invalid_body)?)?;
            tool_names = of_tools;
            chat
        }
        Wire::Gemini => {
            return Err(TranslateError::invalid(
                "model",
                "the Gemini API path serves Gemini models only",
            ))
        }
    };
    canonical.model = upstream_model.to_string();
    if let (Wire::Anthropic, Some(ceiling)) = (ingress, target.max_output_tokens) {
        let limits = [
            &mut canonical.max_tokens,
            &mut canonical.max_completion_tokens,
        ];
        for asked in limits.into_iter().flatten() {
            *asked = (*asked).min(ceiling);
        }
    }
    let include_usage = canonical.include_usage();
    let web_search = web_search_use(&mut canonical, wire, target);
    let mut json_mode = JsonMode::Off;
    let serialize = |r: Result<Vec<u8>, serde_json::Error>| {
        r.map_err(|e| TranslateError::Upstream(e.to_string()))
    };
    let out = match wire {
        Wire::OpenAi => {
            // Anthropic's budget is not OpenAI's to read; the effort only a reasoning model's.
            canonical.thinking = None;
            if !target.reasons {
                canonical.reasoning_effort = None;
            }
            serialize(serde_json::to_vec(&canonical))?
        }
        Wire::Anthropic => {
            let (req, mode) = anthropic::request::from_openai(canonical)?;
            json_mode = mode;
            serialize(serde_json::to_vec(&req))?
        }
        Wire::Gemini => serialize(serde_json::to_vec(&gemini::request::from_openai(
            canonical,
        )?))?,
        Wire::Responses => {
            return Err(TranslateError::invalid(
                "body",
                "only a Responses API request is sent to the Responses API",
            ))
        }
    };
    Ok(Translated {
        body: out,
        plan: ResponsePlan {
            from: wire,
            to: ingress,
            json_mode,
            include_usage,
            usage_for_gateway: false,
            model: upstream_model.into(),
            tool_names,
            web_search,
        },
    })
}

/// What the provider gets of an offered web search: its own server-side search where it
/// has one and the route allows it; otherwise the search is left out of the request.
fn web_search_use(canonical: &mut ChatRequest, wire: Wire, target: Target) -> Option<WebSearchUse> {
    canonical.web_search_options.as_ref()?;
    let search = match wire {
        Wire::Anthropic if target.web_search => WebSearchUse::Mapped("anthropic"),
        Wire::Gemini if target.web_search => WebSearchUse::Mapped("gemini"),
        _ => WebSearchUse::LeftOut,
    };
    if search == WebSearchUse::LeftOut {
        canonical.web_search_options = None;
    }
    Some(search)
}

#[cfg(test)]
mod tests;
