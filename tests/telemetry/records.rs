//! One trace record per request, on every path, with the contract's fields.

use crate::support::mock::Flavor;
use crate::support::{client, Mock, Reply, Sidecar};
use crate::{three_providers, trace_of, traces};
use serde_json::{json, Value};

struct Three {
    openai: Mock,
    anthropic: Mock,
    gemini: Mock,
    sidecar: Sidecar,
}

async fn three() -> Three {
    let openai = Mock::start().await;
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    let gemini = Mock::start_as(Flavor::Gemini).await;
    let sidecar = Sidecar::start(&three_providers(&openai, &anthropic, &gemini)).await;
    Three {
        openai,
        anthropic,
        gemini,
        sidecar,
    }
}

/// Posts JSON to a path; the status, the request id header and the body text.
async fn post(sidecar: &Sidecar, path: &str, body: &Value) -> (u16, String, String) {
    let r = client()
        .post(sidecar.url(path))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let id = r
        .headers()
        .get("x-respan-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (status, id, r.text().await.unwrap())
}

fn chat(model: &str, text: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": text}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    body
}

#[tokio::test]
async fn an_openai_answer_is_recorded_field_by_field() {
    let t = three().await;
    let body = chat(
        "gpt-4.1",
        "what is two plus two",
        json!({
            "customer_identifier": "user-42",
            "customer_params": {"customer_identifier": "user-42", "name": "Ada", "plan": "pro"},
            "thread_identifier": "thread-7",
            "custom_identifier": "order-9",
            "metadata": {"n": 1, "env": "test"},
        }),
    );
    let (status, id, _) = post(&t.sidecar, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["request_id"], id.as_str());
    // The app's traceparent makes the span its child, in the app's trace.
    assert_eq!(r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(r["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(r["span_id"].as_str().unwrap().len(), 16);
    assert_eq!(r["endpoint"], "chat.completions");
    assert_eq!(r["requested_model"], "gpt-4.1");
    assert_eq!(r["model"], "gpt-4.1");
    assert_eq!(r["provider"], "oa");
    assert_eq!(r["stream"], false);
    assert_eq!(r["status_code"], 200);
    assert!(r["error"].is_null());
    assert_eq!(r["usage"]["prompt_tokens"], 5);
    assert_eq!(r["usage"]["completion_tokens"], 2);
    assert_eq!(r["usage"]["total_tokens"], 7);
    // gpt-4.1 at $2 / $8 per million: 5 * 2e-6 + 2 * 8e-6.
    let cost = r["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.000026).abs() < 1e-12, "{cost}");
    assert_eq!(r["cache_hit"], false);
    assert_eq!(r["customer_identifier"], "user-42");
    assert_eq!(r["customer_params"]["name"], "Ada");
    assert_eq!(r["customer_params"]["plan"], "pro");
    assert_eq!(r["thread_identifier"], "thread-7");
    assert_eq!(r["custom_identifier"], "order-9");
    assert_eq!(r["metadata"], json!({"n": "1", "env": "test"}));
    assert_eq!(r["input"][0]["content"], "what is two plus two");
    assert_eq!(r["output"]["content"], "mock answer");
    assert_eq!(r["finish_reasons"], json!(["stop"]));
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["provider"], "oa");
    assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(r["ttft_ms"].is_null(), "no TTFT for a whole answer");
    let start = r["start_time"].as_str().unwrap();
    let end = r["end_time"].as_str().unwrap();
    assert!(start.ends_with('Z') && start <= end, "{start} {end}");
    // The metadata travelled nowhere: a provider never sees Respan parameters.
    assert!(t.openai.last().json().get("metadata").is_none());
}

#[tokio::test]
async fn an_openai_stream_gets_its_usage_without_the_app_seeing_it() {
    let t = three().await;
    let body = chat("gpt-4.1-mini", "stream please", json!({"stream": true}));
    let (status, id, text) = post(&t.sidecar, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    // The sidecar asked the upstream for usage...
    assert_eq!(
        t.openai.last().json()["stream_options"]["include_usage"],
        true
    );
    // ...and the app, which did not, got no usage chunk.
    assert!(!text.contains("\"usage\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["stream"], true);
    assert_eq!(r["usage"]["total_tokens"], 7);
    assert_eq!(r["output"]["content"], "mock answer");
    assert!(r["ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(r["cost_usd"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn an_app_that_asks_for_usage_still_gets_it() {
    let t = three().await;
    let body = chat(
        "gpt-4.1",
        "hi",
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let (_, id, text) = post(&t.sidecar, "/v1/chat/completions", &body).await;
    assert!(text.contains("\"usage\":{\"prompt_tokens\":5"), "{text}");
    assert_eq!(trace_of(&t.sidecar, &id).await["usage"]["total_tokens"], 7);
}

#[tokio::test]
async fn a_translated_claude_stream_is_recorded() {
    let t = three().await;
    let body = chat("claude-haiku-4-5", "hello claude", json!({"stream": true}));
    let (status, id, _) = post(&t.sidecar, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["provider"], "an");
    assert_eq!(r["provider_type"], "anthropic");
    assert_eq!(r["model"], "claude-haiku-4-5");
    assert_eq!(r["stream"], true);
    assert_eq!(r["usage"]["prompt_tokens"], 5);
    assert_eq!(r["usage"]["completion_tokens"], 2);
    assert_eq!(r["output"]["content"], "mock answer");
    assert_eq!(r["input"][0]["content"], "hello claude");
    assert!(r["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(t.anthropic.count(), 1);
}

/// A translated stream's answer is assembled from the chunks its decoder typed, as it
/// passes: the same text, and the finish reasons the app's own format gave.
#[tokio::test]
async fn translated_streams_record_the_answer_in_the_apps_words() {
    let t = three().await;
    let anthropic = json!({"model": "gpt-4.1", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "to openai"}]});
    let (status, id, text) = post(&t.sidecar, "/v1/messages", &anthropic).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"stop_reason\":\"end_turn\""), "{text}");
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["provider_type"], "openai");
    assert_eq!(r["output"]["content"], "mock answer");
    assert_eq!(r["finish_reasons"], json!(["end_turn"]));

    let responses = json!({"model": "claude-haiku-4-5", "input": "to claude", "stream": true});
    let (status, id, text) = post(&t.sidecar, "/v1/responses", &responses).await;
    assert_eq!(status, 200);
    assert!(text.contains("response.completed"), "{text}");
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["provider_type"], "anthropic");
    assert_eq!(r["output"]["content"], "mock answer");
    assert_eq!(r["finish_reasons"], json!(["completed"]));
}

/// A streamed answer's text past `max_capture_bytes` is cut, and the trace says so.
#[tokio::test]
async fn a_streamed_answer_past_the_capture_bound_is_cut_and_marked() {
    let openai = Mock::start().await;
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    let gemini = Mock::start_as(Flavor::Gemini).await;
    let config = format!(
        "{}telemetry:\n  max_capture_bytes: 4\n",
        three_providers(&openai, &anthropic, &gemini)
    );
    let sidecar = Sidecar::start(&config).await;
    for model in ["gpt-4.1", "claude-haiku-4-5"] {
        let body = chat(model, "hi", json!({"stream": true}));
        let (status, id, _) = post(&sidecar, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200);
        let r = trace_of(&sidecar, &id).await;
        assert_eq!(r["output"]["content"], "mock", "{model}");
        assert_eq!(r["output_truncated"], true, "{model}");
    }
}

#[tokio::test]
async fn the_anthropic_and_gemini_paths_are_recorded_in_their_own_formats() {
    let t = three().await;
    let anthropic = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "system": "be brief", "messages": [{"role": "user", "content": "native hello"}]});
    let (status, id, _) = post(&t.sidecar, "/v1/messages", &anthropic).await;
    assert_eq!(status, 200);
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["endpoint"], "anthropic.messages");
    assert_eq!(
        r["input"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(r["input"][1]["content"], "native hello");
    assert_eq!(r["output"]["content"], "mock answer");
    assert_eq!(r["usage"]["total_tokens"], 7);

    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "gemini hello"}]}]});
    for (action, stream) in [
        ("generateContent", false),
        ("streamGenerateContent?alt=sse", true),
    ] {
        let path = format!("/api/google/gemini/v1beta/models/gemini-2.5-flash:{action}");
        let (status, id, _) = post(&t.sidecar, &path, &gemini).await;
        assert_eq!(status, 200, "{action}");
        let r = trace_of(&t.sidecar, &id).await;
        assert_eq!(r["endpoint"], "gemini.generate_content");
        assert_eq!(r["stream"], stream);
        assert_eq!(r["input"][0]["content"], "gemini hello");
        assert_eq!(r["output"]["content"], "mock answer", "{action}");
        assert_eq!(r["usage"]["total_tokens"], 7, "{action}");
        assert_eq!(r["provider"], "ge");
    }
    assert_eq!(t.gemini.count(), 2);
}

