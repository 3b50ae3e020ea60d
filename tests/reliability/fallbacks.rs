//! Fallbacks across models and providers, each translated for its own provider.

use crate::support::mock::Flavor;
use crate::support::{Mock, Reply, Sidecar};
use crate::{body, post, provider};
use serde_json::{json, Value};

struct Three {
    openai: Mock,
    anthropic: Mock,
    gemini: Mock,
    sidecar: Sidecar,
}

async fn three() -> Three {
    let openai = Mock::start().await;
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    let gemini = Mock::start_as(Flavor::Gemini).await;
    let config = format!(
        "providers:\n{}{}{}routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"gemini-*\"\n    provider: ge\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &openai.url("/v1")),
        provider("an", "anthropic", &anthropic.url("")),
        provider("ge", "gemini", &gemini.url(""))
    );
    let sidecar = Sidecar::start(&config).await;
    Three {
        openai,
        anthropic,
        gemini,
        sidecar,
    }
}

#[tokio::test]
async fn openai_falls_back_to_claude_then_gemini() {
    let t = three().await;
    t.openai.push(Reply::openai_error(500, "down"));
    t.anthropic.push(Reply::status(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    let extra = json!({"fallback_models": ["claude-haiku-4-5", "gemini-2.5-flash"], "retry_params": {"retry_enabled": false}});
    let (status, headers, text) = post(&t.sidecar, &body("gpt-4o", extra)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["x-respan-provider"], "ge");
    assert_eq!(headers["x-respan-model"], "gemini-2.5-flash");
    assert_eq!(headers["x-respan-attempts"], "3");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "mock answer");
    assert_eq!(
        t.anthropic.last().json()["messages"][0]["content"][0]["text"],
        "hi",
        "translated for Anthropic"
    );
    assert_eq!(
        t.gemini.last().json()["contents"][0]["parts"][0]["text"],
        "hi",
        "translated for Gemini"
    );
    assert_eq!(
        t.sidecar
            .metric(
                "respan_fallbacks_total",
                &[("from_model", "*"), ("to_model", "claude-*")]
            )
            .await,
        1.0
    );
    assert_eq!(
        t.sidecar
            .metric(
                "respan_fallbacks_total",
                &[("from_model", "claude-*"), ("to_model", "gemini-*")]
            )
            .await,
        1.0
    );
}

#[tokio::test]
async fn when_all_fail_the_last_status_comes_back_in_openai_shape() {
    let t = three().await;
    t.openai.push(Reply::openai_error(500, "down"));
    t.anthropic.push(Reply::status(
        429,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
    ));
    let extra =
        json!({"fallback_models": ["claude-haiku-4-5"], "retry_params": {"retry_enabled": false}});
    let (status, headers, text) = post(&t.sidecar, &body("gpt-4o", extra)).await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(headers["x-respan-provider"], "an");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["message"], "slow down");
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn five_mebibytes_fall_back_across_providers() {
    let t = three().await;
    t.openai.push(Reply::openai_error(503, "busy"));
    let big = "q".repeat(5 * 1024 * 1024);
    let mut request = body(
        "gpt-4o",
        json!({"fallback_models": ["claude-haiku-4-5"], "retry_params": {"retry_enabled": false}}),
    );
    request["messages"][0]["content"] = json!(big);
    let (status, _, _) = post(&t.sidecar, &request).await;
    assert_eq!(status, 200);
    assert_eq!(
        t.openai.last().json()["messages"][0]["content"]
            .as_str()
            .unwrap()
            .len(),
        big.len()
    );
    let claude = t.anthropic.last().json();
    assert_eq!(
        claude["messages"][0]["content"][0]["text"]
            .as_str()
            .unwrap(),
        big
    );
}

#[tokio::test]
async fn disable_fallback_tries_one_model() {
    let t = three().await;
    t.openai.push(Reply::openai_error(500, "down"));
    let extra = json!({"fallback_models": ["claude-haiku-4-5"], "disable_fallback": true, "retry_params": {"retry_enabled": false}});
    let (status, _, _) = post(&t.sidecar, &body("gpt-4o", extra)).await;
    assert_eq!(status, 500);
    assert_eq!(t.anthropic.count(), 0);
}
