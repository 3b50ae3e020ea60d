//! A fast mock upstream for the benchmark: fixed answers, no work per request beyond reading
//! the body. `mock_upstream PORT [GAP_MS]`: OpenAI chat completions on any path, Anthropic
//! Messages on `.../v1/messages`; as JSON, or, when the request asks for `"stream":true`, as
//! SSE events (22 for OpenAI, 24 for Anthropic) back to back, or GAP_MS apart to pace tokens
//! like a real model. An OpenAI stream asked for usage (`"include_usage":true`, as the
//! sidecar asks an OpenAI provider) comes as OpenAI sends it: `"usage":null` on every chunk, and one
//! more chunk with the counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "streams.rs"]
mod streams;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::serve::ListenerExt;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

struct Answers {
    json: Bytes,
    events: Vec<Bytes>,
    events_with_usage: Vec<Bytes>,
    anthropic_json: Bytes,
    anthropic_events: Vec<Bytes>,
    gap: Duration,
}

fn answers(gap: Duration) -> Answers {
    Answers {
        json: Bytes::from_static(streams::OPENAI_JSON),
        events: streams::openai_events(),
        events_with_usage: streams::openai_events_with_usage(),
        anthropic_json: Bytes::from_static(streams::ANTHROPIC_JSON),
        anthropic_events: streams::anthropic_events(),
        gap,
    }
}

async fn handle(State(answers): State<Arc<Answers>>, request: Request) -> Response {
    let anthropic = request.uri().path().ends_with("/v1/messages");
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let stream = has(&body, b"\"stream\":true");
    let usage = has(&body, b"\"include_usage\":true");
    if !stream {
        let json = if anthropic {
            &answers.anthropic_json
        } else {
            &answers.json
        };
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(json.clone()))
            .unwrap();
    }
    let events = futures::stream::unfold(0usize, move |i| {
        let answers = answers.clone();
        async move {
            let events = if anthropic {
                &answers.anthropic_events
            } else if usage {
                &answers.events_with_usage
            } else {
                &answers.events
            };
            let event = events.get(i)?.clone();
            if i > 0 && !answers.gap.is_zero() {
                tokio::time::sleep(answers.gap).await;
            }
            Some((Ok::<_, std::convert::Infallible>(event), i + 1))
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap()
}

fn has(body: &[u8], text: &[u8]) -> bool {
    body.windows(text.len()).any(|w| w == text)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(18080);
    let gap = Duration::from_millis(args.next().and_then(|g| g.parse().ok()).unwrap_or(0));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::new(answers(gap)));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        println!("mock upstream on 127.0.0.1:{port}");
        // Small SSE writes must leave at once, as a real provider's do.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.unwrap();
    });
}
