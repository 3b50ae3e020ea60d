//! Provider health: circuits open after failures in a row, skip without a call, let one
//! probe through after the cooldown, and move a load-balance group onto its healthy members.

use crate::support::{Mock, Reply, Sidecar};
use crate::{body, post, provider};
use serde_json::{json, Value};
use std::time::Duration;

/// `a` (with `health`) and `b`, each its own mock; `model-a*` to `a`, the rest to `b`.
async fn two(a: &Mock, b: &Mock, health: &str) -> Sidecar {
    let config = format!(
        "providers:\n{}    health: {health}\n{}load_balance_groups:\n  pool:\n    models:\n      - {{model: model-a, weight: 1}}\n      - {{model: model-b, weight: 1}}\n\
         routes:\n  - match: \"model-a*\"\n    provider: a\n  - match: \"*\"\n    provider: b\n",
        provider("a", "openai", &a.url("/v1")),
        provider("b", "openai", &b.url("/v1")),
    );
    Sidecar::start(&config).await
}

fn no_retries() -> Value {
    json!({"retry_params": {"retry_enabled": false}})
}

#[tokio::test]
async fn failures_in_a_row_open_the_circuit_and_a_probe_closes_it() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let sidecar = two(&a, &b, "{consecutive_failures: 2, cooldown_ms: 400}").await;
    for _ in 0..3 {
        a.push(Reply::openai_error(503, "overloaded"));
    }
    let ask = body("model-a", no_retries());
    for _ in 0..2 {
        assert_eq!(post(&sidecar, &ask).await.0, 503);
    }
    assert_eq!(a.count(), 2);
    // Open: answered at once, without a call, with when to come back.
    let (status, headers, text) = post(&sidecar, &ask).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(headers["retry-after"], "1");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["code"], "circuit_open");
    assert_eq!(a.count(), 2, "an open circuit is never called");
    let trace = &sidecar.traces("limit=1").await[0];
    assert_eq!(
        trace["attempts"][0]["error"],
        "skipped: the circuit is open"
    );
    assert_eq!(trace["attempts"][0]["status_code"], Value::Null);
    let view = sidecar.admin_json("/api/health").await;
    assert_eq!(view["circuits"][0]["state"], "open", "{view}");
    assert_eq!(view["circuits"][0]["provider"], "a");
    assert!(view["circuits"][0]["open_until"].is_string());
    let state = [("provider", "a"), ("model", "model-a")];
    assert_eq!(sidecar.metric("respan_circuit_state", &state).await, 2.0);
    assert!(
        sidecar
            .metric("respan_upstream_attempts_total", &[("outcome", "skipped")])
            .await
            >= 1.0
    );
    // After the cooldown one probe goes; it fails, and the circuit is open again at once.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(post(&sidecar, &ask).await.0, 503);
    assert_eq!(a.count(), 3);
    assert_eq!(post(&sidecar, &ask).await.0, 503);
    assert_eq!(a.count(), 3);
    // The next probe succeeds: closed, and every request goes through again.
    tokio::time::sleep(Duration::from_millis(450)).await;
    for _ in 0..3 {
        assert_eq!(post(&sidecar, &ask).await.0, 200);
    }
    assert_eq!(a.count(), 6);
    assert_eq!(
        sidecar.admin_json("/api/health").await["circuits"][0]["state"],
        "closed"
    );
    assert_eq!(sidecar.metric("respan_circuit_state", &state).await, 0.0);
    // The app's own errors say the provider is up: they never open it.
    for _ in 0..3 {
        a.push(Reply::openai_error(400, "bad request"));
    }
    for _ in 0..3 {
        assert_eq!(post(&sidecar, &ask).await.0, 400);
    }
    assert_eq!(
        sidecar.admin_json("/api/health").await["circuits"][0]["state"],
        "closed"
    );
}

#[tokio::test]
async fn an_open_circuit_hands_the_request_to_fallbacks_and_group_members_at_once() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let sidecar = two(&a, &b, "{consecutive_failures: 1, cooldown_ms: 60000}").await;
    // A 429 storm from `a`, which asks to be left alone for 30 s.
    for _ in 0..20 {
        a.push(Reply::openai_error(429, "slow down").with_header("retry-after", "30"));
    }
    let pooled = json!({"messages": [{"role": "user", "content": "hi"}],
        "load_balance_group": {"group_id": "pool"}, "retry_params": {"retry_enabled": false}});
    for _ in 0..20 {
        let (status, headers, _) = post(&sidecar, &pooled).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-respan-model"], "model-b");
    }
    // `a` was asked once: the request that met the 429 moved on to `b` itself, and every
    // later pick of `a` was skipped without a call.
    assert_eq!(a.count(), 1);
    assert_eq!(b.count(), 20);
    let view = sidecar.admin_json("/api/health").await;
    let open_until = view["circuits"][0]["open_until"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(view["circuits"][0]["state"], "open");
    assert!(view["circuits"][0]["last_failure"]["error"]
        .as_str()
        .unwrap()
        .contains("slow down"));
    // Retry-After (30 s) decided the cooldown, not the configured minute.
    let until = chrono::DateTime::parse_from_rfc3339(&open_until).unwrap();
    let left = until
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((20..=31).contains(&left), "{left} s left");
    // Fallbacks take over too, and a request whose every candidate is open is a 503.
    let fallback = body("model-a", json!({"fallback_models": ["model-b"]}));
    let (status, headers, _) = post(&sidecar, &fallback).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-respan-model"], "model-b");
    let (status, headers, _) = post(&sidecar, &body("model-a", no_retries())).await;
    assert_eq!(status, 503);
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((20..=31).contains(&wait), "{wait}");
    assert_eq!(a.count(), 1);
    // Skipped attempts are neither retries nor fallbacks: no call was made twice (a request
    // that left `a` for `b`, skipped or not, fell back once).
    // Exactly the requests whose trace shows two attempts fell back.
    sidecar.idle().await;
    assert_eq!(sidecar.metric("respan_retries_total", &[]).await, 0.0);
    let moved = sidecar
        .traces("limit=100")
        .await
        .iter()
        .filter(|t| t["attempts"].as_array().is_some_and(|a| a.len() > 1))
        .count();
    assert!(moved >= 2, "{moved}");
    let fallbacks = sidecar.metric("respan_fallbacks_total", &[]).await;
    assert_eq!(fallbacks, moved as f64);
}

#[tokio::test]
async fn a_retry_skipped_by_an_open_circuit_is_not_counted_as_a_retry() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let sidecar = two(&a, &b, "{consecutive_failures: 1, cooldown_ms: 60000}").await;
    a.push(Reply::openai_error(500, "down"));
    // The 500 opens `a`'s circuit: its two retries are skipped, then `b` answers.
    let request = body(
        "model-a",
        json!({"retry_params": {"retry_enabled": true, "num_retries": 2, "retry_after": 0.01},
            "fallback_models": ["model-b"]}),
    );
    let (status, headers, _) = post(&sidecar, &request).await;
    assert_eq!(
        (status, headers["x-respan-model"].to_str().unwrap()),
        (200, "model-b")
    );
    assert_eq!((a.count(), b.count()), (1, 1));
    sidecar.idle().await;
    assert_eq!(sidecar.metric("respan_retries_total", &[]).await, 0.0);
    assert_eq!(sidecar.metric("respan_fallbacks_total", &[]).await, 1.0);
}
