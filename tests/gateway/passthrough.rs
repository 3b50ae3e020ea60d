//! Other `/v1/...` paths go untouched to the first openai provider.

use crate::support::{client, Mock, Reply, Sidecar};

#[tokio::test]
async fn other_paths_pass_through_with_the_provider_key() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  echo:\n    type: echo\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-pass\n",
        mock.url("/openai/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    mock.push(
        Reply::status(200, serde_json::json!({"data": []})).with_header("server", "upstream/1.0"),
    );
    let r = client()
        .get(sidecar.url("/v1/files?purpose=batch"))
        .bearer_auth("app")
        .header("x-data-respan-params", "e30=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-respan-provider"], "oa");
    assert!(r.headers().get("server").is_none(), "{:?}", r.headers());
    assert_eq!(r.headers()["x-respan-request-id"].len(), 32);
    let got = mock.last();
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("GET", "/openai/v1/files?purpose=batch")
    );
    assert_eq!(got.header("authorization"), Some("Bearer sk-pass"));
    assert_eq!(got.header("x-data-respan-params"), None);
    assert_eq!(got.header("host"), Some(mock.addr.to_string().as_str()));

    // A body far over 64 KiB streams through untouched.
    let upload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = client()
        .post(sidecar.url("/v1/audio/transcriptions"))
        .header("content-type", "application/octet-stream")
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = mock.last();
    assert_eq!(got.path, "/openai/v1/audio/transcriptions");
    assert!(got.body == upload, "the upload was changed");
}

#[tokio::test]
async fn passthrough_without_an_openai_provider_is_a_404_naming_it_and_a_down_one_502() {
    let sidecar = Sidecar::start("providers:\n  echo:\n    type: echo\n").await;
    let r = client().get(sidecar.url("/v1/files")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "provider_not_found");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("/v1/files") && message.contains("openai"),
        "{message}"
    );
    let port = crate::support::free_port();
    let down = Sidecar::start(&format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"http://127.0.0.1:{port}/v1\"\n"
    ))
    .await;
    let r = client().get(down.url("/v1/files")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");
}
