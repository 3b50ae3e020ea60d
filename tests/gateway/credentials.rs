//! Which key goes upstream: configured, per customer, per model, or the app's own; Azure.

use crate::support::{chat, client, post_chat, Mock, Sidecar};
use serde_json::json;

#[tokio::test]
async fn customer_credentials_and_overrides_replace_the_configured_key() {
    let main = Mock::start().await;
    let other = Mock::start().await;
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-config\nroutes:\n  - match: \"*\"\n    provider: oa\n",
        main.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let send = |extra: serde_json::Value| {
        let mut body = chat("gpt-4o", "hi");
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        client()
            .post(sidecar.url("/v1/chat/completions"))
            .json(&body)
            .send()
    };
    let r = send(json!({"customer_credentials": {"oa": {"api_key": "sk-customer"}}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        main.last().header("authorization"),
        Some("Bearer sk-customer")
    );

    let r = send(
        json!({"customer_credentials": {"oa": {"api_key": "sk-c2", "api_base": other.url("/v1")}}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(other.last().header("authorization"), Some("Bearer sk-c2"));

    let r = send(json!({
        "customer_credentials": {"oa": {"api_key": "sk-customer"}},
        "credential_override": {"gpt-4o": {"api_key": "sk-override"}},
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        main.last().header("authorization"),
        Some("Bearer sk-override")
    );

    let r = send(json!({"customer_credentials": {"oa": {"api_key": "k", "api_base": "ftp://x"}}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-"), "{text}");
    assert_eq!(main.count(), 2);
    assert!(!sidecar.log().contains("sk-customer") && !sidecar.log().contains("sk-override"));
}

#[tokio::test]
async fn without_a_configured_key_the_app_brings_its_own() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\nroutes:\n  - match: \"*\"\n    provider: oa\n",
        mock.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .bearer_auth("sk-app-own")
        .json(&chat("gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        mock.last().header("authorization"),
        Some("Bearer sk-app-own")
    );
}

#[tokio::test]
async fn azure_gets_deployment_urls_api_key_and_version() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  az:\n    type: azure_openai\n    base_url: \"{}\"\n    api_key: az-key\n    api_version: \"2024-10-21\"\n\
         routes:\n  - match: \"gpt-4o\"\n    provider: az\n    upstream_model: prod-gpt4o\n  - match: \"*\"\n    provider: az\n",
        mock.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let r = client()
        .post(sidecar.url("/v1/chat/completions"))
        .bearer_auth("app")
        .json(&chat("gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = mock.last();
    assert_eq!(
        got.path,
        "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(got.header("api-key"), Some("az-key"));
    assert_eq!(got.header("authorization"), None);

    let mut body = json!({"model": "emb", "input": "x"});
    body["customer_credentials"] = json!({"az": {"api_key": "cust", "api_version": "2025-01-01"}});
    body["model_name_map"] = json!({"emb": "emb-deploy"});
    let r = client()
        .post(sidecar.url("/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = mock.last();
    assert_eq!(
        got.path,
        "/openai/deployments/emb-deploy/embeddings?api-version=2025-01-01"
    );
    assert_eq!(got.header("api-key"), Some("cust"));

    let r = post_chat(&sidecar, &chat("bad/../name", "hi")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(mock.count(), 2);
}

/// An https provider: the certificate is verified (against `SSL_CERT_FILE` here, the system
/// store otherwise), with the base URL's host as SNI.
#[tokio::test]
async fn https_providers_are_verified() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let mock = Mock::start_tls(&cert_pem, &key_pem).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let config = format!(
        "providers:\n  tls:\n    type: openai\n    base_url: \"https://localhost:{}/v1\"\n    api_key: sk-tls\n\
         routes:\n  - match: \"*\"\n    provider: tls\n",
        mock.addr.port()
    );
    let trusting =
        Sidecar::start_with_env("", &config, &[("SSL_CERT_FILE", ca.to_str().unwrap())]).await;
    let r = post_chat(&trusting, &chat("gpt-4o", "hi")).await;
    assert_eq!(r.status(), 200);
    let got = mock.last();
    assert_eq!(got.header("authorization"), Some("Bearer sk-tls"));
    assert_eq!(
        got.header("host"),
        Some(format!("localhost:{}", mock.addr.port()).as_str())
    );

    let other = tempfile::NamedTempFile::new().unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(other.path(), stranger.cert.pem()).unwrap();
    let distrusting = Sidecar::start_with_env(
        "",
        &config,
        &[("SSL_CERT_FILE", other.path().to_str().unwrap())],
    )
    .await;
    let mut body = chat("gpt-4o", "hi");
    body["retry_params"] = json!({"retry_enabled": false});
    let r = post_chat(&distrusting, &body).await;
    assert_eq!(r.status(), 502);
    assert_eq!(
        mock.count(),
        1,
        "an unverified upstream must not get the request"
    );
}
