//! Load-balance groups: weights, inline groups, order on failure, least latency.

use crate::support::{Mock, Reply, Sidecar};
use crate::{body, post, provider};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

async fn pool(strategy: &str, mock: &Mock) -> Sidecar {
    let config = format!(
        "providers:\n{}load_balance_groups:\n  pool:\n    strategy: {strategy}\n    models:\n      - {{model: model-a, weight: 3}}\n      - {{model: model-b, weight: 1}}\n\
         routes:\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &mock.url("/v1"))
    );
    Sidecar::start(&config).await
}

fn served(mock: &Mock) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in mock.received() {
        *counts
            .entry(r.json()["model"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn weights_hold_over_many_requests() {
    let mock = Mock::start().await;
    let sidecar = pool("weighted", &mock).await;
    let n = 400;
    for _ in 0..n {
        let request = json!({"messages": [{"role": "user", "content": "hi"}], "load_balance_group": {"group_id": "pool"}});
        assert_eq!(post(&sidecar, &request).await.0, 200);
    }
    let a = served(&mock)["model-a"] as f64;
    // Binomial(400, 0.75): mean 300, sd 8.7; 4 sd either side.
    assert!((a - 300.0).abs() < 35.0, "model-a served {a} of {n}");
}

#[tokio::test]
async fn inline_groups_named_models_and_failure_order() {
    let mock = Mock::start().await;
    let sidecar = pool("weighted", &mock).await;
    let inline = json!({"messages": [{"role": "user", "content": "hi"}],
        "load_balance_group": {"group_id": "adhoc", "models": [{"model": "inline-x", "weight": 1}]}});
    let (_, headers, _) = post(&sidecar, &inline).await;
    assert_eq!(headers["x-respan-model"], "inline-x");
    // A model named in the request wins over the group's pick.
    let named = body(
        "model-b",
        json!({"load_balance_group": {"group_id": "pool"}}),
    );
    for _ in 0..10 {
        assert_eq!(post(&sidecar, &named).await.1["x-respan-model"], "model-b");
    }
    // On failure the group's other member comes before fallback_models.
    mock.push(Reply::openai_error(500, "down"));
    let failing = body(
        "model-a",
        json!({"load_balance_group": {"group_id": "pool"}, "fallback_models": ["last-resort"],
        "retry_params": {"retry_enabled": false}}),
    );
    let before = mock.count();
    let (status, headers, _) = post(&sidecar, &failing).await;
    assert_eq!(
        (status, &headers["x-respan-model"]),
        (200, &"model-b".parse().unwrap())
    );
    let tried: Vec<String> = mock.received()[before..]
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tried, ["model-a", "model-b"]);
    let unknown = json!({"messages": [], "load_balance_group": {"group_id": "nope"}});
    let (status, _, text) = post(&sidecar, &unknown).await;
    assert_eq!(status, 404, "{text}");
}

#[tokio::test]
async fn least_latency_steers_to_the_faster_member() {
    let fast = Mock::start().await;
    let slow = Mock::start().await;
    for _ in 0..60 {
        slow.push(Reply::Delay(
            Duration::from_millis(150),
            Box::new(Reply::openai_chat("slow-model", "slow")),
        ));
    }
    let config = format!(
        "providers:\n{}{}load_balance_groups:\n  quick:\n    strategy: least_latency\n    models:\n      - {{model: slow-model}}\n      - {{model: fast-model}}\n\
         routes:\n  - match: slow-model\n    provider: slow\n  - match: \"*\"\n    provider: oa\n",
        provider("oa", "openai", &fast.url("/v1")),
        provider("slow", "openai", &slow.url("/v1"))
    );
    let sidecar = Sidecar::start(&config).await;
    for _ in 0..40 {
        let request = json!({"messages": [{"role": "user", "content": "hi"}], "load_balance_group": {"group_id": "quick"}});
        assert_eq!(post(&sidecar, &request).await.0, 200);
    }
    // Both are tried at first; afterwards the two-choice draw always compares both, so the
    // faster one wins nearly every time.
    assert!(
        fast.count() >= 34,
        "fast {} slow {}",
        fast.count(),
        slow.count()
    );
}
