//! The exporters against real files and mock receivers; what text and keys reach them.

use crate::support::{client, Mock, Sidecar};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A sidecar whose `oa` provider is `openai`, exporting to a jsonl file and to `respan`.
async fn exporting(openai: &Mock, respan: &Mock, jsonl: &std::path::Path, extra: &str) -> Sidecar {
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-configured-secret\n\
         telemetry:\n{extra}  exporters:\n    - type: jsonl\n      path: \"{}\"\n\
         \x20   - type: respan\n      endpoint: \"{}\"\n      api_key: rk-respan-secret\n",
        openai.url("/v1"),
        jsonl.display(),
        respan.url("/api/request-logs/bulk/"),
    );
    Sidecar::start(&config).await
}

/// Waits until `check` holds (exporters batch for a fraction of a second).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn chat(sidecar: &Sidecar, body: Value) -> String {
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .bearer_auth("sk-app-own-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-respan-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_trace_reaches_the_jsonl_file_and_respan() {
    let (openai, respan) = (Mock::start().await, Mock::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces").join("t.jsonl");
    let sidecar = exporting(&openai, &respan, &path, "").await;
    let body = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "export me"}],
        "customer_identifier": "cust-1", "thread_identifier": "th-1", "metadata": {"k": "v"}});
    let first = chat(&sidecar, body.clone()).await;
    let second = chat(
        &sidecar,
        json!({"stream": true, "model": "gpt-4.1",
        "messages": [{"role": "user", "content": "stream me"}]}),
    )
    .await;
    eventually("two jsonl lines", || lines(&path).len() == 2).await;
    let written = lines(&path);
    assert_eq!(written[0]["request_id"], first.as_str());
    assert_eq!(written[1]["request_id"], second.as_str());
    assert_eq!(written[0]["input"][0]["content"], "export me");
    assert_eq!(written[1]["output"]["content"], "mock answer");
    // The same record as /api/traces.
    let api = crate::trace_of(&sidecar, &first).await;
    assert_eq!(api, written[0]);

    eventually("respan logs", || {
        respan
            .received()
            .iter()
            .map(|r| r.json()["logs"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
            == 2
    })
    .await;
    let posted = respan.received();
    assert_eq!(posted[0].path, "/api/request-logs/bulk/");
    assert_eq!(
        posted[0].header("authorization"),
        Some("Bearer rk-respan-secret")
    );
    let logs: Vec<Value> = posted
        .iter()
        .flat_map(|r| r.json()["logs"].as_array().unwrap().clone())
        .collect();
    let log = &logs[0];
    assert_eq!(log["model"], "gpt-4.1");
    assert_eq!(log["log_type"], "chat");
    assert_eq!(log["input"][0]["content"], "export me");
    assert_eq!(log["output"]["content"], "mock answer");
    assert_eq!(log["prompt_tokens"], 5);
    assert_eq!(log["completion_tokens"], 2);
    assert_eq!(log["customer_identifier"], "cust-1");
    assert_eq!(log["thread_identifier"], "th-1");
    // The request id the app got travels in the log's metadata.
    assert_eq!(log["metadata"], json!({"request_id": first, "k": "v"}));
    assert_eq!(logs[1]["metadata"]["request_id"], second.as_str());
    // Its ids and times are the trace record's.
    for (in_log, in_record) in [
        ("trace_unique_id", "trace_id"),
        ("span_unique_id", "span_id"),
        ("start_time", "start_time"),
        ("timestamp", "end_time"),
    ] {
        assert_eq!(log[in_log], written[0][in_record], "{in_log}");
    }
    assert!(log.get("span_parent_id").is_none());
    assert_eq!(log["status_code"], 200);
    assert_eq!(log["provider_id"], "openai");
    // Seconds, not milliseconds.
    assert!(log["latency"].as_f64().unwrap() < 5.0);
    assert!(log["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(logs[1]["stream"], true);
    assert!(logs[1]["time_to_first_token"].as_f64().unwrap() > 0.0);
    let exported = sidecar
        .metric(
            "respan_trace_exports_total",
            &[("exporter", "jsonl"), ("result", "ok")],
        )
        .await;
    assert_eq!(exported, 2.0);
}

#[tokio::test]
async fn disable_log_and_keys_leave_no_trace_anywhere() {
    let (openai, respan) = (Mock::start().await, Mock::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let sidecar = exporting(&openai, &respan, &path, "").await;
    let id = chat(
        &sidecar,
        json!({"model": "gpt-4.1", "stream": true, "disable_log": true,
            "messages": [{"role": "user", "content": "TOP-SECRET-PROMPT"}],
            "customer_credentials": {"oa": {"api_key": "sk-customer-secret"}}}),
    )
    .await;
    // The customer's key did go upstream: it is the request's credential.
    assert_eq!(
        openai.last().header("authorization"),
        Some("Bearer sk-customer-secret")
    );
    eventually("the jsonl line", || lines(&path).len() == 1).await;
    eventually("the respan log", || respan.count() == 1).await;
    let api = crate::trace_of(&sidecar, &id).await;
    assert_eq!(
        api["usage"]["total_tokens"], 7,
        "timings and tokens are kept"
    );
    let outputs = [
        api.to_string(),
        std::fs::read_to_string(&path).unwrap(),
        String::from_utf8_lossy(&respan.last().body).into_owned(),
        sidecar.log(),
        client()
            .get(sidecar.admin_url("/config"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ];
    for text in &outputs {
        for secret in [
            "TOP-SECRET-PROMPT",
            "mock answer",
            "sk-customer-secret",
            "sk-configured-secret",
            "sk-app-own-secret",
            "rk-respan-secret",
        ] {
            assert!(!text.contains(secret), "{secret} leaked into: {text}");
        }
    }
}

#[tokio::test]
async fn capture_content_off_keeps_text_out_of_every_trace() {
    let (openai, respan) = (Mock::start().await, Mock::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let sidecar = exporting(&openai, &respan, &path, "  capture_content: false\n").await;
    let id = chat(
        &sidecar,
        json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "PRIVATE-TEXT"}]}),
    )
    .await;
    eventually("the jsonl line", || lines(&path).len() == 1).await;
    let api = crate::trace_of(&sidecar, &id).await;
    assert!(
        api.get("input").is_none() && api.get("output").is_none(),
        "{api}"
    );
    assert!(!std::fs::read_to_string(&path)
        .unwrap()
        .contains("PRIVATE-TEXT"));
}

#[tokio::test]
async fn a_failing_receiver_is_retried_and_counted_without_slowing_requests() {
    let openai = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: every export fails.
    let dead = format!(
        "http://127.0.0.1:{}/api/request-logs/bulk/",
        crate::support::free_port()
    );
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n\
         telemetry:\n  exporters:\n    - type: respan\n      endpoint: \"{dead}\"\n      api_key: rk\n",
        openai.url("/v1"),
    );
    let _ = dir;
    let sidecar = Sidecar::start(&config).await;
    let started = Instant::now();
    for _ in 0..5 {
        chat(
            &sidecar,
            json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "requests waited on the exporter"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let errors = sidecar
            .metric(
                "respan_trace_exports_total",
                &[("exporter", "respan"), ("result", "error")],
            )
            .await;
        if errors == 5.0 {
            break;
        }
        assert!(Instant::now() < deadline, "errors counted: {errors}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sidecar.log().contains("trace export failed"));
}

/// The attributes of an OTLP span as a JSON object (arrays as JSON arrays).
fn attributes(
    span: &opentelemetry_proto::tonic::trace::v1::Span,
) -> serde_json::Map<String, Value> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    fn plain(v: &V) -> Value {
        match v {
            V::StringValue(s) => json!(s),
            V::IntValue(i) => json!(i),
            V::DoubleValue(d) => json!(d),
            V::BoolValue(b) => json!(b),
            V::ArrayValue(a) => a
                .values
                .iter()
                .filter_map(|x| x.value.as_ref().map(plain))
                .collect(),
            _ => Value::Null,
        }
    }
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), plain(kv.value.as_ref()?.value.as_ref()?))))
        .collect()
}

