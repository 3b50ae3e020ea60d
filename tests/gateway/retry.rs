//! The attempt loop: a second try after an upstream 500 or 429, for any body size.

use crate::openai_config;
use crate::support::{chat, post_chat, Mock, Reply, Sidecar};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn a_500_is_retried_and_the_second_answer_relayed() {
    let mock = Mock::start().await;
    mock.push(Reply::openai_error(500, "boom"));
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut body = chat("gpt-4o", "hi");
    body["retry_params"] = json!({"num_retries": 2, "retry_after": 0.05});
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-respan-attempts"], "2");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "mock answer");
    let got = mock.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].body, got[1].body,
        "the same rewritten body is resent"
    );
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(50),
        "backoff was skipped"
    );
}

#[tokio::test]
async fn retries_resend_five_mebibyte_bodies() {
    let mock = Mock::start().await;
    mock.push(Reply::openai_error(503, "busy"));
    mock.push(Reply::openai_error(502, "busy"));
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let big = "z".repeat(5 * 1024 * 1024);
    let mut body = chat("gpt-4o", &big);
    body["retry_params"] = json!({"num_retries": 3, "retry_after": 0.01});
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 200);
    let got = mock.received();
    assert_eq!(got.len(), 3);
    for g in &got {
        assert_eq!(
            g.json()["messages"][0]["content"].as_str().unwrap().len(),
            big.len()
        );
        assert!(g.json().get("retry_params").is_none());
    }
}

#[tokio::test]
async fn when_every_try_fails_the_last_answer_is_relayed() {
    let mock = Mock::start().await;
    for _ in 0..3 {
        mock.push(Reply::openai_error(429, "slow down").with_header("retry-after-ms", "10"));
    }
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut body = chat("gpt-4o", "hi");
    body["retry_params"] = json!({"num_retries": 2, "retry_after": 0.01});
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-respan-attempts"], "3");
    assert_eq!(r.headers()["retry-after-ms"], "10");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "slow down");
    assert_eq!(mock.count(), 3);
}

#[tokio::test]
async fn retries_can_be_turned_off() {
    let mock = Mock::start().await;
    mock.push(Reply::openai_error(500, "boom"));
    let config = format!("retry:\n  retry_enabled: false\n{}", openai_config(&mock));
    let sidecar = Sidecar::start(&config).await;
    let r = post_chat(&sidecar, &chat("gpt-4o", "hi")).await;
    assert_eq!(r.status(), 500);
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn a_failed_model_falls_back_to_the_next() {
    let mock = Mock::start().await;
    mock.push(Reply::openai_error(500, "down"));
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut body = chat("gpt-4o", "hi");
    body["fallback_models"] = json!(["gpt-4o-mini"]);
    body["retry_params"] = json!({"retry_enabled": false});
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-respan-model"], "gpt-4o-mini");
    assert_eq!(r.headers()["x-respan-attempts"], "2");
    let models: Vec<Value> = mock
        .received()
        .iter()
        .map(|g| g.json()["model"].clone())
        .collect();
    assert_eq!(models, [json!("gpt-4o"), json!("gpt-4o-mini")]);
}
