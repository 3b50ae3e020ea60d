//! Bad input gets the right status in OpenAI shape, and never reaches a provider.

use crate::openai_config;
use crate::support::{chat, client, post_chat, Mock, RawConn, Reply, Sidecar};
use serde_json::{json, Value};
use std::time::Duration;

async fn post_raw(sidecar: &Sidecar, body: &'static str) -> (u16, Value) {
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn assert_openai_error(v: &Value, kind: &str, code: &str) {
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"].get("param").is_some(), "{v}");
}

#[tokio::test]
async fn malformed_requests_are_400_and_never_forwarded() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("{\"model\": ", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ("", "invalid_json", None),
        (r#"{"messages": []}"#, "missing_model", Some("model")),
        (
            r#"{"model": 42, "messages": []}"#,
            "invalid_parameter",
            Some("model"),
        ),
        (
            r#"{"model": "m", "stream": "yes"}"#,
            "invalid_parameter",
            Some("stream"),
        ),
        (
            r#"{"model": "m", "fallback_models": "gpt-4o"}"#,
            "invalid_parameter",
            Some("fallback_models"),
        ),
        (
            r#"{"model": "m", "retry_params": {"num_retries": -1}}"#,
            "invalid_parameter",
            Some("retry_params.num_retries"),
        ),
        (
            r#"{"model": "m", "respan_params": "x"}"#,
            "invalid_parameter",
            Some("respan_params"),
        ),
        (
            r#"{"model": "m", "disable_log": "no"}"#,
            "invalid_parameter",
            Some("disable_log"),
        ),
    ];
    for (body, code, param) in cases {
        let (status, v) = post_raw(&sidecar, body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_openai_error(&v, "invalid_request_error", code);
        if let Some(param) = param {
            assert_eq!(v["error"]["param"], *param, "{body}");
        }
    }
    let bad_header = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header("x-data-respan-params", "not base64!")
        .json(&chat("m", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_header.status(), 400);
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let mock = Mock::start().await;
    let sidecar =
        Sidecar::start_with_server("max_request_body_bytes: 1000", &openai_config(&mock)).await;
    let big = serde_json::to_vec(&chat("gpt-4o", &"x".repeat(2000))).unwrap();
    // Declared length over the limit.
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_openai_error(
        &r.json().await.unwrap(),
        "invalid_request_error",
        "request_too_large",
    );
    // Chunked, so the limit is only found while reading.
    // One write: the sidecar answers and closes as soon as it is over the limit, and a write
    // after that could fail.
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: s";
    let request = crate::support::chunked_request(head, &big, 300);
    let mut conn = RawConn::connect(sidecar.addr).await;
    conn.send(&request).await;
    assert_eq!(conn.read_response().await.status, 413);
    // At the limit is fine.
    let ok = post_chat(&sidecar, &chat("gpt-4o", "small")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn unknown_models_and_paths_are_404() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  mock:\n    type: openai\n    base_url: \"{}\"\nroutes:\n  - match: \"gpt-*\"\n    provider: mock\n",
        mock.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let r = post_chat(&sidecar, &chat("claude-x", "hi")).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_openai_error(&v, "invalid_request_error", "model_not_found");
    assert_eq!(v["error"]["param"], "model");
    let r = client()
        .post(sidecar.url("/nowhere"))
        .json(&chat("gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header("x-respan-route-provider", "nope")
        .json(&chat("gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn auth_keys_are_enforced_and_never_forwarded() {
    let mock = Mock::start().await;
    let config = format!(
        "auth:\n  keys:\n    - key: app-token\n      customer_identifier: team-a\n{}",
        openai_config(&mock)
    );
    let sidecar = Sidecar::start(&config).await;
    let send = |auth: Option<(&'static str, &'static str)>| {
        let mut req = client()
            .post(sidecar.url("/v1/chat/completions"))
            .json(&chat("gpt-4o", "hi"));
        if let Some((k, v)) = auth {
            req = req.header(k, v);
        }
        req.send()
    };
    for bad in [
        None,
        Some(("authorization", "Bearer wrong")),
        Some(("x-api-key", "app-token2")),
    ] {
        let r = send(bad).await.unwrap();
        assert_eq!(r.status(), 401, "{bad:?}");
        assert_openai_error(
            &r.json().await.unwrap(),
            "authentication_error",
            "invalid_api_key",
        );
    }
    assert_eq!(mock.count(), 0);
    for good in [
        ("authorization", "Bearer app-token"),
        ("x-api-key", "app-token"),
        ("x-goog-api-key", "app-token"),
    ] {
        assert_eq!(send(Some(good)).await.unwrap().status(), 200, "{good:?}");
        let got = mock.last();
        assert_eq!(got.header("authorization"), Some("Bearer sk-test"));
        assert_eq!(got.header("x-api-key"), None);
        assert_eq!(got.header("x-goog-api-key"), None);
    }
    // The models list is behind auth too.
    let r = client()
        .get(sidecar.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn upstream_errors_pass_through_with_their_status() {
    let mock = Mock::start().await;
    mock.push(
        Reply::openai_error(400, "max_tokens is too large").with_header("x-request-id", "req-9"),
    );
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let r = post_chat(&sidecar, &chat("gpt-4o", "hi")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-request-id"], "req-9");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "max_tokens is too large");
    assert_eq!(mock.count(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn no_upstream_is_502_and_a_slow_one_504() {
    let port = crate::support::free_port();
    let config = format!(
        "providers:\n  down:\n    type: openai\n    base_url: \"http://127.0.0.1:{port}/v1\"\nroutes:\n  - match: \"*\"\n    provider: down\n"
    );
    let sidecar = Sidecar::start(&config).await;
    let mut body = chat("gpt-4o", "hi");
    body["retry_params"] = json!({"num_retries": 1, "retry_after": 0.01});
    let r = post_chat(&sidecar, &body).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-respan-attempts"], "2");
    assert_openai_error(
        &r.json().await.unwrap(),
        "server_error",
        "upstream_unavailable",
    );

    let mock = Mock::start().await;
    mock.push(Reply::Delay(
        Duration::from_secs(3),
        Box::new(Reply::openai_chat("m", "late")),
    ));
    let slow = Sidecar::start_with_server("upstream_timeout_ms: 300", &openai_config(&mock)).await;
    let mut body = chat("gpt-4o", "hi");
    body["retry_params"] = json!({"retry_enabled": false});
    let started = std::time::Instant::now();
    let r = post_chat(&slow, &body).await;
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_openai_error(&r.json().await.unwrap(), "server_error", "upstream_timeout");
}

/// A body `depth` levels deep inside `field`: `{"model": .., field: [[[...]]]}`.
fn nested(model: &str, field: &str, depth: usize) -> Vec<u8> {
    let model = if model.is_empty() {
        String::new()
    } else {
        format!(r#""model":"{model}","#)
    };
    format!(
        r#"{{{model}"{field}":{}{{"role":"user","content":"hi"}}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

#[tokio::test]
async fn deep_or_misshapen_conversations_are_400_on_every_ingress_and_never_forwarded() {
    let mock = Mock::start().await;
    let base = mock.url("");
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{base}/v1\"\n    api_key: sk-test\n  an:\n    type: anthropic\n    base_url: \"{base}\"\n    api_key: sk-ant\n  ge:\n    type: gemini\n    base_url: \"{base}\"\n    api_key: g-key\nroutes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"gemini-*\"\n    provider: ge\n  - match: \"*\"\n    provider: oa\n"
    );
    let sidecar = Sidecar::start(&config).await;
    let gemini = "/api/google/gemini/v1beta/models/gemini-2.5-flash:generateContent";
    // (path, body field, model in the body, how the error is read)
    let ingresses = [
        ("/v1/chat/completions", "messages", "gpt-4o", "openai"),
        ("/v1/responses", "input", "gpt-4o", "openai"),
        (
            "/v1/embeddings",
            "input",
            "text-embedding-3-small",
            "openai",
        ),
        (
            "/api/anthropic/v1/messages",
            "messages",
            "claude-sonnet-4-5",
            "anthropic",
        ),
        ("/v1/messages", "messages", "gpt-4o", "anthropic"),
        (gemini, "contents", "", "gemini"),
    ];
    let send = |path: &str, body: Vec<u8>| {
        client()
            .post(sidecar.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (path, field, model, shape) in ingresses {
        for depth in [5_000, 100_000, 3] {
            let r = send(path, nested(model, field, depth)).await.unwrap();
            assert_eq!(r.status(), 400, "{path} at depth {depth}");
            let v: Value = r.json().await.unwrap();
            let message = match shape {
                "openai" => {
                    if depth > 64 {
                        assert_openai_error(&v, "invalid_request_error", "json_too_deep");
                    }
                    &v["error"]["message"]
                }
                "anthropic" => {
                    assert_eq!(v["type"], "error", "{v}");
                    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
                    &v["error"]["message"]
                }
                _ => {
                    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{v}");
                    &v["error"]["message"]
                }
            };
            let message = message.as_str().unwrap();
            if depth > 64 {
                assert!(
                    message.contains("nested deeper than 64"),
                    "{path}: {message}"
                );
            } else {
                // Shallow enough, but a turn is an array, not an object.
                assert!(message.contains(field), "{path}: {message}");
            }
        }
    }
    // Turns that are not objects with a role.
    for bad in [
        json!({"model": "gpt-4o", "messages": "hi"}),
        json!({"model": "gpt-4o", "messages": [{"content": "no role"}]}),
        json!({"model": "gpt-4o", "messages": [null]}),
    ] {
        let r = post_chat(&sidecar, &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], "messages", "{v}");
    }
    let r = send(
        "/api/anthropic/v1/messages",
        br#"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"content":"x"}]}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(mock.count(), 0, "a bad body reached a provider");
    let too_deep = sidecar
        .metric("respan_rejected_requests_total", &[("reason", "too_deep")])
        .await;
    assert_eq!(too_deep, 12.0);
    // Deep enough to be real, shallow enough to pass: served.
    let r = post_chat(&sidecar, &chat("gpt-4o", "fine")).await;
    assert_eq!(r.status(), 200);
}
