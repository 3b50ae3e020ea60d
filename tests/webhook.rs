//! The admission webhook (`respan-sidecar webhook`) over real HTTPS with real
//! `AdmissionReview` JSON: a pod that asks is patched, and the patch applied to it gives what
//! `inject` gives; other requests are allowed unchanged; a pod that cannot take the sidecar is
//! allowed with a warning; what is no review gets a 400 and the webhook goes on; a renewed
//! certificate is served without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A certificate for `localhost` and its key, as PEM.
fn certificate() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (cert.cert.pem(), cert.key_pair.serialize_pem())
}

/// A running webhook, killed when dropped.
struct Webhook {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Webhook {
    fn spawn(cert: &str, key: &str) -> Webhook {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        let port = support::free_port();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
            .arg("webhook")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Webhook { child, port, dir }
    }

    /// Started, and answering over TLS to a client that trusts `cert`.
    async fn start(cert: &str, key: &str) -> Webhook {
        let webhook = Webhook::spawn(cert, key);
        let client = trusting(cert);
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get(webhook.url("/healthz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "{}", webhook.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        webhook
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client whose only root is `cert`.
fn trusting(cert: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .https_only(true)
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A pod as the apiserver sends it for review: defaulted, with the service account volume
/// it adds, an init container of its own, and no name yet (a ReplicaSet's pod).
fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "app-7d4b9c-",
            "namespace": "apps",
            "labels": {"app": "app"},
            "annotations": annotations,
        },
        "spec": {
            "initContainers": [{"name": "migrate", "image": "app:1", "args": ["migrate"]}],
            "containers": [{
                "name": "app",
                "image": "app:1",
                "env": [{"name": "LOG", "value": "debug"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
            }],
            "volumes": [{"name": "kube-api-access-x1", "projected": {"sources": []}}],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
        },
    })
}

fn review(kind: &str, operation: &str, object: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": kind},
            "namespace": "apps",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    })
}

/// Posts a review; the status and the answer's `response`.
async fn send(client: &reqwest::Client, webhook: &Webhook, body: &Value) -> (u16, Value) {
    let r = client
        .post(webhook.url("/mutate"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let answer: Value = r.json().await.unwrap();
    if status == 200 {
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(
            answer["response"]["uid"], body["request"]["uid"],
            "the uid is answered back"
        );
        assert_eq!(answer["response"]["allowed"], true, "nothing is denied");
    }
    (status, answer["response"].clone())
}

/// The pod with the answer's JSONPatch applied.
fn patched(pod: &Value, response: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut pod = pod.clone();
    json_patch::patch(&mut pod, &patch).unwrap();
    pod
}

/// What `respan-sidecar inject` makes of the pod (JSON is YAML), as JSON.
fn injected_by_the_cli(pod: &Value) -> Value {
    let out = support::run_with_stdin(&["inject"], &pod.to_string());
    assert!(out.status.success());
    let yaml: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    serde_json::to_value(yaml).unwrap()
}

#[tokio::test]
async fn a_pod_that_asks_is_patched_to_what_inject_gives() {
    let (cert, key) = certificate();
    let webhook = Webhook::start(&cert, &key).await;
    let client = trusting(&cert);
    let asks = pod(json!({"respan.ai/inject": "true", "team": "a"}));
    let (status, response) = send(&client, &webhook, &review("Pod", "CREATE", &asks)).await;
    assert_eq!(status, 200);
    let injected = patched(&asks, &response);
    assert_eq!(injected, injected_by_the_cli(&asks));
    let spec = &injected["spec"];
    assert_eq!(spec["initContainers"][0]["name"], "respan-sidecar");
    assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");
    assert_eq!(spec["initContainers"][1]["name"], "migrate");
    assert_eq!(spec["containers"][0]["env"][0]["name"], "LOG");
    assert_eq!(
        spec["containers"][0]["env"][1],
        json!({"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:8080/v1"})
    );
    assert_eq!(spec["volumes"][0]["name"], "kube-api-access-x1");
    assert_eq!(injected["metadata"]["annotations"]["team"], "a");
    assert_eq!(
        injected["metadata"]["annotations"]["prometheus.io/port"],
        "9464"
    );

    // Reinvoked (or already injected by the CLI): nothing more to do.
    let (_, again) = send(&client, &webhook, &review("Pod", "CREATE", &injected)).await;
    assert_eq!(again, json!({"uid": again["uid"], "allowed": true}));
}

#[tokio::test]
async fn everything_else_is_allowed_as_it_is() {
    let (cert, key) = certificate();
    let webhook = Webhook::start(&cert, &key).await;
    let client = trusting(&cert);
    let asks = pod(json!({"respan.ai/inject": "true"}));
    let others = [
        review("Pod", "CREATE", &pod(json!({"team": "a"}))),
        review("Pod", "CREATE", &pod(json!({"respan.ai/inject": "false"}))),
        review("Pod", "UPDATE", &asks),
        review("Deployment", "CREATE", &asks),
    ];
    for other in &others {
        let (status, response) = send(&client, &webhook, other).await;
        assert_eq!(status, 200);
        assert_eq!(
            response,
            json!({"uid": other["request"]["uid"], "allowed": true}),
            "{other}"
        );
    }

    let mut odd = asks.clone();
    odd["spec"]["containers"] = json!({"name": "app"});
    let (status, response) = send(&client, &webhook, &review("Pod", "CREATE", &odd)).await;
    assert_eq!(status, 200);
    assert!(response.get("patch").is_none(), "{response}");
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(warning.contains("not injected"), "{warning}");
    assert!(webhook.log().contains("not injected"), "{}", webhook.log());
}

#[tokio::test]
async fn what_is_no_review_gets_a_400_and_the_webhook_goes_on() {
    let (cert, key) = certificate();
    let webhook = Webhook::start(&cert, &key).await;
    let client = trusting(&cert);
    let bodies: [&[u8]; 4] = [
        b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": ",
        b"[1, 2]",
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{}}}"#,
    ];
    for body in bodies {
        let r = client
            .post(webhook.url("/mutate"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let answer: Value = r.json().await.unwrap();
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    let head = "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                content-length: 9437184\r\n\r\n";
    let answer = raw_tls(&cert, webhook.port, head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let r = client.get(webhook.url("/mutate")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = client.get(webhook.url("/other")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client.get(webhook.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "still serving");
}

/// Sends `head` (a request head announcing a body it never sends) over TLS and reads the
/// answer to the end.
async fn raw_tls(cert: &str, port: u16, head: &str) -> String {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types::pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer to an oversized review");
    String::from_utf8_lossy(&answer).to_string()
}

/// The way the kubelet updates a mounted Secret: the new files appear at once (a rename).
fn replace(path: &Path, text: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, text).unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let (old_cert, old_key) = certificate();
    let webhook = Webhook::start(&old_cert, &old_key).await;
    let (new_cert, new_key) = certificate();
    let renewed = trusting(&new_cert);
    assert!(
        renewed.get(webhook.url("/healthz")).send().await.is_err(),
        "not trusted before the renewal"
    );
    // A half-written renewal (the key only) keeps the old pair in force.
    replace(&webhook.file("tls.key"), &new_key);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let old = trusting(&old_cert);
    assert_eq!(
        old.get(webhook.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    replace(&webhook.file("tls.crt"), &new_cert);
    let deadline = Instant::now() + Duration::from_secs(5);
    while renewed.get(webhook.url("/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "{}", webhook.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(webhook.log().contains("webhook certificate reloaded"));
}

#[tokio::test]
async fn a_bad_key_stops_it_at_start_and_sigterm_stops_it_cleanly() {
    let (cert, _) = certificate();
    let secret =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
    let mut bad = Webhook::spawn(&cert, secret);
    let status = bad.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let log = bad.log();
    assert!(log.contains("tls.key"), "{log}");
    assert!(
        !log.contains("c2VjcmV0"),
        "the key stays out of the log: {log}"
    );

    let (cert, key) = certificate();
    let mut webhook = Webhook::start(&cert, &key).await;
    let pid = webhook.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = webhook.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}: {}", webhook.log());
}
