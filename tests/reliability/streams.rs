//! Streams: fallback while only the preamble was read, in-band errors after content, idle
//! timeouts.

use crate::support::mock::Flavor;
use crate::support::{content_of, Mock, Reply, Sidecar};
use crate::{body, post, provider};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_stream_that_breaks_before_content_falls_back() {
    let first = Mock::start().await;
    let second = Mock::start_as(Flavor::Anthropic).await;
    let Reply::Sse { blocks, .. } = Reply::openai_stream("gpt-4o", &["never seen"], Duration::ZERO)
    else {
        unreachable!()
    };
    // Only the role chunk, then the connection breaks.
    first.push(Reply::Sse {
        blocks,
        gap: Duration::from_millis(20),
        cut_after: Some(1),
    });
    let config = format!(
        "providers:\n{}{}routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &first.url("/v1")),
        provider("an", "anthropic", &second.url(""))
    );
    let sidecar = Sidecar::start(&config).await;
    let request = body(
        "gpt-4o",
        json!({"stream": true, "fallback_models": ["claude-haiku-4-5"], "retry_params": {"retry_enabled": false}}),
    );
    let (status, headers, text) = post(&sidecar, &request).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-respan-provider"], "an");
    assert_eq!(content_of(&text), "mock answer");
    assert!(
        !text.contains("error") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("\"role\":\"assistant\"").count(),
        1,
        "one preamble reached the app: {text}"
    );
}

#[tokio::test]
async fn an_overloaded_event_before_content_is_retried() {
    let mock = Mock::start_as(Flavor::Anthropic).await;
    let start = r#"event: message_start
data: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"stop_reason":null,"usage":{"input_tokens":3,"output_tokens":1}}}"#;
    let overloaded = r#"event: error
data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    mock.push(Reply::Sse {
        blocks: vec![start.into(), overloaded.into()],
        gap: Duration::ZERO,
        cut_after: None,
    });
    let config = format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: an\n",
        provider("an", "anthropic", &mock.url(""))
    );
    let sidecar = Sidecar::start(&config).await;
    let request = body(
        "claude-x",
        json!({"stream": true, "retry_params": {"num_retries": 1, "retry_after": 0.01}}),
    );
    let (status, headers, text) = post(&sidecar, &request).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["x-respan-attempts"], "2");
    assert_eq!(content_of(&text), "mock answer");
}

#[tokio::test]
async fn idle_streams_time_out_with_an_in_band_error_after_content() {
    let mock = Mock::start().await;
    let Reply::Sse { blocks, .. } =
        Reply::openai_stream("gpt-4o", &["first ", "late"], Duration::ZERO)
    else {
        unreachable!()
    };
    // The role chunk and the first content together, then a silence of 1.5 s.
    let mut paced = vec![format!("{}\n\n{}", blocks[0], blocks[1])];
    paced.extend(blocks[2..].iter().cloned());
    mock.push(Reply::Sse {
        blocks: paced,
        gap: Duration::from_millis(1500),
        cut_after: None,
    });
    let config = format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &mock.url("/v1"))
    );
    let sidecar = Sidecar::start_with_server("stream_idle_timeout_ms: 300", &config).await;
    let started = Instant::now();
    let (status, _, text) = post(
        &sidecar,
        &body(
            "gpt-4o",
            json!({"stream": true, "retry_params": {"retry_enabled": false}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the idle timeout did not fire"
    );
    assert_eq!(content_of(&text), "first ");
    let last: Value = serde_json::from_str(
        text.trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap()
            .strip_prefix("data: ")
            .unwrap(),
    )
    .unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn an_idle_stream_before_any_content_is_a_504() {
    let mock = Mock::start().await;
    mock.push(Reply::openai_stream(
        "gpt-4o",
        &["late"],
        Duration::from_millis(1500),
    ));
    let config = format!(
        "providers:\n{}routes:\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &mock.url("/v1"))
    );
    let sidecar = Sidecar::start_with_server("stream_idle_timeout_ms: 300", &config).await;
    let (status, _, text) = post(
        &sidecar,
        &body(
            "gpt-4o",
            json!({"stream": true, "retry_params": {"retry_enabled": false}}),
        ),
    )
    .await;
    assert_eq!(status, 504, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "upstream_error");
}

#[tokio::test]
async fn an_idle_stream_before_content_falls_back() {
    let slow = Mock::start().await;
    let Reply::Sse { blocks, .. } = Reply::openai_stream("gpt-4o", &["too late"], Duration::ZERO)
    else {
        unreachable!()
    };
    slow.push(Reply::Sse {
        blocks,
        gap: Duration::from_secs(2),
        cut_after: None,
    });
    let fast = Mock::start().await;
    let config = format!(
        "providers:\n{}{}routes:\n  - match: backup\n    provider: fast\n  - match: \"*\"\n    provider: slow\n",
        provider("slow", "openai", &slow.url("/v1")),
        provider("fast", "openai", &fast.url("/v1"))
    );
    let sidecar = Sidecar::start_with_server("stream_idle_timeout_ms: 300", &config).await;
    let request = body(
        "gpt-4o",
        json!({"stream": true, "fallback_models": ["backup"], "retry_params": {"retry_enabled": false}}),
    );
    let started = Instant::now();
    let (status, headers, text) = post(&sidecar, &request).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(headers["x-respan-provider"], "fast");
    assert_eq!(content_of(&text), "mock answer");
}

#[tokio::test]
async fn a_responses_stream_that_breaks_before_content_falls_back_with_one_preamble() {
    let first = Mock::start_as(Flavor::Anthropic).await;
    let second = Mock::start_as(Flavor::Gemini).await;
    let Reply::Sse { blocks, .. } = Reply::anthropic_stream("claude-x", &["never seen"]) else {
        unreachable!()
    };
    // `message_start` and the block's start, then the connection breaks.
    first.push(Reply::Sse {
        blocks,
        gap: Duration::from_millis(20),
        cut_after: Some(2),
    });
    let config = format!(
        "providers:\n{}{}routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"gemini-*\"\n    provider: ge\n",
        provider("an", "anthropic", &first.url("")),
        provider("ge", "gemini", &second.url(""))
    );
    let sidecar = Sidecar::start(&config).await;
    let request = json!({"model": "claude-x", "input": "hi", "stream": true,
        "fallback_models": ["gemini-2.5-flash"], "retry_params": {"retry_enabled": false}});
    let r = crate::support::post_json(&sidecar, "/v1/responses", &request).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-respan-provider"], "ge");
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("event: response.created").count(), 1, "{text}");
    assert!(
        !text.contains("never seen") && !text.contains("event: error"),
        "{text}"
    );
    let completed = text
        .split("\n\n")
        .find(|e| e.starts_with("event: response.completed"))
        .unwrap();
    assert!(completed.contains("mock answer"), "{completed}");
}
