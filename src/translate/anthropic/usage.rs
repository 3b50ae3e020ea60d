//! Token counts as the Messages API reports them, in the one shape.

use super::AUsage;
use crate::telemetry::record::TokenUsage;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Anthropic usage: its `input_tokens` leaves out cache reads and writes, which are added.
pub(crate) fn tokens(u: &AUsage) -> TokenUsage {
    let read = u.cache_read_input_tokens.unwrap_or(0);
    let written = u.cache_creation_input_tokens.unwrap_or(0);
    let prompt = u.input_tokens + read + written;
    TokenUsage {
        prompt_tokens: prompt,
        completion_tokens: u.output_tokens,
        total_tokens: prompt + u.output_tokens,
        cached_tokens: read,
        cache_write_tokens: written,
        reasoning_tokens: 0,
    }
}

/// A whole message (or the one `message_start` carries), as far as its usage.
#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<AUsage>,
}

/// The usage of a whole message.
pub(crate) fn of_body(body: &[u8]) -> Option<TokenUsage> {
    let message: WithUsage = serde_json::from_slice(body).ok()?;
    message.usage.map(|u| tokens(&u))
}

/// A stream event, as far as its usage: `message_start` carries the input counts,
/// `message_delta` the output count (and, from some models, the input counts again).
#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    message: Option<WithUsage>,
    #[serde(default)]
    usage: Option<AUsage>,
}

/// Folds the counts one event's data reports into `so_far`; whether it reported any.
pub(crate) fn add_event(data: &[u8], so_far: &mut AUsage) -> bool {
    let Ok(event) = serde_json::from_slice::<Event>(data) else {
        return false;
    };
    add(so_far, [event.message.and_then(|m| m.usage), event.usage])
}

/// Folds reports into `so_far`; whether there was any.
pub(crate) fn add(so_far: &mut AUsage, reports: [Option<AUsage>; 2]) -> bool {
    let mut reported = false;
    for report in reports.into_iter().flatten() {
        merge(so_far, &report);
        reported = true;
    }
    reported
}

/// The reports of an event whose `message` (`message_start`'s) and `usage` were kept raw.
pub(crate) fn reports(message: Option<&RawValue>, usage: Option<&RawValue>) -> [Option<AUsage>; 2] {
    let read = |raw: &RawValue| serde_json::from_str::<WithUsage>(raw.get()).ok();
    let start = message.and_then(read).and_then(|m| m.usage);
    [start, own(usage)]
}

/// An event's own `usage`, kept raw (a whole message's counts, or a `message_delta`'s).
pub(crate) fn own(usage: Option<&RawValue>) -> Option<AUsage> {
    usage.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

/// Later Anthropic reports replace what they give: the output count always (it is a running
/// total), the input counts only when present (`message_delta` usually leaves them out).
fn merge(into: &mut AUsage, report: &AUsage) {
    into.output_tokens = report.output_tokens;
    if report.input_tokens > 0 {
        into.input_tokens = report.input_tokens;
    }
    if report.cache_read_input_tokens.is_some() {
        into.cache_read_input_tokens = report.cache_read_input_tokens;
    }
    if report.cache_creation_input_tokens.is_some() {
        into.cache_creation_input_tokens = report.cache_creation_input_tokens;
    }
}
