//! Token counts as Gemini reports them (`usageMetadata`), in the one shape.

use super::UsageMetadata;
use crate::telemetry::record::TokenUsage;
use serde::Deserialize;

/// Gemini usage: thinking tokens are billed as output but counted apart; they are added.
pub(crate) fn tokens(u: &UsageMetadata) -> TokenUsage {
    let completion = u.candidates_token_count + u.thoughts_token_count;
    TokenUsage {
        prompt_tokens: u.prompt_token_count,
        completion_tokens: completion,
        total_tokens: u.total_token_count.max(u.prompt_token_count + completion),
        cached_tokens: u.cached_content_token_count,
        cache_write_tokens: 0,
        reasoning_tokens: u.thoughts_token_count,
    }
}

/// An answer or a stream chunk, as far as its usage.
#[derive(Deserialize)]
struct WithUsageMetadata {
    #[serde(default, rename = "usageMetadata")]
    usage_metadata: Option<UsageMetadata>,
}

/// The usage of a whole answer; Gemini's non-SSE stream is a JSON array of chunks, whose
/// last count wins.
pub(crate) fn of_body(body: &[u8]) -> Option<TokenUsage> {
    if body.trim_ascii_start().starts_with(b"[") {
        let chunks: Vec<WithUsageMetadata> = serde_json::from_slice(body).ok()?;
        return chunks
            .iter()
            .rev()
            .find_map(|c| c.usage_metadata.as_ref().map(tokens));
    }
    of_chunk(body)
}

/// The running totals one chunk's data reports.
pub(crate) fn of_chunk(data: &[u8]) -> Option<TokenUsage> {
    let chunk: WithUsageMetadata = serde_json::from_slice(data).ok()?;
    chunk.usage_metadata.as_ref().map(tokens)
}
