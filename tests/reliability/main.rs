//! Retries, fallbacks, load balancing, timeouts and cancellation, end to end against
//! scripted mock providers (a queue of behaviours per test), checked from the mocks' logs
//! and clocks.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests run helper servers on their own tasks.
#![allow(clippy::disallowed_methods)]

#[path = "../support/mod.rs"]
mod support;

mod balance;
mod circuits;
mod fallbacks;
mod faults;
mod retries;
mod streams;
mod timeouts;

use serde_json::{json, Value};
use support::{client, Sidecar};

/// A chat body with extra top-level fields.
pub fn body(model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    body
}

/// Posts a chat request; returns status, headers and body text.
pub async fn post(sidecar: &Sidecar, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// A provider block for the config.
pub fn provider(name: &str, kind: &str, base_url: &str) -> String {
    format!("  {name}:\n    type: {kind}\n    base_url: \"{base_url}\"\n    api_key: sk-{name}\n")
}
