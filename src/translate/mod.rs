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
pub(crate) mod openai;
mod reasoning;
pub mod replay;
pub mod responses;
pub mod sse;
mod stream;
pub mod transcript;
pub mod usage;
pub(crate) mod web_search;

pub use error::translate_error;
pub use stream::StreamTranslator;

use crate::body::JsonBody;
use crate::wire::Wire;
use anthropic::request::JsonMode;
use openai::{ChatRequest, ChatResponse};
use responses::ToolNames;
use std::sync::Arc;
use web_search::WebSearchUse;

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

/// How an answer is turned back into the ingress format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePlan {
    pub from: Wire,
    pub to: Wire,
    pub json_mode: JsonMode,
    /// For OpenAI-format streams: the app asked for the usage chunk.
    pub include_usage: bool,
    /// For OpenAI-format streams relayed as they are: the gateway asked the upstream for a
    /// usage chunk the app did not ask for, and drops it on the way.
    pub usage_for_gateway: bool,
    /// The model the answer names when the provider does not. Shared: every try of a model
    /// hands its plan on.
    pub model: Arc<str>,
    /// A Responses request's `namespace` and `custom` tools, whose calls come back as functions.
    pub tool_names: ToolNames,
    /// What became of the web search the app offered, if it offered one.
    pub web_search: Option<WebSearchUse>,
}

impl ResponsePlan {
    /// For an answer already in the ingress format.
    pub fn identity(ingress: Wire, model: &str) -> Self {
        ResponsePlan {
            from: ingress,
            to: ingress,
            json_mode: JsonMode::Off,
            include_usage: false,
            usage_for_gateway: false,
            model: model.into(),
            tool_names: ToolNames::default(),
            web_search: None,
        }
    }

    /// Same format both ways: the bytes are relayed untouched.
    pub fn is_identity(&self) -> bool {
        self.from == self.to
    }

    /// A whole successful answer in the provider's format -> the ingress format.
    pub fn translate_body(&self, body: &[u8]) -> Result<Vec<u8>, TranslateError> {
        let unreadable = |e: serde_json::Error| TranslateError::Upstream(e.to_string());
        let canonical: ChatResponse = match self.from {
            Wire::OpenAi => serde_json::from_slice(body).map_err(unreadable)?,
            Wire::Anthropic => anthropic::response::to_openai(
                serde_json::from_slice(body).map_err(unreadable)?,
                &self.json_mode,
            ),
            Wire::Gemini => gemini::response::to_openai(
                serde_json::from_slice(body).map_err(unreadable)?,
                &self.model,
            ),
            // Only ever relayed as it is (to a Responses ingress).
            Wire::Responses => return Ok(body.to_vec()),
        };
        let out = match self.to {
            Wire::Anthropic => serde_json::to_vec(&anthropic::response::from_openai(canonical)),
            Wire::Responses => responses::response::from_openai(canonical, &self.tool_names),
            Wire::OpenAi | Wire::Gemini => serde_json::to_vec(&canonical),
        };
        out.map_err(|e| TranslateError::Upstream(e.to_string()))
    }
}

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
