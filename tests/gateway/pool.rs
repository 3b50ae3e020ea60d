//! Pooled provider connections that the provider closed: found before use, or retried on a
//! fresh connection when the close races the request. Neither reaches the app.

#![allow(clippy::disallowed_methods)] // tokio::spawn runs the raw provider.

use crate::support::{chat, post_chat, Sidecar};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the raw provider treats a connection after its first answer.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Closes it at once, as a provider whose idle timeout is shorter than the sidecar's.
    Close,
    /// Keeps it, and closes it unanswered when the next request arrives on it.
    DropNextRequest,
}

/// An OpenAI-compatible provider over raw TCP, one answer per connection; counts the
/// connections it accepted and the requests it answered.
struct RawProvider {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl RawProvider {
    async fn start(after: AfterAnswer) -> RawProvider {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let (acc, ans) = (accepted.clone(), answered.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                acc.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(tcp, after, ans.clone()));
            }
        });
        RawProvider {
            addr,
            accepted,
            answered,
        }
    }

    fn config(&self) -> String {
        format!(
            "providers:\n  raw:\n    type: openai\n    base_url: \"http://{}/v1\"\n    api_key: sk-test\n",
            self.addr
        )
    }
}

async fn serve(mut tcp: TcpStream, after: AfterAnswer, answered: Arc<AtomicUsize>) {
    if !read_request(&mut tcp).await {
        return;
    }
    let body = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if tcp.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    answered.fetch_add(1, Ordering::SeqCst);
    if let AfterAnswer::DropNextRequest = after {
        let mut byte = [0u8; 1];
        let _ = tcp.read(&mut byte).await;
    }
    // Dropping the socket closes it.
}

/// Reads one request (header, then a body of its `content-length`); false at end of stream.
async fn read_request(tcp: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                return true;
            }
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Three chat calls through a sidecar in front of `provider`, `pause` apart. Each must succeed
/// on its first attempt: a stale connection is not the provider failing. Each must have come
/// on its own provider connection, as the provider closes every one after one answer.
async fn three_calls_on_three_connections(after: AfterAnswer, pause: Duration) {
    let provider = RawProvider::start(after).await;
    let sidecar = Sidecar::start(&provider.config()).await;
    for i in 0..3 {
        let r = post_chat(&sidecar, &chat("gpt-4o", "hi")).await;
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["x-respan-attempts"], "1", "request {i}");
        tokio::time::sleep(pause).await;
    }
    assert_eq!(provider.answered.load(Ordering::SeqCst), 3);
    assert_eq!(provider.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_not_reused() {
    // The pause gives the close time to arrive before the next request.
    three_calls_on_three_connections(AfterAnswer::Close, Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_connection_closed_as_the_request_arrives_is_retried_on_a_fresh_one() {
    // Requests 2 and 3 each first meet the previous, stale connection.
    three_calls_on_three_connections(AfterAnswer::DropNextRequest, Duration::ZERO).await;
}
