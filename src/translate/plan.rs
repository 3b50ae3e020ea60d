//! How an answer is turned back into the format the app speaks: the plan every try of a
//! model hands on, and a whole answer translated by it (streams: `stream`).

use super::anthropic::{self, request::JsonMode};
use super::error::TranslateError;
use super::gemini;
use super::openai::ChatResponse;
use super::responses::{self, ToolNames};
use super::web_search::WebSearchUse;
use crate::wire::Wire;
use std::sync::Arc;

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
