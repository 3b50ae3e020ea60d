//! Chat completions and embeddings forwarded to an OpenAI-compatible provider.

use crate::openai_config;
use crate::support::{chat, client, post_chat, Mock, RawConn, Reply, Sidecar};
use base64::Engine;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn forwards_with_the_provider_key_and_without_respan_parameters() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let header = base64::engine::general_purpose::STANDARD
        .encode(r#"{"thread_identifier":"t-1","disable_log":true}"#);
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.3,
        "customer_identifier": "user-1",
        "metadata": {"k": "v"},
        "fallback_models": [],
        "respan_params": {"custom_identifier": "c"},
        "keywordsai_params": {"retry_params": {"num_retries": 1}},
    });
    let response = client()
        .post(sidecar.url("/v1/chat/completions"))
        .bearer_auth("app-key")
        .header("x-data-respan-params", header)
        .header("anthropic-version", "2023-06-01")
        .header("x-stainless-lang", "python")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["x-respan-model"], "gpt-4o-mini");
    assert_eq!(h["x-respan-provider"], "mock");
    assert_eq!(h["x-respan-attempts"], "1");
    assert_eq!(h["x-respan-request-id"].len(), 32);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "mock answer");

    let got = mock.last();
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(got.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(got.header("accept-encoding"), Some("identity"));
    assert_eq!(got.header("x-stainless-lang"), Some("python"));
    for never in ["x-data-respan-params", "anthropic-version", "x-api-key"] {
        assert_eq!(got.header(never), None, "{never} reached the provider");
    }
    assert_eq!(
        got.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
    assert_eq!(
        got.json(),
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.3})
    );
}

/// The provider's own headers reach the app; those about its connection to the sidecar do
/// not, nor any that pass for the gateway's own.
#[tokio::test]
async fn answer_headers_are_relayed_except_hop_by_hop_ones() {
    let mock = Mock::start().await;
    mock.push(
        Reply::openai_chat("gpt-4o", "hi")
            .with_header("openai-processing-ms", "12")
            .with_header("keep-alive", "timeout=5")
            .with_header("x-request-id", "req-upstream")
            .with_header("x-respan-cache", "hit")
            .with_header("x-respan-attempts", "9"),
    );
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let r = post_chat(&sidecar, &chat("gpt-4o", "hi")).await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["openai-processing-ms"], "12");
    assert_eq!(h["x-request-id"], "req-upstream");
    assert!(h.get("keep-alive").is_none(), "{h:?}");
    assert!(h.get("x-respan-cache").is_none(), "{h:?}");
    assert_eq!(h.get_all("x-respan-attempts").iter().count(), 1);
    assert_eq!(h["x-respan-attempts"], "1");
}

#[tokio::test]
async fn metadata_goes_to_openai_only_for_stored_completions() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut body = chat("gpt-4o", "hi");
    body["metadata"] = json!({"run": "7"});
    body["store"] = json!(true);
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(mock.last().json()["metadata"], json!({"run": "7"}));
}

