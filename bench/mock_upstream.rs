//! A fast mock upstream for the benchmark: fixed answers, no work per request beyond reading
//! the body. `mock_upstream PORT [GAP_MS]`: OpenAI chat completions on any path, Anthropic
//! Messages on `.../v1/messages`; as JSON, or, when the request asks for `"stream":true`, as
//! SSE events (22 for OpenAI, 24 for Anthropic) back to back, or GAP_MS apart to pace tokens
//! like a real model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

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
    anthropic_json: Bytes,
    anthropic_events: Vec<Bytes>,
    gap: Duration,
}

fn answers(gap: Duration) -> Answers {
    let json = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;
    let mut events = vec![Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    )];
    for i in 0..19 {
        events.push(Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        )));
    }
    events.push(Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    ));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let anthropic_json = br#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[{"type":"text","text":"The quick brown fox jumps over the lazy dog."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":10}}"#;
    let event = |name: &str, data: String| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut anthropic_events = vec![
        event("message_start", r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#.into()),
        event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.into()),
    ];
    for i in 0..19 {
        anthropic_events.push(event("content_block_delta", format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"tok{i} "}}}}"#
        )));
    }
    anthropic_events.push(event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#.into(),
    ));
    anthropic_events.push(event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":19}}"#.into()));
    anthropic_events.push(event("message_stop", r#"{"type":"message_stop"}"#.into()));
    Answers {
        json: Bytes::from_static(json),
        events,
        anthropic_json: Bytes::from_static(anthropic_json),
        anthropic_events,
        gap,
    }
}

async fn handle(State(answers): State<Arc<Answers>>, request: Request) -> Response {
    let anthropic = request.uri().path().ends_with("/v1/messages");
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let stream = memchr_stream(&body);
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

fn memchr_stream(body: &[u8]) -> bool {
    body.windows(13).any(|w| w == b"\"stream\":true")
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
