//! The sidecar's life as Kubernetes drives it, over real files, signals and sockets: config
//! and key files reloaded while it serves, and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // tests spawn their own clients

#[path = "../support/mod.rs"]
mod support;

mod reload;
mod shutdown;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{chat, post_chat, Mock, Sidecar};

/// One provider per mock (`a`, `b`) and routes from `routes` (YAML list items).
pub fn two_providers(a: &Mock, b: &Mock, routes: &str) -> String {
    format!(
        "providers:\n  a:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-a\n\
         \x20 b:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-b\n\
         routes:\n{routes}",
        a.url("/v1"),
        b.url("/v1"),
    )
}

/// A route item for `two_providers`.
pub fn route(pattern: &str, provider: &str) -> String {
    format!("  - match: \"{pattern}\"\n    provider: {provider}\n")
}

/// Waits until `done` holds, checking every 5 ms; how long that took.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// Sends a chat for `model`; the answer's status.
pub async fn status_of(sidecar: &Sidecar, model: &str) -> u16 {
    post_chat(sidecar, &chat(model, "hi"))
        .await
        .status()
        .as_u16()
}

/// A streaming chat body.
pub fn stream(model: &str) -> Value {
    let mut body = chat(model, "hi");
    body["stream"] = json!(true);
    body
}