#[tokio::test]
async fn aliases_and_model_name_maps_rename_the_upstream_model() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  mock:\n    type: openai\n    base_url: \"{}\"\n    api_key: k\n\
         routes:\n  - match: fast\n    provider: mock\n    upstream_model: gpt-4.1-nano\n  - match: \"gpt-*\"\n    provider: mock\n",
        mock.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let r = client()
        .post(sidecar.url("/api/chat/completions"))
        .json(&chat("fast", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-respan-model"], "gpt-4.1-nano");
    assert_eq!(mock.last().json()["model"], "gpt-4.1-nano");

    let mut body = chat("gpt-4o", "hi");
    body["model_name_map"] = json!({"gpt-4o": "my-gpt4o-deployment"});
    let r = client()
        .post(sidecar.url("/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(mock.last().json()["model"], "my-gpt4o-deployment");
    assert!(mock.last().json().get("model_name_map").is_none());
}

/// A stream that has all come by the time the sidecar writes its first piece goes out whole,
/// framed by its length (Pingora then sends head and body in one write, where a chunked head
/// and the chunks' end each take one of their own); a stream still running is chunked. The
/// events are the same either way, and the connection stays usable.
#[tokio::test]
async fn a_stream_that_came_whole_goes_out_with_its_length() {
    let mock = Mock::start().await;
    let Reply::Sse { blocks, .. } = Reply::openai_stream("gpt-4o", &["a ", "b"], Duration::ZERO)
    else {
        unreachable!("openai_stream is an SSE reply")
    };
    // All events in one upstream write.
    mock.push(Reply::Sse {
        blocks: vec![blocks.join("\n\n")],
        gap: Duration::ZERO,
        cut_after: None,
    });
    mock.push(Reply::openai_stream(
        "gpt-4o",
        &["a ", "b"],
        Duration::from_millis(30),
    ));
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut body = chat("gpt-4o", "hi");
    body["stream"] = json!(true);
    let body = serde_json::to_vec(&body).unwrap();
    let mut conn = RawConn::connect(sidecar.addr).await;
    let whole = conn.post("/v1/chat/completions", &body).await;
    assert_eq!(whole.status, 200);
    let length = whole.body.len().to_string();
    assert_eq!(whole.header("content-length"), Some(length.as_str()));
    assert!(whole.header("transfer-encoding").is_none());
    assert_eq!(whole.header("content-type"), Some("text/event-stream"));
    let paced = conn.post("/v1/chat/completions", &body).await;
    assert_eq!(paced.status, 200);
    assert_eq!(paced.header("transfer-encoding"), Some("chunked"));
    assert!(paced.header("content-length").is_none());
    assert_eq!(
        String::from_utf8(whole.body).unwrap(),
        String::from_utf8(paced.body).unwrap()
    );
}

#[tokio::test]
async fn streams_are_relayed_chunk_by_chunk() {
    let mock = Mock::start().await;
    let pieces = ["one ", "two ", "three"];
    mock.push(Reply::openai_stream(
        "gpt-4o",
        &pieces,
        Duration::from_millis(150),
    ));
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut body = chat("gpt-4o", "count");
    body["stream"] = json!(true);
    let started = Instant::now();
    let mut response = post_chat(&sidecar, &body).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        arrivals.push(started.elapsed());
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // Five events 150 ms apart: the first must arrive long before the last was sent.
    let total = *arrivals.last().unwrap();
    assert!(total >= Duration::from_millis(600), "{arrivals:?}");
    assert!(
        arrivals[0] + Duration::from_millis(400) < total,
        "buffered: {arrivals:?}"
    );
    assert!(arrivals.len() >= 4, "{arrivals:?}");
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "one two three");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn many_requests_share_one_client_connection() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut conn = RawConn::connect(sidecar.addr).await;
    for i in 0..40 {
        let body = serde_json::to_vec(&chat("gpt-4o", &format!("n{i}"))).unwrap();
        let r = conn.post("/v1/chat/completions", &body).await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.json()["model"], "gpt-4o");
    }
    assert_eq!(mock.count(), 40);
    assert_eq!(
        upstream_connections(&mock),
        1,
        "one pooled upstream connection"
    );
}

/// How many connections the mock's requests came on.
fn upstream_connections(mock: &Mock) -> usize {
    let peers: std::collections::HashSet<_> =
        mock.received().iter().map(|r| r.peer.unwrap()).collect();
    peers.len()
}

/// A connection goes back to the pool once its answer was read to the end, streamed or not.
#[tokio::test]
async fn upstream_connections_are_reused_after_answers_and_streams() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    for i in 0..6 {
        let mut body = chat("gpt-4o", &format!("n{i}"));
        body["stream"] = json!(i % 2 == 1);
        let r = post_chat(&sidecar, &body).await;
        assert_eq!(r.status(), 200, "request {i}");
        let text = r.text().await.unwrap();
        assert!(text.contains("gpt-4o"), "request {i}: {text}");
    }
    assert_eq!(mock.count(), 6);
    assert_eq!(upstream_connections(&mock), 1);
}

/// Far above Pingora's 64 KiB body replay buffer, several times on one connection.
#[tokio::test]
async fn five_mebibyte_bodies_arrive_whole() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let big: String = (0..5 * 1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let body = serde_json::to_vec(&json!({
        "model": "gpt-4o", "customer_identifier": "x",
        "messages": [{"role": "user", "content": big}]
    }))
    .unwrap();
    let mut conn = RawConn::connect(sidecar.addr).await;
    for _ in 0..3 {
        let r = conn.post("/v1/chat/completions", &body).await;
        assert_eq!(r.status, 200);
        let got = mock.last().json();
        assert_eq!(
            got["messages"][0]["content"].as_str().unwrap().len(),
            big.len()
        );
        assert_eq!(got["messages"][0]["content"].as_str().unwrap(), big);
        assert!(got.get("customer_identifier").is_none());
    }
    // Bodies larger than a socket takes in one write still leave the connection reusable.
    assert_eq!(upstream_connections(&mock), 1);
}

