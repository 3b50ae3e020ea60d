//! The official Python SDKs against the real sidecar (installed by `.ci/run` from
//! `tests/requirements.txt`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use support::{Mock, Sidecar};

/// Runs a Python script from `tests/sdk/` with `SIDECAR_URL` set; fails with its output.
fn run_python(script: &str, sidecar_url: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let output = Command::new("python3")
        .arg(&path)
        .env("SIDECAR_URL", sidecar_url)
        .output()
        .expect("python3 is needed for the SDK tests");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "install the SDKs first: python3 -m pip install -r tests/requirements.txt\n{stderr}"
    );
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_python_sdk() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  mock:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-mock\n  echo:\n    type: echo\n\
         routes:\n  - match: echo\n    provider: echo\n  - match: \"echo-*\"\n    provider: echo\n  - match: \"mock-*\"\n    provider: mock\n",
        mock.url("/v1")
    );
    let sidecar = Sidecar::start(&config).await;
    let url = sidecar.url("/v1");
    tokio::task::spawn_blocking(move || run_python("openai_sdk.py", &url))
        .await
        .unwrap();
    let got = mock.received();
    assert!(got.len() >= 2);
    assert!(got
        .iter()
        .all(|g| g.header("authorization") == Some("Bearer sk-mock")));
    assert!(got
        .iter()
        .all(|g| g.json().get("customer_identifier").is_none()));
}
