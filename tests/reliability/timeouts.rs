//! Connect and attempt timeouts, and a client that goes away.

use crate::support::{client, Mock, Reply, Sidecar};
use crate::{body, post, provider};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_slow_attempt_times_out_and_is_retried() {
    let mock = Mock::start().await;
    mock.push(Reply::Delay(
        Duration::from_secs(3),
        Box::new(Reply::openai_chat("m", "late")),
    ));
    let config = format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &mock.url("/v1"))
    );
    let sidecar = Sidecar::start_with_server("upstream_timeout_ms: 400", &config).await;
    let started = Instant::now();
    let (status, headers, _) = post(
        &sidecar,
        &body(
            "gpt-4o",
            json!({"retry_params": {"num_retries": 1, "retry_after": 0.01}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-respan-attempts"], "2");
    assert!(started.elapsed() < Duration::from_secs(2));
    let labels = [("provider", "oa"), ("outcome", "timeout")];
    assert_eq!(
        sidecar
            .metric("respan_upstream_attempts_total", &labels)
            .await,
        1.0
    );
}

/// A TLS upstream that accepts connections and never answers: the handshake cannot finish.
#[tokio::test]
async fn connect_timeout_covers_the_tls_handshake() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let config = format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: tls\n",
        provider("tls", "openai", &format!("https://localhost:{port}/v1"))
    );
    let sidecar = Sidecar::start_with_server("connect_timeout_ms: 300", &config).await;
    let started = Instant::now();
    let (status, _, text) = post(
        &sidecar,
        &body("gpt-4o", json!({"retry_params": {"retry_enabled": false}})),
    )
    .await;
    assert_eq!(status, 504, "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
    hold.abort();
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_call() {
    let mock = Mock::start().await;
    mock.push(Reply::Delay(
        Duration::from_secs(5),
        Box::new(Reply::openai_chat("m", "late")),
    ));
    mock.push(Reply::openai_stream(
        "m",
        &["a", "b", "c", "d", "e"],
        Duration::from_millis(400),
    ));
    let config = format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &mock.url("/v1"))
    );
    let sidecar = Sidecar::start(&config).await;
    // Waiting for the answer: the app leaves once the call reached the provider.
    let waiting = tokio::spawn(
        client()
            .post(sidecar.url("/v1/chat/completions"))
            .json(&body("gpt-4o", json!({})))
            .send(),
    );
    wait_for("the call to reach the provider", || mock.count() == 1).await;
    waiting.abort();
    wait_for("the upstream call to be cancelled", || {
        mock.cancelled() == 1
    })
    .await;
    // In the middle of a stream.
    let mut stream = client()
        .post(sidecar.url("/v1/chat/completions"))
        .json(&body("gpt-4o", json!({"stream": true})))
        .send()
        .await
        .unwrap();
    assert!(stream.chunk().await.unwrap().is_some());
    drop(stream);
    wait_for("the upstream stream to be cancelled", || {
        mock.cancelled() == 2
    })
    .await;
    sidecar.idle().await;
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !condition() {
        assert!(Instant::now() < deadline, "waited 2 s for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