#[tokio::test]
async fn expect_continue_is_answered_at_once() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let body = serde_json::to_vec(&chat("gpt-4o", "hi")).unwrap();
    let mut conn = RawConn::connect(sidecar.addr).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: s\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    conn.send(head.as_bytes()).await;
    let interim = conn.read_response().await;
    assert_eq!(interim.status, 100);
    assert!(started.elapsed() < Duration::from_millis(500));
    conn.send(&body).await;
    let r = conn.read_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(mock.last().header("expect"), None);
    // The connection stays usable.
    assert_eq!(conn.post("/v1/chat/completions", &body).await.status, 200);
}

#[tokio::test]
async fn embeddings_are_routed_by_model() {
    let mock = Mock::start().await;
    mock.push(Reply::status(200, json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "text-embedding-3-small"})));
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let r = client()
        .post(sidecar.url("/v1/embeddings"))
        .json(
            &json!({"model": "text-embedding-3-small", "input": "hi", "customer_identifier": "c"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = mock.last();
    assert_eq!(got.path, "/v1/embeddings");
    assert_eq!(
        got.json(),
        json!({"model": "text-embedding-3-small", "input": "hi"})
    );
}

#[tokio::test]
async fn models_lists_what_routes_name() {
    let mock = Mock::start().await;
    let config = format!(
        "{}  - match: fast\n    provider: mock\nload_balance_groups:\n  pool:\n    models:\n      - {{model: pooled-a, weight: 1}}\n",
        openai_config(&mock)
    );
    let sidecar = Sidecar::start(&config).await;
    let list: Value = client()
        .get(sidecar.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "pooled-a"]);
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn the_echo_provider_answers_offline() {
    let sidecar = Sidecar::start(
        "providers:\n  echo:\n    type: echo\nroutes:\n  - match: \"*\"\n    provider: echo\n",
    )
    .await;
    let r: Value = post_chat(&sidecar, &chat("echo", "hello there"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["choices"][0]["message"]["content"], "hello there");
}

/// The relay batches whatever is readable without waiting; dropping a pending read must lose
/// nothing. Thousands of back-to-back events of varied sizes, compared byte for byte.
#[tokio::test]
async fn relayed_streams_lose_no_byte() {
    let mock = Mock::start().await;
    let blocks: Vec<String> = (0..3000)
        .map(|i| format!("data: {{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(i % 700)))
        .collect();
    let expected: String = blocks.iter().map(|b| format!("{b}\n\n")).collect();
    for _ in 0..3 {
        mock.push(Reply::Sse {
            blocks: blocks.clone(),
            gap: Duration::ZERO,
            cut_after: None,
        });
    }
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    for _ in 0..3 {
        let mut body = chat("gpt-4o", "flood");
        body["stream"] = json!(true);
        let text = post_chat(&sidecar, &body).await.text().await.unwrap();
        assert_eq!(text.len(), expected.len());
        assert!(text == expected, "the relayed stream differs");
    }
}

#[tokio::test]
async fn a_stream_cut_upstream_ends_with_an_in_band_error_and_no_done() {
    let mock = Mock::start().await;
    let Reply::Sse { blocks, .. } =
        Reply::openai_stream("gpt-4o", &["a ", "b ", "c"], Duration::ZERO)
    else {
        unreachable!()
    };
    mock.push(Reply::Sse {
        blocks,
        gap: Duration::from_millis(20),
        cut_after: Some(3),
    });
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let mut body = chat("gpt-4o", "cut");
    body["stream"] = json!(true);
    let text = post_chat(&sidecar, &body).await.text().await.unwrap();
    assert!(text.contains("\"content\":\"b \""), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "upstream_error");
    assert!(!text.contains("[DONE]"));
}

/// A 204 has no body, so its answer frames none (RFC 9112 §6.1), even when the provider's
/// does (this mock sends a length), and the app's connection stays usable.
#[tokio::test]
async fn no_content_answers_frame_no_body() {
    let mock = Mock::start().await;
    mock.push(Reply::status(204, json!(null)));
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let body = serde_json::to_vec(&chat("gpt-4o", "hi")).unwrap();
    let mut conn = RawConn::connect(sidecar.addr).await;
    let first = conn.post("/v1/chat/completions", &body);
    let r = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("a 204 answer ends at its head");
    assert_eq!(r.status, 204);
    assert!(r.header("transfer-encoding").is_none(), "{:?}", r.headers);
    assert!(r.header("content-length").is_none(), "{:?}", r.headers);
    let r = conn.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200);
}