#[tokio::test]
async fn embeddings_and_passthrough_are_recorded() {
    let t = three().await;
    let (status, id, _) = post(
        &t.sidecar,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "embed me"}),
    )
    .await;
    assert_eq!(status, 200);
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["endpoint"], "embeddings");
    assert_eq!(r["input"], "embed me");
    assert_eq!(r["usage"]["prompt_tokens"], 5);

    let files = client()
        .get(t.sidecar.url("/v1/files"))
        .send()
        .await
        .unwrap();
    assert_eq!(files.status(), 200);
    let id = files.headers()["x-respan-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["endpoint"], "passthrough");
    assert_eq!(r["path"], "GET /v1/files");
    assert_eq!(r["provider"], "oa");
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["attempts"][0]["status_code"], 200);
}

#[tokio::test]
async fn an_error_before_routing_is_recorded() {
    let t = three().await;
    let r = client()
        .post(t.sidecar.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let id = r.headers()["x-respan-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["status_code"], 400);
    assert!(r["error"].as_str().unwrap().contains("JSON"), "{r}");
    assert!(r["model"].is_null() && r["provider"].is_null());
    assert_eq!(r["attempts"], json!([]));
    assert_eq!(t.openai.count(), 0);

    let (status, id, _) = post(&t.sidecar, "/v1/chat/completions", &json!({"messages": []})).await;
    assert_eq!(status, 400);
    assert!(trace_of(&t.sidecar, &id).await["error"]
        .as_str()
        .unwrap()
        .contains("model"));
}

#[tokio::test]
async fn a_fallback_records_every_attempt() {
    let t = three().await;
    t.openai.push(Reply::openai_error(500, "first down"));
    t.anthropic.push(Reply::status(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "second down"}}),
    ));
    let body = chat(
        "gpt-4.1",
        "hi",
        json!({"fallback_models": ["claude-haiku-4-5", "gemini-2.5-flash"],
               "retry_params": {"num_retries": 0}}),
    );
    let (status, id, _) = post(&t.sidecar, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    let r = trace_of(&t.sidecar, &id).await;
    let attempts = r["attempts"].as_array().unwrap();
    let summary: Vec<(Value, Value, Value)> = attempts
        .iter()
        .map(|a| {
            (
                a["model"].clone(),
                a["provider"].clone(),
                a["status_code"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!("gpt-4.1"), json!("oa"), json!(500)),
            (json!("claude-haiku-4-5"), json!("an"), json!(529)),
            (json!("gemini-2.5-flash"), json!("ge"), json!(200)),
        ]
    );
    assert_eq!(attempts[0]["error"], "first down");
    assert_eq!(attempts[1]["error"], "second down");
    assert_eq!(r["model"], "gemini-2.5-flash");
    assert_eq!(r["provider"], "ge");
    let fallbacks = t
        .sidecar
        .metric(
            "respan_fallbacks_total",
            &[("from_model", "claude-*"), ("to_model", "gemini-*")],
        )
        .await;
    assert_eq!(fallbacks, 1.0);
}

#[tokio::test]
async fn traces_are_listed_newest_first_and_filtered() {
    let t = three().await;
    for (model, customer) in [
        ("gpt-4.1", "a"),
        ("claude-haiku-4-5", "b"),
        ("gpt-4.1", "b"),
    ] {
        let body = chat(model, "hi", json!({"customer_identifier": customer}));
        assert_eq!(post(&t.sidecar, "/v1/chat/completions", &body).await.0, 200);
    }
    let all = traces(&t.sidecar, "limit=10").await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["customer_identifier"], "b");
    assert_eq!(all[0]["requested_model"], "gpt-4.1");
    assert_eq!(all[2]["customer_identifier"], "a");
    assert_eq!(traces(&t.sidecar, "limit=1").await.len(), 1);
    assert_eq!(traces(&t.sidecar, "customer_identifier=b").await.len(), 2);
    assert_eq!(traces(&t.sidecar, "model=claude-haiku-4-5").await.len(), 1);
    assert_eq!(traces(&t.sidecar, "status=2xx").await.len(), 3);
    assert_eq!(traces(&t.sidecar, "status=5xx").await.len(), 0);
}

