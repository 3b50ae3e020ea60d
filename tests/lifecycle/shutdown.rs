//! Graceful shutdown with real signals: readiness drops at once, what is in flight finishes
//! (or, past the grace period, ends in-band), traces are flushed, and the process exits 0 as
//! soon as it can.

use crate::support::{client, Mock, RawConn, Reply, Sidecar};
use crate::{status_of, stream};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The mock as the one provider, and a jsonl exporter to `jsonl`.
fn with_traces(mock: &Mock, jsonl: &std::path::Path) -> String {
    format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-a\n\
         telemetry:\n  exporters:\n    - type: jsonl\n      path: \"{}\"\n",
        mock.url("/v1"),
        jsonl.display()
    )
}

/// A mock that streams `n` pieces `gap` apart; the pieces.
async fn slow_stream(n: usize, gap: Duration) -> (Mock, Vec<String>) {
    let mock = Mock::start().await;
    let pieces: Vec<String> = (0..n).map(|i| format!("p{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    mock.push(Reply::openai_stream("gpt-4o", &refs, gap));
    (mock, pieces)
}

async fn readyz(sidecar: &Sidecar) -> u16 {
    let answer = client().get(sidecar.admin_url("/readyz")).send().await;
    answer.unwrap().status().as_u16()
}

fn traces(jsonl: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(jsonl).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn sigterm_when_idle_exits_0_within_100_ms_with_its_traces_flushed() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("traces.jsonl");
    let mut sidecar = Sidecar::start(&with_traces(&mock, &jsonl)).await;
    assert_eq!(status_of(&sidecar, "gpt-4o").await, 200);
    sidecar.idle().await;
    // The trace is still waiting for its batch to fill: the shutdown flushes it at once.
    sidecar.signal("TERM");
    let exit = sidecar.exited_within(Duration::from_millis(250)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    assert_eq!(traces(&jsonl).len(), 1);
    // Idle: nothing to flush, so nothing to wait for.
    let mut idle = Sidecar::start(&with_traces(&mock, &dir.path().join("idle.jsonl"))).await;
    let signalled = Instant::now();
    idle.signal("TERM");
    let exit = idle.exited_within(Duration::from_millis(100)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?} {}", idle.log());
    eprintln!("idle exit after SIGTERM: {:?}", signalled.elapsed());
}

#[tokio::test]
async fn sigterm_during_a_slow_stream_lets_it_finish_then_exits_0() {
    let (mock, pieces) = slow_stream(6, Duration::from_millis(150)).await;
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("traces.jsonl");
    let mut sidecar = Sidecar::start(&with_traces(&mock, &jsonl)).await;
    let mut response = crate::support::post_chat(&sidecar, &stream("gpt-4o")).await;
    let mut text = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    sidecar.signal("TERM");
    let start = Instant::now();
    while readyz(&sidecar).await != 503 {
        assert!(start.elapsed() < Duration::from_millis(100), "still ready");
    }
    // No new connection is taken while the stream drains.
    let refused = Instant::now();
    while tokio::net::TcpStream::connect(sidecar.addr).await.is_ok() {
        assert!(
            refused.elapsed() < Duration::from_millis(200),
            "still accepting"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    for piece in &pieces {
        assert!(text.contains(piece.as_str()), "{piece} missing: {text}");
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let exit = sidecar.exited_within(Duration::from_secs(1)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    let traces = traces(&jsonl);
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0]["body_end"], "complete");
}

#[tokio::test]
async fn a_stream_past_the_grace_period_ends_with_an_in_band_error() {
    let (mock, _) = slow_stream(40, Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("traces.jsonl");
    let config = with_traces(&mock, &jsonl);
    let mut sidecar = Sidecar::start_with_server("shutdown_grace_ms: 300", &config).await;
    let mut response = crate::support::post_chat(&sidecar, &stream("gpt-4o")).await;
    let mut text = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    // Taken before the signal: the sidecar's grace timer starts when the
    // signal arrives, which `signal` may already have seen happen.
    let signalled = Instant::now();
    sidecar.signal("TERM");
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let cut = signalled.elapsed();
    assert!(
        cut >= Duration::from_millis(300) && cut < Duration::from_secs(1),
        "{cut:?}"
    );
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let event: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["error"]["code"], "shutting_down", "{text}");
    assert!(!text.contains("[DONE]"));
    let exit = sidecar.exited_within(Duration::from_secs(2)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    let traces = traces(&jsonl);
    assert_eq!(traces[0]["body_end"], "shutdown");
}

#[tokio::test]
async fn a_kept_alive_client_gets_connection_close_on_its_last_answer() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n",
        mock.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let mut conn = RawConn::connect(sidecar.addr).await;
    let body = serde_json::to_vec(&crate::support::chat("gpt-4o", "hi")).unwrap();
    let first = conn.post("/v1/chat/completions", &body).await;
    assert_eq!(first.header("connection"), Some("keep-alive"));
    // The next answer is on its way when the signal comes.
    mock.push(Reply::Delay(
        Duration::from_millis(300),
        Box::new(Reply::openai_chat("gpt-4o", "late")),
    ));
    let body = body.clone();
    let last = tokio::spawn(async move { conn.post("/v1/chat/completions", &body).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    sidecar.signal("TERM");
    let last = last.await.unwrap();
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection"), Some("close"));
}
