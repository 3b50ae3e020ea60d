//! Telemetry end to end: the trace record of each kind of request, checked field by field
//! through `/api/traces`, the exporters against real files and mock receivers, the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

#[path = "../support/mod.rs"]
mod support;

mod exporters;
mod logs_page;
mod metrics;
mod records;
mod secrets;

use serde_json::Value;
use support::{Mock, Sidecar};

/// Providers of each type (`oa`, `an`, `ge`) and routes to them by model prefix.
pub fn three_providers(openai: &Mock, anthropic: &Mock, gemini: &Mock) -> String {
    format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-configured-oa\n\
         \x20 an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-configured-an\n\
         \x20 ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: sk-configured-ge\n\
         routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"gemini-*\"\n    provider: ge\n\
         \x20 - match: \"*\"\n    provider: oa\n",
        openai.url("/v1"),
        anthropic.url(""),
        gemini.url("")
    )
}

/// The sidecar's recent trace records, newest first, once nothing is in flight.
pub async fn traces(sidecar: &Sidecar, query: &str) -> Vec<Value> {
    sidecar.traces(query).await
}

/// The one trace of the request with this id.
pub async fn trace_of(sidecar: &Sidecar, request_id: &str) -> Value {
    let found = traces(sidecar, &format!("request_id={request_id}")).await;
    assert_eq!(found.len(), 1, "trace of {request_id}: {found:?}");
    found[0].clone()
}
