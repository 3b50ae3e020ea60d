//! What a request cost in USD: its token counts times the model's prices, from the model
//! catalog shipped in the binary (`catalog`, public list prices) or a route's own `pricing`.
//!
//! Cached input is billed at the cached price, tokens written to Anthropic's prompt cache at
//! the cache-write price, and reasoning tokens as output (they are part of the output count).
//! A model the catalog does not know has no cost (absent, not 0).

use super::record::{RequestRecord, TokenUsage};
use crate::catalog::{self, Price};

/// The cost of `usage` at `price`.
pub fn cost(usage: &TokenUsage, price: &Price) -> f64 {
    let cached = usage.cached_tokens.min(usage.prompt_tokens);
    let written = usage.cache_write_tokens.min(usage.prompt_tokens - cached);
    let plain = usage.prompt_tokens - cached - written;
    let per_token = |tokens: u64, per_million: f64| tokens as f64 * per_million / 1e6;
    per_token(plain, price.input)
        + per_token(cached, price.cached_input.unwrap_or(price.input))
        + per_token(written, price.cache_write.unwrap_or(price.input))
        + per_token(usage.completion_tokens, price.output)
}

/// What a request cost, and what a cache hit saved: a hit made no upstream call, so it cost
/// nothing and saved what its answer cost when it was asked (the trace's `cost` and
/// `cost_saved`, and what a limit is settled with).
pub fn of_record(record: &RequestRecord) -> (Option<f64>, Option<f64>) {
    let priced = request_cost(
        record.usage.as_ref(),
        &record.served.upstream_model,
        record.price_override,
    );
    if record.cache_hit() {
        (Some(0.0), priced)
    } else {
        (priced, None)
    }
}

/// The cost of a request: the route's price if it has one, else the catalog's for the model
/// the provider served.
pub fn request_cost(
    usage: Option<&TokenUsage>,
    model: &str,
    price_override: Option<Price>,
) -> Option<f64> {
    let usage = usage?;
    let price = price_override.or_else(|| catalog::price(model))?;
    Some(cost(usage, &price))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> TokenUsage {
        TokenUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            ..TokenUsage::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn plain_input_and_output_tokens() {
        let p = Price {
            input: 2.0,
            output: 8.0,
            cached_input: Some(0.5),
            cache_write: None,
        };
        assert!(close(cost(&usage(1_000_000, 500_000), &p), 2.0 + 4.0));
    }

    /// Cached tokens are part of the prompt count and billed at the cached price, not twice.
    #[test]
    fn cached_input_is_billed_at_its_own_price_once() {
        let p = Price {
            input: 2.0,
            output: 8.0,
            cached_input: Some(0.5),
            cache_write: None,
        };
        let u = TokenUsage {
            cached_tokens: 600_000,
            ..usage(1_000_000, 0)
        };
        assert!(close(cost(&u, &p), 0.4 * 2.0 + 0.6 * 0.5));
    }

    #[test]
    fn anthropic_cache_writes_cost_more_than_input() {
        let p = Price {
            input: 3.0,
            output: 15.0,
            cached_input: Some(0.3),
            cache_write: Some(3.75),
        };
        let u = TokenUsage {
            cached_tokens: 200_000,
            cache_write_tokens: 300_000,
            ..usage(1_000_000, 100_000)
        };
        let expected = 0.5 * 3.0 + 0.2 * 0.3 + 0.3 * 3.75 + 0.1 * 15.0;
        assert!(close(cost(&u, &p), expected));
    }

    /// Reasoning tokens are inside the output count: billed as output, and not added again.
    #[test]
    fn reasoning_tokens_are_billed_as_output_once() {
        let p = Price {
            input: 1.0,
            output: 4.0,
            cached_input: None,
            cache_write: None,
        };
        let u = TokenUsage {
            reasoning_tokens: 400_000,
            ..usage(0, 1_000_000)
        };
        assert!(close(cost(&u, &p), 4.0));
    }

    #[test]
    fn no_price_means_no_cost_and_overrides_win() {
        assert_eq!(request_cost(Some(&usage(10, 10)), "mystery", None), None);
        assert_eq!(request_cost(None, "gpt-4.1", None), None);
        let own = Price {
            input: 1.0,
            output: 1.0,
            cached_input: None,
            cache_write: None,
        };
        let c = request_cost(Some(&usage(1_000_000, 0)), "mystery", Some(own));
        assert_eq!(c, Some(1.0));
    }

    /// Counts that disagree (more cached than prompt tokens) never bill negative tokens.
    #[test]
    fn inconsistent_counts_are_clamped() {
        let p = Price {
            input: 1.0,
            output: 1.0,
            cached_input: Some(0.0),
            cache_write: Some(0.0),
        };
        let u = TokenUsage {
            cached_tokens: 50,
            cache_write_tokens: 50,
            ..usage(10, 0)
        };
        assert!(close(cost(&u, &p), 0.0));
    }
}
