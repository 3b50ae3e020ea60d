//! `respan-sidecar inject` and `uninject`: Kubernetes manifests in, the same manifests out,
//! with the sidecar added to (or taken out of) every pod template annotated
//! `respan.ai/inject: "true"`. Like `linkerd inject`, the output can be piped into
//! `kubectl apply -f -`. The admission webhook applies the same change to pods.

pub(crate) mod pod;

use serde::Deserialize;
use serde_yaml::Value;

/// What is done to each pod template that asks for the sidecar (`inject`) or has it
/// (`uninject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Inject,
    Uninject,
}

/// Applies `change` to every YAML document of `text`; the documents come out in order,
/// those without a pod to change as they went in (re-serialised: comments are not kept).
pub fn documents(text: &str, change: Change) -> Result<String, String> {
    let mut out = String::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut doc = Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if doc.is_null() {
            continue;
        }
        apply(&mut doc, change).map_err(|e| format!("document {}: {e}", i + 1))?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(&doc).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Applies `change` to the pod templates of one object (a `List`'s items too).
pub fn apply(object: &mut Value, change: Change) -> Result<(), String> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = kind.as_str();
    if kind == "List" || kind.ends_with("List") {
        if let Some(Value::Sequence(items)) = object.get_mut("items") {
            for item in items {
                apply(item, change)?;
            }
        }
        return Ok(());
    }
    let Some(pod) = pod_of(object, kind) else {
        return Ok(());
    };
    match change {
        Change::Inject if pod::wants_sidecar(pod) => pod::inject(pod),
        Change::Uninject => pod::uninject(pod),
        Change::Inject => Ok(()),
    }
}

/// The pod (its `metadata` and `spec`) an object of `kind` runs, if any.
fn pod_of<'a>(object: &'a mut Value, kind: &str) -> Option<&'a mut Value> {
    let path: &[&str] = match kind {
        "Pod" => &[],
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => &["spec", "template"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        _ => return None,
    };
    path.iter()
        .try_fold(object, |v, key| v.get_mut(*key))
        .filter(|pod| pod.is_mapping())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    metadata:\n      annotations:\n        respan.ai/inject: \"true\"\n    spec:\n      containers:\n        - name: app\n          image: app:1\n          env:\n            - name: OPENAI_BASE_URL\n              value: http://elsewhere/v1\n";

    #[test]
    fn injects_once_keeps_the_app_s_own_env_and_uninjects_back() {
        let once = documents(APP, Change::Inject).unwrap();
        assert_eq!(
            documents(&once, Change::Inject).unwrap(),
            once,
            "idempotent"
        );
        let v: Value = serde_yaml::from_str(&once).unwrap();
        let spec = &v["spec"]["template"]["spec"];
        assert_eq!(spec["initContainers"][0]["name"], "respan-sidecar");
        assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");
        let env = spec["containers"][0]["env"].as_sequence().unwrap();
        assert_eq!(
            env[0]["value"], "http://elsewhere/v1",
            "set by the app: kept"
        );
        assert_eq!(env[1]["name"], "ANTHROPIC_BASE_URL");
        let back = documents(&once, Change::Uninject).unwrap();
        assert_eq!(back, documents(APP, Change::Uninject).unwrap());
        let back: Value = serde_yaml::from_str(&back).unwrap();
        assert_eq!(back, serde_yaml::from_str::<Value>(APP).unwrap());
    }

    #[test]
    fn leaves_what_does_not_ask_and_names_a_bad_document() {
        let plain = APP.replace("\"true\"", "\"false\"");
        let out = documents(&plain, Change::Inject).unwrap();
        assert_eq!(
            serde_yaml::from_str::<Value>(&out).unwrap(),
            serde_yaml::from_str::<Value>(&plain).unwrap()
        );
        let bad = format!("{APP}---\nkind: Pod\nspec: [1\n");
        let e = documents(&bad, Change::Inject).unwrap_err();
        assert!(e.starts_with("document 2"), "{e}");
        let odd = "kind: Pod\nmetadata:\n  annotations:\n    respan.ai/inject: \"true\"\nspec:\n  containers: 3\n";
        assert!(documents(odd, Change::Inject).is_err());
    }
}