#[tokio::test]
async fn tokens_and_cost_are_counted_in_the_metrics() {
    let t = three().await;
    let (status, _, _) = post(
        &t.sidecar,
        "/v1/chat/completions",
        &chat("gpt-4.1", "hi", json!({})),
    )
    .await;
    assert_eq!(status, 200);
    t.sidecar.idle().await;
    let labels = |kind| [("model", "*"), ("provider", "oa"), ("type", kind)];
    assert_eq!(
        t.sidecar
            .metric("respan_tokens_total", &labels("prompt"))
            .await,
        5.0
    );
    assert_eq!(
        t.sidecar
            .metric("respan_tokens_total", &labels("completion"))
            .await,
        2.0
    );
    let cost = t
        .sidecar
        .metric(
            "respan_cost_usd_total",
            &[("model", "*"), ("provider", "oa")],
        )
        .await;
    assert!((cost - 0.000026).abs() < 1e-12, "{cost}");
}

#[tokio::test]
async fn request_breakdown_comes_back_in_the_answer() {
    let t = three().await;
    for model in ["gpt-4.1", "claude-haiku-4-5"] {
        let body = chat(
            model,
            "hi",
            json!({"request_breakdown": true, "metadata": {"k": "v"}}),
        );
        let (status, _, text) = post(&t.sidecar, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            answer["choices"][0]["message"]["content"], "mock answer",
            "{model}"
        );
        let b = &answer["request_breakdown"];
        assert_eq!(b["prompt_tokens"], 5, "{model}: {answer}");
        assert_eq!(b["completion_tokens"], 2);
        assert_eq!(b["model"], model);
        assert_eq!(b["status_code"], 200);
        assert_eq!(b["stream"], false);
        assert_eq!(b["attempts"], 1);
        assert_eq!(b["cached"], false);
        assert_eq!(b["metadata"], json!({"k": "v"}));
        assert!(b["cost"].as_f64().unwrap() > 0.0);
        assert!(b["latency"].as_f64().unwrap() > 0.0);
        assert!(b["routing_time"].as_f64().unwrap() >= 0.0);
        assert!(b["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    // Streams: one more data event, the last before [DONE].
    let body = chat(
        "claude-haiku-4-5",
        "hi",
        json!({"request_breakdown": true, "stream": true}),
    );
    let (_, _, text) = post(&t.sidecar, "/v1/chat/completions", &body).await;
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let last: Value =
        serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["request_breakdown"]["completion_tokens"], 2, "{text}");
    assert_eq!(last["request_breakdown"]["stream"], true);
    assert!(last["request_breakdown"]["ttft"].as_f64().unwrap() > 0.0);
    // The Anthropic path: an event of its own name, after the rest.
    let anthropic = json!({"model": "claude-haiku-4-5", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "hi"}], "request_breakdown": true});
    let (_, _, text) = post(&t.sidecar, "/v1/messages", &anthropic).await;
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(
        last.starts_with("event: request_breakdown\ndata: "),
        "{text}"
    );
    assert!(last.contains("\"prompt_tokens\":5"), "{last}");
    // Without the parameter, nothing is added.
    let (_, _, text) = post(
        &t.sidecar,
        "/v1/chat/completions",
        &chat("gpt-4.1", "hi", json!({})),
    )
    .await;
    assert!(!text.contains("request_breakdown"));
}

