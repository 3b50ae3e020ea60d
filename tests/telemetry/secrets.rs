//! No secret ever leaves the sidecar but toward the provider it is for: every kind of key
//! configured or sent, traffic with failures and a refused reload at `RESPAN_LOG=debug`, then
//! every output scanned. And `admin_token` guards the admin port.

use crate::support::mock::Flavor;
use crate::support::{client, Mock, Reply, Sidecar};
use serde_json::json;
use std::time::Duration;

/// Every secret the test hands the sidecar, each distinct so a leak names its source.
const SECRETS: [&str; 10] = [
    "adm-secret-k1",     // server.admin_token
    "app-secret-k2",     // auth.keys
    "sk-secret-k3",      // a provider's api_key
    "ant-secret-k4",     // a provider's api_key_file
    "rp-secret-k5",      // respan_prompts.api_key
    "rx-secret-k6",      // the respan exporter's api_key
    "cc-secret-k7",      // customer_credentials in a request
    "co-secret-k8",      // credential_override in a request
    "wrong-secret-k9",   // a wrong key an app sent
    "sk-new-secret-k10", // a key in a config that was refused
];

async fn get(sidecar: &Sidecar, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = client().get(sidecar.admin_url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn no_secret_appears_in_any_output() {
    let (openai, respan) = (Mock::start().await, Mock::start().await);
    let anthropic = Mock::start_as(Flavor::Anthropic).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("anthropic-key"), "ant-secret-k4\n").unwrap();
    let jsonl = dir.path().join("traces.jsonl");
    let config = |openai_key: &str| {
        format!(
            "auth:\n  keys:\n    - key: app-secret-k2\n      customer_identifier: team\n\
             providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: \"{openai_key}\"\n\
             \x20 an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key_file: \"{}\"\n\
             routes:\n  - match: \"claude-*\"\n    provider: an\n  - match: \"*\"\n    provider: oa\n\
             respan_prompts:\n  api_key: rp-secret-k5\n  base_url: \"http://127.0.0.1:1/api\"\n\
             telemetry:\n  exporters:\n    - type: jsonl\n      path: \"{}\"\n    - type: respan\n      endpoint: \"{}\"\n      api_key: rx-secret-k6\n",
            openai.url("/v1"),
            anthropic.url(""),
            dir.path().join("anthropic-key").display(),
            jsonl.display(),
            respan.url("/api/request-logs/bulk/"),
        )
    };
    let sidecar = Sidecar::start_with_env(
        "admin_token: adm-secret-k1",
        &config("sk-secret-k3"),
        &[("RESPAN_LOG", "debug")],
    )
    .await;
    let mut bodies = Vec::new();
    let send = |body: serde_json::Value, key: &'static str| {
        let url = sidecar.url("/v1/chat/completions");
        async move {
            let r = client()
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let hi = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    // Served, with the configured keys, a customer's and a one-off override.
    bodies.push(send(hi("gpt-4o"), "app-secret-k2").await);
    bodies.push(send(hi("claude-x"), "app-secret-k2").await);
    let mut customer = hi("gpt-4o");
    customer["customer_credentials"] = json!({"oa": {"api_key": "cc-secret-k7"}});
    bodies.push(send(customer, "app-secret-k2").await);
    let mut override_ = hi("gpt-4o");
    override_["credential_override"] = json!({"gpt-4o": {"api_key": "co-secret-k8"}});
    bodies.push(send(override_, "app-secret-k2").await);
    assert_eq!(
        openai.last().header("authorization"),
        Some("Bearer co-secret-k8")
    );
    // Failures: the provider fails, the app's key is wrong, a managed prompt cannot be
    // fetched with its key, a credential is malformed.
    openai.push(Reply::openai_error(500, "upstream broke"));
    let mut failing = hi("gpt-4o");
    failing["retry_params"] = json!({"retry_enabled": false});
    bodies.push(send(failing, "app-secret-k2").await);
    bodies.push(send(hi("gpt-4o"), "wrong-secret-k9").await);
    let prompt = json!({"prompt": {"prompt_id": "managed-one", "variables": {}}});
    bodies.push(send(prompt, "app-secret-k2").await);
    let mut bad = hi("gpt-4o");
    bad["customer_credentials"] = json!({"oa": {"api_key": "cc-secret-k7\nx"}});
    bodies.push(send(bad, "app-secret-k2").await);
    let statuses: Vec<u16> = bodies.iter().map(|(s, _)| *s).collect();
    assert_eq!(&statuses[..4], &[200, 200, 200, 200], "{bodies:?}");
    assert!(statuses[4..].iter().all(|s| *s >= 400), "{bodies:?}");
    // A refused reload whose config holds a key that cannot be sent.
    sidecar.rewrite_config(&config("sk-new-secret-k10\\nx"));
    let started = std::time::Instant::now();
    loop {
        let (_, view) = get(&sidecar, "/config", Some("adm-secret-k1")).await;
        let view: serde_json::Value = serde_json::from_str(&view).unwrap();
        if view["last_reload_error"].is_string() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no refused reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything the sidecar wrote, everywhere.
    let token = Some("adm-secret-k1");
    let mut outputs: Vec<(String, String)> = Vec::new();
    for path in [
        "/config",
        "/metrics",
        "/api/traces?limit=100",
        "/",
        "/api/health",
    ] {
        let (status, text) = get(&sidecar, path, token).await;
        assert_eq!(status, 200, "{path}");
        outputs.push((path.to_string(), text));
    }
    let started = std::time::Instant::now();
    while respan.count() == 0
        || std::fs::read_to_string(&jsonl)
            .unwrap_or_default()
            .lines()
            .count()
            < 8
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "exporters did not write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outputs.push(("jsonl".into(), std::fs::read_to_string(&jsonl).unwrap()));
    for r in respan.received() {
        assert_eq!(r.header("authorization"), Some("Bearer rx-secret-k6"));
        outputs.push((
            "respan exporter body".into(),
            String::from_utf8_lossy(&r.body).into_owned(),
        ));
    }
    for (status, body) in &bodies {
        outputs.push((format!("answer {status}"), body.clone()));
    }
    outputs.push(("stderr".into(), sidecar.log()));
    for (what, text) in &outputs {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} leaked in {what}:\n{text}");
        }
    }
    // The log was really at debug level, and the refusal really logged.
    let log = sidecar.log();
    assert!(log.contains("DEBUG"), "not at debug level");
    assert!(log.contains("config reload refused"));
}

#[tokio::test]
async fn admin_token_guards_every_admin_path_but_the_probes() {
    let sidecar = Sidecar::start_with_server(
        "admin_token: adm-secret-k1",
        "providers:\n  e:\n    type: echo\n",
    )
    .await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(&sidecar, path, None).await.0, 200, "{path}");
    }
    for path in ["/metrics", "/config", "/api/traces", "/api/health", "/"] {
        assert_eq!(get(&sidecar, path, None).await.0, 401, "{path}");
        assert_eq!(get(&sidecar, path, Some("wrong")).await.0, 401, "{path}");
        assert_eq!(
            get(&sidecar, path, Some("adm-secret-k1")).await.0,
            200,
            "{path}"
        );
    }
    // The scheme in any case, as for the API port's keys.
    let r = client()
        .get(sidecar.admin_url("/api/limits"))
        .header("authorization", "BEARER adm-secret-k1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
