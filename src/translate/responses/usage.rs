//! Token counts in a Responses API stream: the terminal event (`response.completed`, ...)
//! holds the whole response, with its usage.

use crate::telemetry::record::TokenUsage;
use crate::translate::openai::usage::{tokens, WithUsage};
use serde::Deserialize;

/// An event, as far as its usage.
#[derive(Deserialize)]
struct WithResponse {
    #[serde(default)]
    response: Option<WithUsage>,
}

/// The usage one event's data reports.
pub(crate) fn of_event(data: &[u8]) -> Option<TokenUsage> {
    // `response.created` and `response.in_progress` say `"usage":null` in a whole response.
    if !super::may_hold_response(data) {
        return None;
    }
    let event: WithResponse = serde_json::from_slice(data).ok()?;
    event.response?.usage.map(|u| tokens(&u))
}
