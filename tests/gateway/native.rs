//! The Anthropic and Gemini paths: native forwarding, keys, and provider errors in the
//! caller's format.

use crate::support::mock::Flavor;
use crate::support::{chat, client, post_chat, Mock, Reply, Sidecar};
use serde_json::{json, Value};

fn anthropic_config(mock: &Mock, key: &str) -> String {
    format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n{key}routes:\n  - match: \"*\"\n    provider: an\n",
        mock.url("")
    )
}

#[tokio::test]
async fn anthropic_native_keys_bring_your_own_and_auth() {
    let mock = Mock::start_as(Flavor::Anthropic).await;
    let byok = Sidecar::start(&anthropic_config(&mock, "")).await;
    let body = json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
        "customer_identifier": "c-1", "respan_params": {"thread_identifier": "t"}});
    for (name, value) in [
        ("x-api-key", "sk-ant-own"),
        ("authorization", "Bearer sk-ant-own"),
    ] {
        let r = client()
            .post(byok.url("/v1/messages"))
            .header(name, value)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = mock.last();
        assert_eq!(
            got.header(name),
            Some(value),
            "bring your own key via {name}"
        );
        assert_eq!(
            got.json(),
            json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        );
        assert!(got.header("anthropic-version").is_some());
    }
    let guarded = Sidecar::start(&format!(
        "auth:\n  keys:\n    - key: app-token\n{}",
        anthropic_config(&mock, "    api_key: sk-ant-conf\n")
    ))
    .await;
    let r = client()
        .post(guarded.url("/anthropic/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );
    let r = client()
        .post(guarded.url("/anthropic/v1/messages"))
        .header("x-api-key", "app-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(mock.last().header("x-api-key"), Some("sk-ant-conf"));
}

#[tokio::test]
async fn provider_errors_come_back_in_the_callers_format() {
    let mock = Mock::start().await;
    mock.push(Reply::status(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    mock.push(
        Reply::status(
            429,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
        )
        .with_header("retry-after", "7"),
    );
    let sidecar = Sidecar::start(&anthropic_config(&mock, "    api_key: k\n")).await;
    let mut body = chat("claude-x", "hi");
    body["retry_params"] = json!({"retry_enabled": false});
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Overloaded");
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"]["type"].as_str(), v["error"]["message"].as_str()),
        (Some("rate_limit_error"), Some("slow down"))
    );
}

#[tokio::test]
async fn gemini_native_hides_the_apps_key_and_parameters() {
    let mock = Mock::start_as(Flavor::Gemini).await;
    let config = format!(
        "providers:\n  ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: sk-ge\nroutes:\n  - match: \"*\"\n    provider: ge\n",
        mock.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "customer_identifier": "c", "metadata": {"a": "b"}});
    let r =
        client()
            .post(sidecar.url(
                "/api/google/gemini/v1beta/models/gemini-2.5-pro:generateContent?key=app-secret",
            ))
            .header("x-goog-api-key", "app-secret")
            .json(&body)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-respan-model"], "gemini-2.5-pro");
    let got = mock.last();
    assert_eq!(got.path, "/v1beta/models/gemini-2.5-pro:generateContent");
    assert_eq!(got.header("x-goog-api-key"), Some("sk-ge"));
    assert_eq!(
        got.json(),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    );
    let r = client()
        .post(sidecar.url("/gemini/v1/models/bad%2Fname:generateContent"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn claude_codes_requests_keep_their_query_their_user_id_and_hide_the_providers_server() {
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    let openai = Mock::start().await;
    anthropic
        .push(Reply::anthropic_message("claude-x", "hi").with_header("server", "upstream/1.0"));
    openai.push(Reply::openai_chat("gpt-x", "hi").with_header("server", "upstream/1.0"));
    let sidecar = Sidecar::start(&format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n\
         \x20 oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-oa\n\
         routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"*\"\n    provider: oa\n",
        anthropic.url(""),
        openai.url("/v1")
    ))
    .await;
    let user_id = r#"{"device_id":"d-1","session_id":"s-1"}"#;
    for model in ["claude-x", "gpt-x"] {
        let body = json!({"model": model, "max_tokens": 5, "metadata": {"user_id": user_id},
            "messages": [{"role": "user", "content": "hi"}]});
        let r = client()
            .post(sidecar.url("/v1/messages?beta=true"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        assert!(
            r.headers().get("server").is_none(),
            "{model}: {:?}",
            r.headers()
        );
        let id = r.headers()["x-respan-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let trace = sidecar
            .traces("limit=10")
            .await
            .into_iter()
            .find(|t| t["request_id"] == id.as_str())
            .unwrap();
        assert_eq!(trace["metadata"]["user_id"], user_id, "{model}");
    }
    // Native: the query and Anthropic's own user_id go on; translated: no OpenAI `user`.
    let native = anthropic.last();
    assert_eq!(native.path, "/v1/messages?beta=true");
    assert_eq!(native.json()["metadata"]["user_id"], user_id);
    let translated = openai.last();
    assert_eq!(translated.path, "/v1/chat/completions");
    assert!(translated.json().get("user").is_none());
}

#[tokio::test]
async fn claude_codes_max_tokens_is_capped_at_the_target_models_limit() {
    let openai = Mock::start().await;
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-oa\n\
         routes:\n  - match: small-model\n    provider: oa\n    max_output_tokens: 1000\n\
         \x20 - match: \"*\"\n    provider: oa\n",
        openai.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let limits = [
        ("gpt-4.1", 32768),
        ("gpt-4.1-mini-2025-04-14", 32768),
        ("small-model", 1000),
        ("unknown-model", 64000),
    ];
    for (model, expected) in limits {
        let body = json!({"model": model, "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]});
        let r = client()
            .post(sidecar.url("/v1/messages"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        assert_eq!(
            openai.last().json()["max_completion_tokens"],
            expected,
            "{model}"
        );
    }
    // Claude Code's thinking: an effort for a reasoning model, nothing for another.
    for (model, effort) in [("o3", Some("high")), ("gpt-4.1", None)] {
        let body = json!({"model": model, "max_tokens": 32000, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 31999}});
        let r = client()
            .post(sidecar.url("/v1/messages"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let sent = openai.last().json();
        assert_eq!(sent["reasoning_effort"].as_str(), effort, "{model}");
        assert!(sent.get("thinking").is_none(), "{model}");
    }
    // The OpenAI path's own limit is the app's.
    let body = json!({"model": "gpt-4.1", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]});
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(openai.last().json()["max_tokens"], 64000);
}
