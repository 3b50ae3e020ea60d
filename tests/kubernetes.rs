//! Kubernetes: `inject` and `uninject` on fixture manifests of every kind against expected
//! output files, idempotence, the `k8s/` manifests and every injected output validated
//! offline against the Kubernetes JSON schemas (`kubernetes-validate`, installed by .ci/run),
//! `check` on the ConfigMap's config, and the webhook's manifests agreeing with each other and
//! with the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::run_with_stdin as run;

const FIXTURES: [&str; 6] = [
    "deployment",
    "statefulset",
    "daemonset",
    "job-and-cronjob",
    "pod-and-list",
    "not-annotated",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/k8s").join(name)
}

/// `respan-sidecar <verb> -f -` on `input`: its stdout, or a panic with its stderr.
fn sidecar(verb: &str, input: &str) -> String {
    let out = run(&[verb, "-f", "-"], input);
    assert!(
        out.status.success(),
        "{verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn inject_gives_the_expected_output_for_every_kind_and_is_idempotent() {
    for name in FIXTURES {
        let original = read(&fixture(&format!("{name}.yaml")));
        let expected = read(&fixture(&format!("{name}.injected.yaml")));
        // -f FILE and stdin give the same.
        let from_file = Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
            .args(["inject", "-f"])
            .arg(fixture(&format!("{name}.yaml")))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&from_file.stdout),
            expected,
            "{name}"
        );
        let injected = sidecar("inject", &original);
        assert_eq!(injected, expected, "{name}: inject");
        assert_eq!(sidecar("inject", &injected), injected, "{name}: twice");
        assert_eq!(
            documents(&sidecar("uninject", &injected)),
            documents(&original),
            "{name}: uninject gives the original back"
        );
    }
}

#[test]
fn only_annotated_pods_get_the_sidecar() {
    let out = documents(&read(&fixture("not-annotated.injected.yaml")));
    assert_eq!(out, documents(&read(&fixture("not-annotated.yaml"))));
    let out = read(&fixture("deployment.injected.yaml"));
    assert_eq!(out.matches("name: respan-sidecar\n").count(), 1);
}

#[test]
fn bad_input_is_a_clear_error_naming_the_document() {
    let out = Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
        .args(["inject", "-f", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.yaml"));
    let out = run(&["inject"], "kind: Pod\n---\nkind: [1\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("document 2"), "{err}");
}

#[test]
fn the_example_app_is_exactly_what_inject_gives() {
    let app = read(&root().join("k8s/app.yaml"));
    assert_eq!(documents(&sidecar("inject", &app)), documents(&app));
    let plain = sidecar("uninject", &app);
    assert!(!plain.contains("respan-sidecar"), "{plain}");
}

#[test]
fn every_manifest_and_injected_output_passes_the_kubernetes_schemas() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.extend(FIXTURES.map(|n| fixture(&format!("{n}.injected.yaml"))));
    files.sort();
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .expect("kubernetes-validate (PyPI) must be installed: .ci/run installs it");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    // Only kinds with no schema in Kubernetes itself may go unchecked.
    for line in report.lines().filter(|l| l.starts_with("WARN")) {
        assert!(
            ["PodMonitor", "List", "Issuer", "Certificate"]
                .iter()
                .any(|kind| line.contains(&format!("kind {kind} "))),
            "{line}"
        );
    }
    assert!(report.matches("passed").count() >= files.len(), "{report}");
}

#[test]
fn the_config_map_s_config_checks() {
    let map: Value = serde_yaml::from_str(&read(&root().join("k8s/config.yaml"))).unwrap();
    let config = map["data"]["respan-sidecar.yaml"].as_str().unwrap();
    // The Secret's files, as the kubelet mounts them.
    let dir = tempfile::tempdir().unwrap();
    for key in ["openai", "anthropic"] {
        std::fs::write(dir.path().join(key), "sk-test").unwrap();
    }
    let config = config.replace("/var/run/respan-sidecar/keys", dir.path().to_str().unwrap());
    let path = dir.path().join("respan-sidecar.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "config OK\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The pod's grace period outlasts the sidecar's drain.
    let app: Value = serde_yaml::from_str(&read(&root().join("k8s/app.yaml"))).unwrap();
    let grace = app["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(config_grace_ms(&read(&path)) < grace * 1000);
}

fn config_grace_ms(config: &str) -> u64 {
    let v: Value = serde_yaml::from_str(config).unwrap();
    v["server"]["shutdown_grace_ms"].as_u64().unwrap()
}

/// The one object of `kind` in `docs`.
fn object<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut of_kind = docs.iter().filter(|d| d["kind"] == kind);
    let found = of_kind.next().unwrap_or_else(|| panic!("no {kind}"));
    assert!(of_kind.next().is_none(), "one {kind}");
    found
}

#[test]
fn the_webhook_manifests_agree_with_each_other_and_the_binary() {
    let docs = documents(&read(&root().join("k8s/webhook.yaml")));
    let certs = documents(&read(&root().join("k8s/webhook-cert-manager.yaml")));
    let (service, deployment) = (object(&docs, "Service"), object(&docs, "Deployment"));
    let config = object(&docs, "MutatingWebhookConfiguration");
    let hook = &config["webhooks"][0];
    let target = &hook["clientConfig"]["service"];
    assert_eq!(target["name"], service["metadata"]["name"]);
    assert_eq!(target["namespace"], service["metadata"]["namespace"]);
    assert_eq!(target["path"], "/mutate");
    assert_eq!(target["port"], service["spec"]["ports"][0]["port"]);
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["sideEffects"], "None");

    let pod = &deployment["spec"]["template"];
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"],
        container["ports"][0]["name"]
    );
    let certificate = object(&certs, "Certificate");
    assert_eq!(
        pod["spec"]["volumes"][0]["secret"]["secretName"],
        certificate["spec"]["secretName"]
    );
    let ns = service["metadata"]["namespace"].as_str().unwrap();
    let host = format!("{}.{ns}.svc", service["metadata"]["name"].as_str().unwrap());
    assert!(certificate["spec"]["dnsNames"]
        .as_sequence()
        .unwrap()
        .contains(&host.into()));
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("{ns}/{}", certificate["metadata"]["name"].as_str().unwrap()).as_str()
    );

    // The container's args are the binary's: it gets as far as reading the mounted
    // certificate (absent here), not a usage error.
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/etc/respan-webhook/tls.crt"), "{err}");
}
