//! The metrics as Prometheus reads them: `promtool check metrics` on the exposition, and a
//! real Prometheus server scraping the admin port.

use crate::support::{client, free_port, post_chat, Mock, Sidecar};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn busy_sidecar() -> (Mock, Sidecar) {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n\
         routes:\n  - match: \"gpt-*\"\n    provider: oa\n",
        mock.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    for stream in [false, true] {
        let body = json!({"model": "gpt-4.1", "stream": stream, "customer_identifier": "cust-secret-id",
            "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(post_chat(&sidecar, &body).await.status(), 200);
    }
    let unrouted = json!({"model": "nope", "messages": []});
    assert_eq!(post_chat(&sidecar, &unrouted).await.status(), 404);
    sidecar.idle().await;
    (mock, sidecar)
}

async fn exposition(sidecar: &Sidecar) -> String {
    client()
        .get(sidecar.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_exposition_passes_promtool_and_has_every_contract_metric() {
    let (_mock, sidecar) = busy_sidecar().await;
    let text = exposition(&sidecar).await;
    for name in [
        "respan_requests_total",
        "respan_request_duration_seconds",
        "respan_time_to_first_token_seconds",
        "respan_tokens_total",
        "respan_cost_usd_total",
        "respan_upstream_attempts_total",
        "respan_inflight_requests",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    // Buckets from 10 ms to 10 minutes.
    assert!(text.contains("respan_request_duration_seconds_bucket{endpoint=\"chat.completions\",model=\"gpt-*\",provider=\"oa\",le=\"0.01\"}"));
    assert!(text.contains("le=\"600\""));
    // No customer id in a label; unrouted models are `other`.
    assert!(!text.contains("cust-secret-id"));
    assert!(text.contains("model=\"other\""));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed: .ci/run installs it");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {report}");
    assert!(report.trim().is_empty(), "promtool lint: {report}");
}

/// A Prometheus server killed when dropped (before its data directory goes).
struct Prometheus {
    child: std::process::Child,
    _data: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_admin_port() {
    let (_mock, sidecar) = busy_sidecar().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: respan\n    static_configs:\n      - targets: [\"{}\"]\n",
            sidecar.admin
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package prometheus) must be installed: .ci/run installs it");
    let _prometheus = Prometheus { child, _data: dir };
    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=respan_requests_total%7Bmodel%3D%22gpt-*%22%2Cstatus%3D%22200%22%7D"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client().get(&query).send().await;
        if let Ok(answer) = answer {
            let v: Value = answer.json().await.unwrap_or_default();
            if let Some(sample) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                assert_eq!(sample["metric"]["provider"], "oa");
                assert_eq!(sample["metric"]["endpoint"], "chat.completions");
                assert_eq!(sample["value"][1], "2", "{v}");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never read the counter"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn counters_with_known_labels_are_exported_at_zero_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "providers:\n  e:\n    type: echo\ntelemetry:\n  exporters:\n    - type: jsonl\n      path: \"{}\"\n",
        dir.path().join("t.jsonl").display()
    );
    let sidecar = Sidecar::start(&config).await;
    let scrape = sidecar.metrics().await;
    let zero = |name: &str, labels: &[(&str, &str)]| {
        scrape.samples.iter().any(|s| {
            s.metric == name
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                && matches!(s.value, prometheus_parse::Value::Counter(v) if v == 0.0)
        })
    };
    let expected: &[(&str, &[(&str, &str)])] = &[
        ("respan_config_reloads_total", &[("result", "success")]),
        ("respan_config_reloads_total", &[("result", "failure")]),
        ("respan_cache_lookups_total", &[("result", "hit")]),
        ("respan_cache_lookups_total", &[("result", "miss")]),
        (
            "respan_trace_exports_total",
            &[("exporter", "jsonl"), ("result", "ok")],
        ),
        (
            "respan_trace_exports_total",
            &[("exporter", "jsonl"), ("result", "error")],
        ),
        (
            "respan_trace_exports_total",
            &[("exporter", "jsonl"), ("result", "dropped")],
        ),
        (
            "respan_rejected_requests_total",
            &[("reason", "body_too_large")],
        ),
        ("respan_rejected_requests_total", &[("reason", "too_deep")]),
        (
            "respan_rejected_requests_total",
            &[("reason", "headers_too_large")],
        ),
        (
            "respan_rejected_requests_total",
            &[("reason", "overloaded")],
        ),
        (
            "respan_rejected_requests_total",
            &[("reason", "unauthorized")],
        ),
    ];
    for (name, labels) in expected {
        assert!(zero(name, labels), "{name}{labels:?} is not exported at 0");
    }
}