#[tokio::test]
async fn openai_responses_answers_give_their_usage_and_text_to_the_trace() {
    let t = three().await;
    t.openai.push(Reply::status(
        200,
        json!({"id": "resp_1", "object": "response", "output": [{"type": "message",
            "content": [{"type": "output_text", "text": "passed through"}]}],
            "usage": {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15,
                "input_tokens_details": {"cached_tokens": 3}}}),
    ));
    let body = json!({"model": "gpt-4.1", "input": "hi"});
    let (status, id, text) = post(&t.sidecar, "/v1/responses", &body).await;
    assert_eq!(status, 200);
    assert!(text.contains("passed through"));
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["endpoint"], "responses");
    assert_eq!(r["usage"]["prompt_tokens"], 11);
    assert_eq!(r["usage"]["completion_tokens"], 4);
    assert_eq!(r["usage"]["cached_tokens"], 3);
    // The request's `input` is the trace's, as the app sent it.
    assert_eq!(r["input"], "hi");
    assert!(r["output"]["content"]
        .as_str()
        .unwrap()
        .contains("passed through"));

    let completed = json!({"type": "response.completed", "response": {"id": "resp_2",
        "usage": {"input_tokens": 8, "output_tokens": 2, "total_tokens": 10}}});
    t.openai.push(Reply::Sse {
        blocks: vec![
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hey\"}".into(),
            format!("event: response.completed\ndata: {completed}"),
        ],
        gap: std::time::Duration::ZERO,
        cut_after: None,
    });
    let (status, id, _) = post(
        &t.sidecar,
        "/v1/responses",
        &json!({"model": "gpt-4.1", "stream": true}),
    )
    .await;
    assert_eq!(status, 200);
    let r = trace_of(&t.sidecar, &id).await;
    assert_eq!(r["stream"], true);
    assert_eq!(r["usage"]["total_tokens"], 10);
    assert!(r["ttft_ms"].as_f64().is_some());
    // A body with no conversation in it gives the trace no input.
    assert!(r.get("input").is_none(), "{r}");
}
