//! One conformance suite, run against every provider type: the app speaks OpenAI Chat
//! Completions; the mock provider answers from `tests/fixtures/<provider>/` in its own wire
//! format; every provider must give the app the same OpenAI answers. Each provider also
//! checks what it received (the translated request). A provider opts out of a capability by
//! listing it in `unsupported`, never by leaving a test out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod cases;
mod providers;
mod responses;

use providers::{Capability, ProviderCase, PROVIDERS};
use serde_json::Value;
use support::{client, Mock, Reply, Sidecar};

fn fixture(provider: &str, name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(provider)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A sidecar routing every model to a mock of `case`'s provider type.
async fn setup(case: &ProviderCase) -> (Mock, Sidecar) {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  p:\n    type: {}\n    base_url: \"{}\"\n    api_key: sk-conformance\n\
         routes:\n  - match: \"*\"\n    provider: p\n    upstream_model: {}\n",
        case.kind,
        mock.url(case.base_path),
        case.model
    );
    let sidecar = Sidecar::start(&config).await;
    (mock, sidecar)
}

/// Sends an OpenAI request (retries off, so error cases see one try) and returns the
/// status, the raw body and the mock's last received request.
async fn call(sidecar: &Sidecar, mut body: Value) -> (u16, String) {
    body["retry_params"] = serde_json::json!({"retry_enabled": false});
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Runs one capability against every provider that supports it.
async fn conform(capability: Capability) {
    for case in PROVIDERS {
        if case.unsupported.contains(&capability) {
            continue;
        }
        let (mock, sidecar) = setup(case).await;
        cases::run(capability, case, &mock, &sidecar).await;
        assert!(
            !sidecar.log().contains("sk-conformance"),
            "{}: the key reached the log",
            case.kind
        );
    }
}

macro_rules! conformance {
    ($($name:ident => $cap:expr),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                conform($cap).await;
            }
        )*
    };
}

conformance! {
    text => Capability::Text,
    system => Capability::System,
    multi_turn => Capability::MultiTurn,
    tool_round_trip => Capability::ToolRoundTrip,
    json_mode => Capability::JsonMode,
    streaming_text => Capability::StreamText,
    streaming_tool_call => Capability::StreamToolCall,
    rate_limited_429 => Capability::RateLimit,
    bad_request_400 => Capability::BadRequest,
    stream_cut_midway => Capability::StreamCut,
}

/// Used by `cases`: a fixture reply for a provider.
pub fn reply(case: &ProviderCase, name: &str) -> Reply {
    let text = fixture(case.fixtures, name);
    if name.ends_with(".sse") {
        Reply::sse_text(&text)
    } else {
        let status = match name {
            "error_429.json" => 429,
            "error_400.json" => 400,
            _ => 200,
        };
        Reply::json_text(status, &text)
    }
}
