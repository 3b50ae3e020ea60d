//! The API port end to end: the real binary, real sockets, mock providers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod budgets;
mod cache;
mod chat;
mod credentials;
mod errors;
mod limits;
mod native;
mod passthrough;
mod pool;
mod prompts;
mod realtime;
mod responses;
mod retry;

use support::Mock;

/// A config with one OpenAI-compatible provider `mock` (key `sk-test`) serving every model.
pub fn openai_config(mock: &Mock) -> String {
    format!(
        "providers:\n  mock:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-test\n\
         routes:\n  - match: \"*\"\n    provider: mock\n",
        mock.url("/v1")
    )
}
