//! Faults of an upstream that a mock web framework cannot make: a scriptable raw TCP
//! upstream that resets before its head, breaks off mid-body, answers garbage, the wrong
//! content type, slowly, or hugely. Each app gets a complete answer or a clean error in its
//! own format, within its timeout, and the upstream is asked exactly as often as retries
//! allow (counted at the upstream).

use crate::support::{client, Sidecar};
use crate::{body, post, provider};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the upstream does with each request.
#[derive(Clone)]
enum Fault {
    /// Closes the connection as soon as the request is read.
    ResetBeforeHead,
    /// Sends half a head, then closes.
    HalfHead,
    /// Sends a head promising more body than it sends, then closes.
    ShortBody,
    /// Sends these bytes as a 200 answer of this content type.
    Answer(&'static str, Vec<u8>),
    /// Waits, then answers.
    Slow(Duration, Box<Fault>),
}

/// A raw upstream: every connection gets `fault`; `calls` counts the requests it read.
struct RawUpstream {
    port: u16,
    calls: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(fault: Fault) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (fault, counted) = (fault.clone(), counted.clone());
                tokio::spawn(async move { serve(conn, fault, counted).await });
            }
        });
        RawUpstream { port, calls }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and `Content-Length` body), then does what `fault` says.
async fn serve(mut conn: TcpStream, fault: Fault, calls: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            break;
        }
    }
    calls.fetch_add(1, Ordering::SeqCst);
    act(&mut conn, fault).await;
}

async fn act(conn: &mut TcpStream, fault: Fault) {
    match fault {
        Fault::ResetBeforeHead => {}
        Fault::HalfHead => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-ty").await;
        }
        Fault::ShortBody => {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(br#"{"id":"chatcmpl-x","choices":[{"#).await;
        }
        Fault::Answer(content_type, bytes) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(&bytes).await;
        }
        Fault::Slow(wait, then) => {
            tokio::time::sleep(wait).await;
            Box::pin(act(conn, *then)).await;
        }
    }
    let _ = conn.shutdown().await;
}

/// A sidecar with one provider of `kind` on the raw upstream.
async fn sidecar(kind: &str, upstream: &RawUpstream, server: &str) -> Sidecar {
    let base = if kind == "openai" {
        upstream.url("/v1")
    } else {
        upstream.url("")
    };
    let config = format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: p\n",
        provider("p", kind, &base)
    );
    Sidecar::start_with_server(server, &config).await
}

/// The app's error, in OpenAI's shape, with a message.
fn openai_error(text: &str) -> Value {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    v
}

fn retries(n: u32) -> Value {
    json!({"retry_params": {"retry_enabled": true, "num_retries": n, "retry_after": 0.01}})
}

#[tokio::test]
async fn resets_and_broken_heads_are_retried_then_a_clean_502() {
    for fault in [Fault::ResetBeforeHead, Fault::HalfHead] {
        let upstream = RawUpstream::start(fault).await;
        let sidecar = sidecar("openai", &upstream, "").await;
        let started = Instant::now();
        let (status, _, text) = post(&sidecar, &body("m", retries(2))).await;
        assert_eq!(status, 502, "{text}");
        openai_error(&text);
        // The first try and two retries (a stale pooled connection is not a try: none here).
        assert_eq!(upstream.calls(), 3);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn an_answer_cut_mid_body_is_never_passed_off_as_complete() {
    let upstream = RawUpstream::start(Fault::ShortBody).await;
    let sidecar = sidecar("anthropic", &upstream, "").await;
    let (status, _, text) = post(&sidecar, &body("claude-x", retries(0))).await;
    assert!(status >= 500, "{status}: {text}");
    openai_error(&text);
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn garbage_and_the_wrong_content_type_are_clean_errors_in_the_apps_format() {
    let cases = [
        ("application/json", b"{not json".to_vec()),
        ("text/html", b"<html>maintenance</html>".to_vec()),
        (
            "text/event-stream",
            b"data: {broken\n\nevent: ???\n\n".to_vec(),
        ),
    ];
    for (content_type, bytes) in cases {
        let upstream = RawUpstream::start(Fault::Answer(content_type, bytes)).await;
        let sidecar = sidecar("anthropic", &upstream, "").await;
        // OpenAI's shape for an OpenAI app, translated from a broken Anthropic answer.
        let (status, _, text) = post(&sidecar, &body("claude-x", retries(0))).await;
        assert!(status >= 500, "{content_type}: {status} {text}");
        openai_error(&text);
        // Anthropic's shape for an Anthropic app on the same provider, streamed.
        let r = client()
            .post(sidecar.url("/api/anthropic/v1/messages"))
            .json(
                &json!({"model": "claude-x", "max_tokens": 10, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        if status == 200 {
            // Relayed as it came (the app's own format): never given an end it did not have.
            assert!(!text.contains("message_stop"), "{text}");
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["type"], "error", "{v}");
        }
        assert_eq!(upstream.calls(), 2, "{content_type}");
    }
}

#[tokio::test]
async fn a_slow_head_times_out_as_a_504_within_the_timeout() {
    let slow = Fault::Slow(Duration::from_secs(5), Box::new(Fault::ResetBeforeHead));
    let upstream = RawUpstream::start(slow).await;
    let sidecar = sidecar("openai", &upstream, "upstream_timeout_ms: 300").await;
    let started = Instant::now();
    let (status, _, text) = post(&sidecar, &body("m", retries(0))).await;
    assert_eq!(status, 504, "{text}");
    openai_error(&text);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_fifty_mebibyte_answer_arrives_whole() {
    let content = "x".repeat(50 * 1024 * 1024);
    let answer = json!({"id": "chatcmpl-big", "object": "chat.completion", "created": 1,
        "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
        "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
    let bytes = serde_json::to_vec(&answer).unwrap();
    let upstream = RawUpstream::start(Fault::Answer("application/json", bytes.clone())).await;
    let sidecar = sidecar("openai", &upstream, "").await;
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .json(&body("m", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), bytes.len());
    assert!(got == bytes);
    assert_eq!(upstream.calls(), 1);
}