#[tokio::test]
async fn otlp_spans_follow_the_genai_conventions_and_the_apps_trace() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let (openai, collector, json_collector) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n\
         telemetry:\n  exporters:\n    - type: otlp_http\n      endpoint: \"{}\"\n      headers: {{x-collector-token: tok}}\n\
         \x20   - type: otlp_http\n      endpoint: \"{}\"\n      encoding: json\n",
        openai.url("/v1"),
        collector.url("/v1/traces"),
        json_collector.url("/v1/traces"),
    );
    let sidecar = Sidecar::start(&config).await;
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .json(
            &json!({"model": "gpt-4.1", "thread_identifier": "th-9", "metadata": {"team": "x"},
            "messages": [{"role": "user", "content": "otlp me"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-respan-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    eventually("the protobuf export", || collector.count() == 1).await;
    let received = collector.last();
    assert_eq!(received.path, "/v1/traces");
    assert_eq!(
        received.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(received.header("x-collector-token"), Some("tok"));
    let request = ExportTraceServiceRequest::decode(received.body.as_ref()).unwrap();
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(resource.attributes[0].key, "service.name");
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.name, "chat gpt-4.1");
    assert_eq!(span.kind, 3, "CLIENT");
    assert_eq!(
        span.trace_id,
        [
            0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
            0x31, 0x9c
        ]
    );
    assert_eq!(
        span.parent_span_id,
        [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
    );
    assert!(span.end_time_unix_nano > span.start_time_unix_nano);
    let a = attributes(span);
    assert_eq!(a["gen_ai.operation.name"], "chat");
    assert_eq!(a["gen_ai.provider.name"], "openai");
    assert_eq!(a["gen_ai.request.model"], "gpt-4.1");
    assert_eq!(a["gen_ai.response.model"], "gpt-4.1");
    assert_eq!(a["gen_ai.usage.input_tokens"], 5);
    assert_eq!(a["gen_ai.usage.output_tokens"], 2);
    assert_eq!(a["gen_ai.response.finish_reasons"], json!(["stop"]));
    assert_eq!(a["gen_ai.conversation.id"], "th-9");
    assert_eq!(a["respan.request_id"], id.as_str());
    assert_eq!(a["respan.metadata.team"], "x");
    assert_eq!(a["respan.provider"], "oa");
    let detail = a["respan.attempts.detail"].as_str().unwrap();
    let detail: Value = serde_json::from_str(detail).unwrap();
    assert_eq!(
        (&detail[0]["provider"], &detail[0]["status_code"]),
        (&json!("oa"), &json!(200))
    );
    assert!(a["respan.cost_usd"].as_f64().unwrap() > 0.0);
    assert!(a["gen_ai.input.messages"]
        .as_str()
        .unwrap()
        .contains("otlp me"));
    assert!(a["gen_ai.output.messages"]
        .as_str()
        .unwrap()
        .contains("mock answer"));

    eventually("the JSON export", || json_collector.count() == 1).await;
    let received = json_collector.last();
    assert_eq!(received.header("content-type"), Some("application/json"));
    let v = received.json();
    let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    // OTLP/JSON: ids in hex, names in camelCase.
    assert_eq!(span["traceId"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(span["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(span["name"], "chat gpt-4.1");
}

/// A receiver that takes connections and never answers: its exporter is stuck on one batch.
fn silent_receiver() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/api/request-logs/bulk/",
        listener.local_addr().unwrap()
    );
    (listener, url)
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_slowing_requests() {
    let openai = Mock::start().await;
    let (_listener, stuck) = silent_receiver();
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n\
         telemetry:\n  export_queue: 2\n  exporters:\n    - type: respan\n      endpoint: \"{stuck}\"\n      api_key: rk\n",
        openai.url("/v1"),
    );
    let sidecar = Sidecar::start(&config).await;
    let body = json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "x"}]});
    // The first trace's batch goes to the receiver and waits there for its answer.
    chat(&sidecar, body.clone()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = Instant::now();
    for _ in 0..10 {
        chat(&sidecar, body.clone()).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "requests waited on the exporter"
    );
    // Two wait in the queue; the other eight are dropped.
    let dropped = sidecar
        .metric(
            "respan_trace_exports_total",
            &[("exporter", "respan"), ("result", "dropped")],
        )
        .await;
    assert_eq!(dropped, 8.0);
}

#[tokio::test]
async fn each_request_has_an_access_log_line_unless_turned_off() {
    let openai = Mock::start().await;
    let provider = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-configured-secret\n",
        openai.url("/v1"),
    );
    let body =
        json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "secret text"}]});
    let on = Sidecar::start_with_env("", &provider, &[("RESPAN_LOG_FORMAT", "json")]).await;
    openai.push(crate::support::mock::Reply::openai_chat(
        "gpt-4.1",
        "answer text",
    ));
    chat(&on, body.clone()).await;
    // The line is written once the answer has gone.
    eventually("the access log line", || {
        on.log().contains("respan::access")
    })
    .await;
    let log = on.log();
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["target"] == "respan::access")
        .unwrap_or_else(|| panic!("no access log line in:\n{log}"));
    let fields = &line["fields"];
    assert_eq!(fields["endpoint"], "chat.completions");
    assert_eq!(fields["requested_model"], "gpt-4.1");
    assert_eq!(fields["provider"], "oa");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["attempts"], 1);
    assert!(fields["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    for hidden in [
        "secret text",
        "answer text",
        "sk-configured-secret",
        "sk-app-own-secret",
    ] {
        assert!(!log.contains(hidden), "{hidden} in the log");
    }

    let off = Sidecar::start(&format!("{provider}telemetry:\n  access_log: false\n")).await;
    chat(&off, body).await;
    // Its trace is kept just after the line would have been written.
    assert_eq!(crate::traces(&off, "").await.len(), 1);
    assert!(!off.log().contains("respan::access"), "{}", off.log());
}
