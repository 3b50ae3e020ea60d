//! One `AdmissionReview` (admission.k8s.io/v1) in, its answer out. A pod being created that
//! asks for the sidecar gets the change `inject` makes, as a JSONPatch; every other request is
//! allowed as it is. Nothing is ever denied: a pod that cannot be patched is allowed unchanged
//! with a warning (kubectl shows it), so the webhook can never stop an app from starting.

use crate::inject::pod;
use base64::Engine;
use serde_json::{json, Value};

/// What was done to the object under review, for the answer and the log line.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Not a pod being created, or a pod that does not ask for the sidecar (or has it).
    Unchanged,
    Patched(json_patch::Patch),
    /// A pod that asks for the sidecar but cannot take it; why.
    NotInjected(String),
}

/// The answer to a review, or (for a body that is no review at all) what is wrong with it,
/// for a 400.
pub fn answer(body: &[u8]) -> Result<Value, String> {
    let review: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return Err("expected an admission.k8s.io/v1 AdmissionReview".into());
    }
    let request = &review["request"];
    let uid = request["uid"]
        .as_str()
        .ok_or("the AdmissionReview has no request.uid")?;
    let outcome = decide(request);
    log(request, &outcome);
    let mut response = json!({"uid": uid, "allowed": true});
    match outcome {
        Outcome::Unchanged => {}
        Outcome::Patched(patch) => {
            let patch = serde_json::to_vec(&patch).map_err(|e| e.to_string())?;
            response["patchType"] = "JSONPatch".into();
            response["patch"] = base64::engine::general_purpose::STANDARD
                .encode(patch)
                .into();
        }
        Outcome::NotInjected(why) => {
            response["warnings"] = json!([format!("respan-sidecar not injected: {why}")]);
        }
    }
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// Injects into a pod being created that asks for it; the patch is the difference.
fn decide(request: &Value) -> Outcome {
    let creates_pod = request["kind"]["kind"] == "Pod" && request["operation"] == "CREATE";
    let Some(object) = request.get("object").filter(|_| creates_pod) else {
        return Outcome::Unchanged;
    };
    let mut pod: serde_yaml::Value = match serde_yaml::to_value(object) {
        Ok(pod) => pod,
        Err(e) => return Outcome::NotInjected(e.to_string()),
    };
    if !pod::wants_sidecar(&pod) {
        return Outcome::Unchanged;
    }
    if let Err(e) = pod::inject(&mut pod) {
        return Outcome::NotInjected(e);
    }
    match serde_json::to_value(&pod) {
        Ok(injected) => {
            let patch = json_patch::diff(object, &injected);
            if patch.0.is_empty() {
                Outcome::Unchanged
            } else {
                Outcome::Patched(patch)
            }
        }
        Err(e) => Outcome::NotInjected(e.to_string()),
    }
}

/// One line per review: which pod, and what was done. A pod from a controller has only a
/// `generateName` when it is reviewed.
fn log(request: &Value, outcome: &Outcome) {
    let metadata = &request["object"]["metadata"];
    let name = metadata["name"]
        .as_str()
        .or_else(|| metadata["generateName"].as_str())
        .unwrap_or_default();
    let namespace = request["namespace"].as_str().unwrap_or_default();
    match outcome {
        Outcome::Unchanged => tracing::debug!(namespace, name, "admission review: unchanged"),
        Outcome::Patched(_) => tracing::info!(namespace, name, "admission review: injected"),
        Outcome::NotInjected(why) => {
            tracing::warn!(namespace, name, "admission review: not injected: {why}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(operation: &str, annotations: Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": operation,
                "namespace": "apps",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"generateName": "app-", "annotations": annotations},
                    "spec": {"containers": [{"name": "app", "image": "app:1"}]},
                },
            },
        })
    }

    fn respond(review: &Value) -> Value {
        answer(&serde_json::to_vec(review).unwrap()).unwrap()["response"].clone()
    }

    #[test]
    fn patches_a_created_pod_that_asks_and_nothing_else() {
        let asks = json!({"respan.ai/inject": "true"});
        let patched = respond(&review("CREATE", asks.clone()));
        assert_eq!(patched["uid"], "u-1");
        assert_eq!(patched["allowed"], true);
        assert_eq!(patched["patchType"], "JSONPatch");
        for other in [
            review("UPDATE", asks),
            review("CREATE", json!({"respan.ai/inject": "false"})),
        ] {
            let response = respond(&other);
            assert_eq!(response, json!({"uid": "u-1", "allowed": true}));
        }
    }

    #[test]
    fn a_pod_that_cannot_take_the_sidecar_is_allowed_with_a_warning() {
        let mut odd = review("CREATE", json!({"respan.ai/inject": "true"}));
        odd["request"]["object"]["spec"]["containers"] = json!(3);
        let response = respond(&odd);
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none());
        assert_eq!(
            response["warnings"][0],
            "respan-sidecar not injected: `containers` is not a list"
        );
    }

    #[test]
    fn what_is_no_review_is_said_so() {
        for (body, says) in [
            (&b"{"[..], "not JSON"),
            (br#"{"kind":"AdmissionReview"}"#, "expected an admission"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#,
                "no request.uid",
            ),
        ] {
            let e = answer(body).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
