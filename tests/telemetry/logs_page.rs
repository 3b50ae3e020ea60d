//! The Logs page in a real headless Chromium: rows for the requests just made appear, and a
//! request's detail view opens with its input, output and attempts.

use crate::support::{client, Mock, Sidecar};
use serde_json::json;
use std::process::Command;

/// The page's DOM after its scripts ran (Chromium's `--dump-dom`, on a fresh profile, with
/// its background networking off: this machine has no network beyond loopback).
fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium (Debian package chromium) must be installed: .ci/run installs it");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn request(sidecar: &Sidecar, body: serde_json::Value) -> String {
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
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
async fn the_logs_page_lists_requests_and_opens_one() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n",
        mock.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let shown = request(
        &sidecar,
        json!({"model": "gpt-4.1", "customer_identifier": "browser-cust",
        "messages": [{"role": "user", "content": "BROWSER <b>TEXT</b>"}]}),
    )
    .await;
    let hidden = request(
        &sidecar,
        json!({"model": "gpt-4.1-mini", "disable_log": true,
        "messages": [{"role": "user", "content": "NEVER-ON-THE-PAGE"}]}),
    )
    .await;
    sidecar.idle().await;

    let page = rendered(&sidecar.admin_url("/"));
    assert!(page.contains("data-loaded=\"true\""), "{page}");
    assert!(page.contains("data-count=\"2\""), "{page}");
    for id in [&shown, &hidden] {
        assert!(
            page.contains(&format!("data-request-id=\"{id}\"")),
            "row {id} missing"
        );
    }
    assert!(page.contains("browser-cust"));
    assert!(page.contains("gpt-4.1-mini"));

    let detail = rendered(&sidecar.admin_url(&format!("/#request={shown}")));
    let section = detail
        .split("<section id=\"detail\"")
        .nth(1)
        .expect("the detail section");
    assert!(
        section.contains(&format!("data-request-id=\"{shown}\"")),
        "{section}"
    );
    assert!(!section.starts_with(" hidden"), "the detail view is open");
    // Text is shown as text: the app's markup is escaped, never interpreted.
    assert!(
        section.contains("BROWSER &lt;b&gt;TEXT&lt;/b&gt;"),
        "{section}"
    );
    assert!(section.contains("mock answer"));
    assert!(section.contains("attempts"));

    let private = rendered(&sidecar.admin_url(&format!("/#request={hidden}")));
    assert!(!private.contains("NEVER-ON-THE-PAGE"));
    assert!(private.contains("not captured"));
}

#[tokio::test]
async fn the_logs_page_charts_the_last_hour_and_shows_limits() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n\
         limits:\n  rules:\n    - {{name: per-model, per: model, window: hour, requests: 10, tokens: 100000}}\n",
        mock.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    for _ in 0..3 {
        request(
            &sidecar,
            json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    }
    // A bad body is an error of this minute too.
    let bad = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    sidecar.idle().await;

    // `/api/stats`: 60 minutes, the last holding these requests.
    let stats = sidecar.admin_json("/api/stats").await;
    let minutes = stats["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let total = |k: &str| minutes.iter().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((total("requests"), total("errors")), (4, 1), "{stats}");
    assert!(total("tokens") > 0);
    assert!(minutes
        .iter()
        .any(|m| m["latency_p95_ms"].as_f64().is_some()));

    let page = rendered(&sidecar.admin_url("/"));
    let charts = page
        .split("<section id=\"charts\"")
        .nth(1)
        .expect("the charts")
        .split("</section>")
        .next()
        .unwrap();
    assert!(charts.contains("data-loaded=\"true\""), "{charts}");
    for (chart, total) in [("requests", "4"), ("errors", "1")] {
        assert!(
            charts.contains(&format!("data-chart=\"{chart}\" data-total=\"{total}\"")),
            "{chart}: {charts}"
        );
    }
    for chart in ["latency", "tokens", "cost"] {
        assert!(
            charts.contains(&format!("data-chart=\"{chart}\"")),
            "{chart}"
        );
    }
    assert!(charts.contains("<rect"), "bars are drawn: {charts}");
    assert!(
        charts.contains("<polyline"),
        "latency lines are drawn: {charts}"
    );

    // The Limits view: the rule's count for the model against its limits.
    let view = rendered(&sidecar.admin_url("/#limits"));
    let limits = view
        .split("<section id=\"limits\"")
        .nth(1)
        .expect("the limits view");
    assert!(!limits.starts_with(" hidden"), "the limits view is shown");
    assert!(
        limits.contains("data-rule=\"per-model\" data-scope=\"gpt-4.1\""),
        "{limits}"
    );
    assert!(limits.contains("3 / 10"), "{limits}");
    assert!(limits.contains("<meter"), "{limits}");
    assert!(
        view.contains("<div id=\"requests\" hidden"),
        "the requests view is hidden"
    );
}
