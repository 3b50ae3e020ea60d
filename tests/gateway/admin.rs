//! The admin port: health, readiness and Prometheus metrics.

use crate::openai_config;
use crate::support::{chat, post_chat, Mock, Reply, Sidecar};

#[tokio::test]
async fn health_and_readiness() {
    let sidecar = Sidecar::start("providers:\n  echo:\n    type: echo\n").await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            reqwest::get(sidecar.admin_url(path))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        reqwest::get(sidecar.admin_url("/nope"))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn metrics_count_requests_attempts_and_retries() {
    let mock = Mock::start().await;
    mock.push(Reply::openai_error(500, "boom"));
    let sidecar = Sidecar::start(&format!(
        "{}  - match: exact-model\n    provider: mock\n",
        openai_config(&mock).replace("match: \"*\"", "match: \"gpt-*\"")
    ))
    .await;
    let mut body = chat("gpt-4o", "hi");
    body["retry_params"] = serde_json::json!({"retry_after": 0.01});
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 200);
    let r = post_chat(&sidecar, &chat("exact-model", "hi")).await;
    assert_eq!(r.status(), 200);
    let r = post_chat(&sidecar, &chat("unrouted", "hi")).await;
    assert_eq!(r.status(), 404);

    let requests = |model: &'static str, provider: &'static str, status: &'static str| {
        [
            ("endpoint", "chat.completions"),
            ("model", model),
            ("provider", provider),
            ("status", status),
        ]
    };
    sidecar.idle().await;
    // Glob routes are labelled by their pattern, exact ones by name, the rest `other`.
    assert_eq!(
        sidecar
            .metric("respan_requests_total", &requests("gpt-*", "mock", "200"))
            .await,
        1.0
    );
    assert_eq!(
        sidecar
            .metric(
                "respan_requests_total",
                &requests("exact-model", "mock", "200")
            )
            .await,
        1.0
    );
    assert_eq!(
        sidecar
            .metric("respan_requests_total", &requests("other", "none", "404"))
            .await,
        1.0
    );
    let attempts = |outcome: &'static str| {
        [
            ("provider", "mock"),
            ("model", "gpt-*"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(
        sidecar
            .metric("respan_upstream_attempts_total", &attempts("http_5xx"))
            .await,
        1.0
    );
    assert_eq!(
        sidecar
            .metric("respan_upstream_attempts_total", &attempts("ok"))
            .await,
        1.0
    );
    assert_eq!(
        sidecar
            .metric(
                "respan_retries_total",
                &[("provider", "mock"), ("model", "gpt-*")]
            )
            .await,
        1.0
    );
    let scrape = sidecar.metrics().await;
    let histogram = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "respan_request_duration_seconds" && s.labels.get("model") == Some("gpt-*")
        })
        .expect("duration histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 1.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }
}
