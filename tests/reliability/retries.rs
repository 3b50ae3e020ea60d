//! Retries of the same model: counts, spacing, Retry-After, which failures qualify.

use crate::support::{Mock, Reply, Sidecar};
use crate::{body, post, provider};
use serde_json::json;
use std::time::Duration;

fn config(mock: &Mock) -> String {
    format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &mock.url("/v1"))
    )
}

fn gaps(mock: &Mock) -> Vec<Duration> {
    let got = mock.received();
    got.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test]
async fn backoff_grows_exponentially_with_bounded_jitter() {
    let mock = Mock::start().await;
    for _ in 0..3 {
        mock.push(Reply::openai_error(500, "boom"));
    }
    let sidecar = Sidecar::start(&config(&mock)).await;
    let (status, headers, _) = post(
        &sidecar,
        &body(
            "gpt-4o",
            json!({"retry_params": {"num_retries": 3, "retry_after": 0.1}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-respan-attempts"], "4");
    let gaps = gaps(&mock);
    for (gap, base) in gaps.iter().zip([100u64, 200, 400]) {
        let base = Duration::from_millis(base);
        assert!(*gap >= base, "{gaps:?}");
        // The slack covers a stalled process on a loaded machine; the jitter's own bounds are
        // unit-tested in `dispatch::retry`.
        assert!(
            *gap <= base.mul_f64(1.25) + Duration::from_millis(250),
            "{gaps:?}"
        );
    }
}

#[tokio::test]
async fn retry_after_and_retry_after_ms_are_honoured() {
    let mock = Mock::start().await;
    mock.push(Reply::openai_error(429, "wait").with_header("retry-after", "1"));
    mock.push(Reply::openai_error(503, "wait").with_header("retry-after-ms", "300"));
    let sidecar = Sidecar::start(&config(&mock)).await;
    let (status, _, _) = post(
        &sidecar,
        &body("gpt-4o", json!({"retry_params": {"retry_after": 0.01}})),
    )
    .await;
    assert_eq!(status, 200);
    let gaps = gaps(&mock);
    assert!(
        gaps[0] >= Duration::from_secs(1) && gaps[0] < Duration::from_millis(1500),
        "{gaps:?}"
    );
    assert!(
        gaps[1] >= Duration::from_millis(300) && gaps[1] < Duration::from_millis(700),
        "{gaps:?}"
    );
}

#[tokio::test]
async fn connect_errors_are_retried_then_502() {
    let port = crate::support::free_port();
    let config = format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: down\n",
        provider("down", "openai", &format!("http://127.0.0.1:{port}/v1"))
    );
    let sidecar = Sidecar::start(&config).await;
    let (status, headers, text) = post(
        &sidecar,
        &body(
            "gpt-4o",
            json!({"retry_params": {"num_retries": 2, "retry_after": 0.01}}),
        ),
    )
    .await;
    assert_eq!(status, 502, "{text}");
    assert_eq!(headers["x-respan-attempts"], "3");
    let labels = [
        ("provider", "down"),
        ("model", "*"),
        ("outcome", "connect_error"),
    ];
    assert_eq!(
        sidecar
            .metric("respan_upstream_attempts_total", &labels)
            .await,
        3.0
    );
    assert_eq!(
        sidecar
            .metric("respan_retries_total", &[("provider", "down")])
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_400_is_not_retried_but_falls_back() {
    let mock = Mock::start().await;
    mock.push(Reply::openai_error(400, "bad temperature"));
    let sidecar = Sidecar::start(&config(&mock)).await;
    let (status, headers, _) = post(
        &sidecar,
        &body("gpt-4o", json!({"fallback_models": ["gpt-4o-mini"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-respan-model"], "gpt-4o-mini");
    let models: Vec<String> = mock
        .received()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        models,
        ["gpt-4o", "gpt-4o-mini"],
        "one try of gpt-4o, then the fallback"
    );
}
