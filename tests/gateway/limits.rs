//! What one client may make the sidecar hold: head size, requests in flight, passthrough
//! bodies, and sockets that never finish their head.
#![allow(clippy::disallowed_methods)] // tokio::spawn holds the slow streams open in tests.

use crate::openai_config;
use crate::support::{chat, client, post_chat, Mock, RawConn, Reply, Sidecar};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_head_over_max_header_bytes_is_431_in_the_callers_format() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start_with_server("max_header_bytes: 2048", &openai_config(&mock)).await;
    let big = "x".repeat(4096);
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header("x-padding", &big)
        .json(&chat("gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_header_fields_too_large");
    let r = client()
        .post(sidecar.url("/api/anthropic/v1/messages"))
        .header("x-padding", &big)
        .json(&json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    // Under the limit: served.
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header("x-padding", "x".repeat(1000))
        .json(&chat("gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(mock.count(), 1);
    assert_eq!(rejected(&sidecar, "headers_too_large").await, 2.0);
    // The bound is on the head's bytes as sent: 2,048 pass, 2,049 do not.
    let body = serde_json::to_vec(&chat("gpt-4o", "hi")).unwrap();
    for (size, status) in [(2048, 200), (2049, 431)] {
        let head = |pad: usize| {
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: s\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-padding: {}\r\n\r\n",
                body.len(),
                "x".repeat(pad)
            )
        };
        let head = head(size - head(0).len());
        assert_eq!(head.len(), size);
        let mut conn = RawConn::connect(sidecar.addr).await;
        conn.send(&[head.as_bytes(), &body].concat()).await;
        assert_eq!(conn.read_response().await.status, status, "{size}");
    }
}

#[tokio::test]
async fn past_max_concurrent_requests_the_answer_is_503_with_retry_after() {
    let mock = Mock::start().await;
    let sidecar =
        Sidecar::start_with_server("max_concurrent_requests: 2", &openai_config(&mock)).await;
    for _ in 0..2 {
        mock.push(Reply::openai_stream(
            "gpt-4o",
            &["a", "b", "c"],
            Duration::from_millis(300),
        ));
    }
    let streams: Vec<_> = (0..2)
        .map(|_| {
            let body = json!({"model": "gpt-4o", "stream": true,
                "messages": [{"role": "user", "content": "slow"}]});
            let url = sidecar.url("/v1/chat/completions");
            tokio::spawn(async move {
                client()
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
            })
        })
        .collect();
    // Both streams are in flight.
    let started = Instant::now();
    while sidecar.metric("respan_inflight_requests", &[]).await < 2.0 {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = post_chat(&sidecar, &chat("gpt-4o", "one more")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded");
    for stream in streams {
        assert!(stream.await.unwrap().unwrap().contains("[DONE]"));
    }
    assert_eq!(
        post_chat(&sidecar, &chat("gpt-4o", "now")).await.status(),
        200
    );
    assert_eq!(rejected(&sidecar, "overloaded").await, 1.0);
    assert_eq!(mock.count(), 3);
}

#[tokio::test]
async fn passthrough_bodies_are_bounded_too() {
    let mock = Mock::start().await;
    let sidecar =
        Sidecar::start_with_server("max_request_body_bytes: 1000", &openai_config(&mock)).await;
    let big = vec![b'x'; 5000];
    // Declared: refused before anything is sent upstream.
    let r = client()
        .post(sidecar.url("/v1/files"))
        .header("content-type", "application/octet-stream")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");
    assert_eq!(mock.count(), 0);
    // Chunked: stopped as soon as it is over.
    let head = "POST /v1/files HTTP/1.1\r\nhost: s";
    let request = crate::support::chunked_request(head, &big, 500);
    let mut conn = RawConn::connect(sidecar.addr).await;
    conn.send(&request).await;
    assert_eq!(conn.read_response().await.status, 413);
    assert_eq!(rejected(&sidecar, "body_too_large").await, 2.0);
}

#[tokio::test]
async fn two_hundred_stalled_sockets_do_not_stop_normal_requests() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut conn = RawConn::connect(sidecar.addr).await;
        // A head that never ends (slowloris).
        conn.send(b"POST /v1/chat/completions HTTP/1.1\r\nhost: s\r\nx-slow: ")
            .await;
        stalled.push(conn);
    }
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(
            post_chat(&sidecar, &chat("gpt-4o", "hi")).await.status(),
            200
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(mock.count(), 20);
    drop(stalled);
}

#[tokio::test]
async fn a_head_slower_than_client_header_timeout_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = Mock::start().await;
    let sidecar =
        Sidecar::start_with_server("client_header_timeout_ms: 300", &openai_config(&mock)).await;
    let mut slow = tokio::net::TcpStream::connect(sidecar.addr).await.unwrap();
    let started = Instant::now();
    // A byte every 50 ms: each read is quick, the head as a whole never ends.
    let closed = loop {
        if slow.write_all(b"x").await.is_err() {
            break started.elapsed();
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(50), slow.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never closed");
    };
    assert!(closed >= Duration::from_millis(250), "{closed:?}");
    assert!(closed < Duration::from_millis(1500), "{closed:?}");
    // A client that sends its head at once is served, on a kept-alive connection too.
    let mut conn = RawConn::connect(sidecar.addr).await;
    let body = serde_json::to_vec(&chat("gpt-4o", "hi")).unwrap();
    assert_eq!(conn.post("/v1/chat/completions", &body).await.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(conn.post("/v1/chat/completions", &body).await.status, 200);
}

/// `respan_rejected_requests_total` for one reason.
async fn rejected(sidecar: &Sidecar, reason: &str) -> f64 {
    let labels = [("reason", reason)];
    sidecar
        .metric("respan_rejected_requests_total", &labels)
        .await
}
