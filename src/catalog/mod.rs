//! What the gateway knows about models without asking anyone: their list prices (for cost)
//! and their output limits (for translation), shipped in the binary as data (`models.json`,
//! from the providers' public model pages).
//!
//! A model matches the first entry whose name it is, or whose `prefix*` it starts with, so
//! dated snapshots (`gpt-4.1-2025-04-14`) share their family's entry. A provider prefix
//! (`openai/gpt-4.1`) is ignored.

use serde::Deserialize;
use std::sync::LazyLock;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cache reads; the input price when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Anthropic's cache writes; the input price when absent.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(flatten)]
    price: Price,
    /// The most tokens one answer may have (chat models only).
    #[serde(default)]
    max_output_tokens: Option<u64>,
    /// An OpenAI reasoning model: it takes `reasoning_effort`.
    #[serde(default)]
    reasoning: bool,
}

#[derive(Debug, Deserialize)]
struct Catalog {
    models: Vec<Entry>,
}

static CATALOG: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    // Shipped with the binary and checked by a test: a parse failure cannot reach a release.
    serde_json::from_str::<Catalog>(include_str!("models.json"))
        .map(|c| c.models)
        .unwrap_or_default()
});

fn entry(model: &str) -> Option<&'static Entry> {
    let model = model.rsplit('/').next().unwrap_or(model);
    CATALOG.iter().find(|e| match e.pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => e.pattern == model,
    })
}

/// The list price of `model`.
pub fn price(model: &str) -> Option<Price> {
    entry(model).map(|e| e.price)
}

/// The output limit of `model`, where it is known.
pub fn max_output_tokens(model: &str) -> Option<u64> {
    entry(model)?.max_output_tokens
}

/// Whether `model` is an OpenAI reasoning model (`reasoning_effort` is refused by others).
pub fn reasons(model: &str) -> bool {
    entry(model).is_some_and(|e| e.reasoning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_parses_and_knows_each_providers_current_models() {
        assert!(CATALOG.len() > 20, "{} entries", CATALOG.len());
        for model in [
            "gpt-4.1",
            "gpt-4.1-mini-2025-04-14",
            "gpt-4o-mini",
            "o3",
            "claude-sonnet-4-5",
            "claude-haiku-4-5-20251001",
            "gemini-2.5-flash",
            "text-embedding-3-small",
        ] {
            assert!(price(model).is_some(), "{model}");
        }
        assert_eq!(price("no-such-model"), None);
        assert_eq!(price("openai/gpt-4.1"), price("gpt-4.1"));
    }

    #[test]
    fn specific_entries_win_over_their_family() {
        let mini = price("gpt-4.1-mini").unwrap();
        let full = price("gpt-4.1").unwrap();
        assert!(mini.input < full.input);
    }

    #[test]
    fn chat_models_have_output_limits_and_embeddings_none() {
        assert_eq!(max_output_tokens("gpt-4.1-2025-04-14"), Some(32768));
        assert_eq!(max_output_tokens("claude-sonnet-4-5"), Some(64000));
        assert_eq!(max_output_tokens("gemini-2.5-pro"), Some(65536));
        assert_eq!(max_output_tokens("text-embedding-3-small"), None);
        assert_eq!(max_output_tokens("no-such-model"), None);
        assert!(reasons("gpt-5-mini") && reasons("o3") && reasons("o4-mini-2025-04-16"));
        assert!(!reasons("gpt-4.1") && !reasons("gpt-4o") && !reasons("claude-sonnet-4-5"));
    }
}
