//! Token counts as chat completions (and the Responses API) report them, in the one shape.

use super::Usage;
use crate::telemetry::record::TokenUsage;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// OpenAI usage in the one shape (reasoning tokens are inside the completion count).
pub(crate) fn tokens(u: &Usage) -> TokenUsage {
    TokenUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
        cached_tokens: u.cached_tokens(),
        cache_write_tokens: 0,
        reasoning_tokens: u
            .completion_tokens_details
            .map_or(0, |d| d.reasoning_tokens),
    }
}

/// A whole answer (or a Responses API response), as far as its usage.
#[derive(Deserialize)]
pub(crate) struct WithUsage {
    #[serde(default)]
    pub(crate) usage: Option<Usage>,
}

/// The usage of a whole answer (`Usage` reads the Responses API's names too).
pub(crate) fn of_body(body: &[u8]) -> Option<TokenUsage> {
    let answer: WithUsage = serde_json::from_slice(body).ok()?;
    answer.usage.map(|u| tokens(&u))
}

/// A chunk, as far as its usage.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<IgnoredAny>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// The usage one chunk's data reports, and whether the chunk holds nothing else (no
/// choices: the usage-only chunk `stream_options.include_usage` asks for).
pub(crate) fn of_chunk(data: &[u8]) -> Option<(TokenUsage, bool)> {
    let chunk: Chunk = serde_json::from_slice(data).ok()?;
    let usage = chunk.usage?;
    Some((tokens(&usage), chunk.choices.is_empty()))
}
