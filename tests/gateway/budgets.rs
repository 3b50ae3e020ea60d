//! `limits:` rules: requests counted per key, refused past the limit with a 429 in the
//! caller's format and OpenAI's rate limit headers; budgets; alerts; `/api/limits`.
#![allow(clippy::disallowed_methods)] // tokio::spawn runs the client loops of the load tests.

use crate::support::{chat, client, Mock, Reply, Sidecar};
use serde_json::{json, Value};

fn config(mock: &Mock, rules: &str) -> String {
    format!(
        "auth:\n  keys:\n    - {{name: team-a, key: tok-a}}\n    - {{name: team-b, key: tok-b}}\n\
         providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n\
         routes:\n  - match: \"*\"\n    provider: oa\nlimits:\n  rules:\n{rules}",
        mock.url("/v1")
    )
}

async fn ask(sidecar: &Sidecar, key: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(sidecar.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A chat request for gpt-4o with the bearer `key`.
async fn chat_as(sidecar: &Sidecar, key: &str) -> reqwest::Response {
    ask(sidecar, key, "/v1/chat/completions", &chat("gpt-4o", "hi")).await
}

#[tokio::test]
async fn requests_per_key_are_limited_with_a_429_and_rate_limit_headers() {
    let mock = Mock::start().await;
    let rules = "    - {name: per-key, per: key, window: minute, requests: 2}\n    - {name: watch, per: global, window: day, requests: 1, action: alert}\n";
    let sidecar = Sidecar::start(&config(&mock, rules)).await;
    let decided = |result: &'static str| [("rule", "per-key"), ("result", result)];
    // Exported at 0 before the first request.
    let scrape = sidecar.metrics().await;
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "respan_limit_decisions_total"
            && s.labels.get("rule") == Some("per-key")
            && s.labels.get("result") == Some("blocked")));
    for remaining in ["1", "0"] {
        let r = chat_as(&sidecar, "tok-a").await;
        assert_eq!(r.status(), 200);
        // The tightest rule that can refuse (`watch` only alerts).
        assert_eq!(r.headers()["x-ratelimit-limit-requests"], "2");
        assert_eq!(r.headers()["x-ratelimit-remaining-requests"], remaining);
    }
    let r = chat_as(&sidecar, "tok-a").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "2");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("per-key") && !message.contains("tok-a"),
        "{message}"
    );
    assert_eq!(mock.count(), 2, "a refused request reaches no provider");
    // Another key has its own count; Anthropic's path answers in Anthropic's shape.
    assert_eq!(chat_as(&sidecar, "tok-b").await.status(), 200);
    assert_eq!(chat_as(&sidecar, "tok-b").await.status(), 200);
    let anthropic = json!({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let r = ask(&sidecar, "tok-b", "/api/anthropic/v1/messages", &anthropic).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("rate_limit_error"))
    );
    assert_eq!(
        sidecar
            .metric("respan_limit_decisions_total", &decided("allowed"))
            .await,
        4.0
    );
    assert_eq!(
        sidecar
            .metric("respan_limit_decisions_total", &decided("blocked"))
            .await,
        2.0
    );
    // The alert-only rule never blocked; it alerted once, and the trace says so.
    let alerts = [("rule", "watch"), ("result", "alert")];
    assert!(
        sidecar
            .metric("respan_limit_decisions_total", &alerts)
            .await
            >= 1.0
    );
    let traces = sidecar.traces("limit=100").await;
    assert!(
        traces.iter().any(|t| t["limit_alerts"] == json!(["watch"])),
        "{traces:?}"
    );
    // `/api/limits`: each scope value's count.
    let view: Value = sidecar.admin_json("/api/limits").await;
    let per_key: Vec<&Value> = view["limits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rule"] == "per-key")
        .collect();
    assert_eq!(per_key.len(), 2, "{view}");
    assert_eq!(per_key[0]["scope"], "team-a");
    assert_eq!(per_key[0]["used"]["requests"], 2);
    assert!(per_key[0]["resets_at"].is_string());
}

/// A request the gateway cannot route is answered before the limits count it.
#[tokio::test]
async fn a_request_that_cannot_be_routed_is_not_counted() {
    let mock = Mock::start().await;
    let rules = "    - {name: one, per: key, window: day, requests: 1}\n";
    let sidecar = Sidecar::start(&config(&mock, rules)).await;
    let mut lost = chat("gpt-4o", "hi");
    lost["load_balance_group"] = json!({"group_id": "no-such-group"});
    let path = "/v1/chat/completions";
    let r = ask(&sidecar, "tok-a", path, &lost).await;
    assert!(
        r.status().is_client_error() && r.status() != 429,
        "{}",
        r.status()
    );
    assert_eq!(chat_as(&sidecar, "tok-a").await.status(), 200);
    assert_eq!(chat_as(&sidecar, "tok-a").await.status(), 429);
}

#[tokio::test]
async fn a_spent_budget_is_a_429_budget_exceeded() {
    let mock = Mock::start().await;
    let rules = "    - {name: tiny, per: customer, window: month, cost_usd: 0.000000001}\n";
    let sidecar = Sidecar::start(&config(&mock, rules)).await;
    let mut body = chat("gpt-4o", "hi");
    body["customer_identifier"] = json!("cust-1");
    let r = ask(&sidecar, "tok-a", "/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 429);
    assert!(!r.headers().contains_key("x-ratelimit-limit-tokens"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_exceeded");
    assert!(v["error"]["message"].as_str().unwrap().contains("tiny"));
    // A request without a customer is not in that rule's scope.
    let r = chat_as(&sidecar, "tok-a").await;
    assert_eq!(r.status(), 200);
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn a_fleet_on_one_redis_admits_exactly_the_limit() {
    let redis = crate::support::Redis::start_on(crate::support::free_port()).await;
    let mock = Mock::start().await;
    let rules = format!(
        "    - {{name: fleet, per: global, window: day, requests: 60, alert_at: 0.5}}\n  backend: redis\n  on_backend_error: deny\n  redis_url: \"redis://127.0.0.1:{}\"\n",
        redis.port
    );
    // `rules:` comes last in `config`: the backend keys follow its list.
    let config = config(&mock, &rules);
    let fleet = [
        Sidecar::start(&config).await,
        Sidecar::start(&config).await,
        Sidecar::start(&config).await,
    ];
    let mut calls = Vec::new();
    for i in 0..200 {
        let url = fleet[i % 3].url("/v1/chat/completions");
        calls.push(async move {
            client()
                .post(url)
                .bearer_auth("tok-a")
                .json(&chat("gpt-4o", "hi"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let statuses = futures::future::join_all(calls).await;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    // A call Redis answers slower than 50 ms counts as Redis down (here: deny, 503). It may
    // still have counted the request, so then fewer than the limit are admitted, never more.
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(admitted + refused + unavailable, 200, "{statuses:?}");
    assert!(
        admitted <= 60 && admitted + unavailable >= 60,
        "{statuses:?}"
    );
    if unavailable == 0 {
        assert_eq!(admitted, 60);
    }
    assert_eq!(
        mock.count(),
        admitted,
        "exactly the admitted requests reached the provider"
    );
    // The alert threshold (30 of 60) is crossed once for the whole fleet: one sidecar
    // raises it, not each.
    let mut alerts = 0.0;
    for sidecar in &fleet {
        sidecar.idle().await;
        let labels = [("rule", "fleet"), ("result", "alert")];
        alerts += sidecar
            .metric("respan_limit_decisions_total", &labels)
            .await;
    }
    // (A sidecar that gave up on a slow Redis call may have been the one told to raise it.)
    if unavailable == 0 {
        assert_eq!(alerts, 1.0, "alerts raised across the fleet");
    } else {
        assert!(alerts <= 1.0, "{alerts} alerts raised across the fleet");
    }
    eprintln!("fleet of 3: {admitted} admitted, {refused} refused, {unavailable} unavailable");
}

#[tokio::test]
async fn without_redis_on_backend_error_decides() {
    let mock = Mock::start().await;
    let port = crate::support::free_port();
    for (decision, status) in [("allow", 200), ("deny", 503)] {
        let rules = format!(
            "    - {{name: r, per: global, window: day, requests: 5}}\n  backend: redis\n  redis_url: \"redis://127.0.0.1:{port}\"\n  on_backend_error: {decision}\n"
        );
        let sidecar = Sidecar::start(&config(&mock, &rules)).await;
        let started = std::time::Instant::now();
        let r = chat_as(&sidecar, "tok-a").await;
        assert_eq!(r.status(), status, "{decision}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

#[tokio::test]
async fn a_reload_keeps_the_counts_of_unchanged_rules() {
    let mock = Mock::start().await;
    let rules = "    - {name: kept, per: global, window: day, requests: 3}\n    - {name: changed, per: global, window: day, requests: 3}\n";
    let sidecar = Sidecar::start(&config(&mock, rules)).await;
    for _ in 0..2 {
        let r = chat_as(&sidecar, "tok-a").await;
        assert_eq!(r.status(), 200);
    }
    // `changed` moves to another window (a new count); `kept` keeps its 2 of 3.
    let reloaded = "    - {name: kept, per: global, window: day, requests: 3}\n    - {name: changed, per: global, window: week, requests: 3}\n";
    sidecar.rewrite_config(&config(&mock, reloaded));
    sidecar.signal("HUP");
    let started = std::time::Instant::now();
    loop {
        let view: Value = sidecar.admin_json("/api/limits").await;
        let windows: Vec<&str> = view["limits"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["window"].as_str())
            .collect();
        // Reloaded: only `kept` has counts until `changed` counts in its new window.
        if windows == ["day"] {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = chat_as(&sidecar, "tok-a").await;
    assert_eq!(r.status(), 200, "the third of `kept`'s three");
    let r = chat_as(&sidecar, "tok-a").await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`kept`"),
        "{v}"
    );
}

#[tokio::test]
async fn a_customers_respan_budget_applies_to_its_later_requests_too() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&config(&mock, "    []\n")).await;
    let with = |params: Value| {
        let mut body = chat("gpt-4o", "hi");
        body["customer_params"] = params;
        body
    };
    let path = "/v1/chat/completions";
    let limited = with(json!({"customer_identifier": "cust-9", "rate_limit": 2}));
    assert_eq!(ask(&sidecar, "tok-a", path, &limited).await.status(), 200);
    // The latest values a request sent for the customer apply to its requests without them.
    let mut plain = chat("gpt-4o", "hi");
    plain["customer_identifier"] = json!("cust-9");
    assert_eq!(ask(&sidecar, "tok-a", path, &plain).await.status(), 200);
    let r = ask(&sidecar, "tok-a", path, &plain).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("customer_rate_limit"),
        "{v}"
    );
    // Another customer is not limited; a spent period budget is a budget_exceeded.
    let other = with(
        json!({"customer_identifier": "cust-10", "period_budget": 0.000000001, "budget_duration": "daily"}),
    );
    let r = ask(&sidecar, "tok-a", path, &other).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_exceeded");
    assert_eq!(mock.count(), 2);
    // A third customer's rate limit of its own: /api/limits shows each against its own.
    let third = with(json!({"customer_identifier": "cust-11", "rate_limit": 7}));
    assert_eq!(ask(&sidecar, "tok-a", path, &third).await.status(), 200);
    let view: Value = sidecar.admin_json("/api/limits").await;
    let rate = |customer: &str| {
        view["limits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rule"] == "customer_rate_limit" && l["scope"] == customer)
            .cloned()
            .unwrap_or_else(|| panic!("{customer}: {view}"))
    };
    assert_eq!(rate("cust-9")["used"]["requests"], 2, "{view}");
    assert_eq!(rate("cust-9")["limits"]["requests"], 2, "{view}");
    assert_eq!(rate("cust-11")["limits"]["requests"], 7, "{view}");
    let spent = view["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["scope"] == "cust-10");
    assert_eq!(spent.unwrap()["limits"]["cost_usd"], 0.000000001, "{view}");
}

#[tokio::test]
async fn an_alert_is_posted_to_the_webhook_off_the_request_path_and_retried() {
    let mock = Mock::start().await;
    let hook = Mock::start().await;
    // The receiver first fails, then takes 2 s to answer: neither slows a request.
    hook.push(Reply::status(503, json!({})));
    hook.push(Reply::Delay(
        std::time::Duration::from_secs(2),
        Box::new(Reply::status(200, json!({}))),
    ));
    let rules = format!(
        "    - {{name: half, per: key, window: day, requests: 4, alert_at: 0.5}}\n  alert_webhook: \"{}\"\n",
        hook.url("/alerts")
    );
    let sidecar = Sidecar::start(&config(&mock, &rules)).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let r = chat_as(&sidecar, "tok-a").await;
        assert_eq!(r.status(), 200);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Once per rule, scope value and window: the second request crossed 50%, the third did
    // not alert again. The 503 was tried again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hook.count() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let posts = hook.received();
    assert_eq!(posts.len(), 2, "{posts:?}");
    for post in &posts {
        assert_eq!(
            (post.method.as_str(), post.path.as_str()),
            ("POST", "/alerts")
        );
        assert_eq!(post.header("content-type"), Some("application/json"));
        let alert = post.json();
        assert_eq!(alert["rule"], "half");
        assert_eq!(alert["scope"], "team-a");
        assert_eq!(alert["limit"], 4.0);
        assert_eq!(alert["used"], 2.0);
        assert!(alert["window_reset"].is_string(), "{alert}");
        assert!(!post.body.windows(5).any(|w| w == b"tok-a"));
    }
}

#[tokio::test]
async fn redis_killed_and_restarted_under_load() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let port = crate::support::free_port();
    let redis = crate::support::Redis::start_on(port).await;
    let mock = Mock::start().await;
    let rules = format!(
        "    - {{name: r, per: global, window: day, requests: 5}}\n  backend: redis\n  on_backend_error: allow\n  redis_url: \"redis://127.0.0.1:{port}\"\n"
    );
    let sidecar = Sidecar::start(&config(&mock, &rules)).await;
    // Four clients in a loop, each answer's status and time noted.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(Instant, u16, Duration)>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, seen) = (
                sidecar.url("/v1/chat/completions"),
                stop.clone(),
                seen.clone(),
            );
            // One client per worker: a client made per request costs more than the request.
            let http = client();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let body = chat("gpt-4o", "hi");
                    let r = http.post(&url).bearer_auth("tok-a").json(&body).send();
                    let r = r.await.unwrap();
                    let took = started.elapsed();
                    seen.lock()
                        .unwrap()
                        .push((started, r.status().as_u16(), took));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    drop(redis);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let restarted_at = Instant::now();
    let _redis = crate::support::Redis::start_on(port).await;
    // The restarted Redis is empty: once the sidecar is back on it, 5 more are admitted
    // and the rule refuses again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refused_again = seen
            .lock()
            .unwrap()
            .iter()
            .any(|(at, status, _)| *at > restarted_at && *status == 429);
        if refused_again {
            break;
        }
        assert!(Instant::now() < deadline, "the rule never applied again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    let admitted = seen.iter().filter(|(_, s, _)| *s == 200).count();
    // Before the kill: 5 admitted, the rest refused. (Under `allow`, a Redis call that
    // timed out admits without counting: only a request that took that long can be one.)
    let before: Vec<(u16, Duration)> = seen
        .iter()
        .filter(|(at, _, took)| *at + *took < killed_at)
        .map(|(_, s, took)| (*s, *took))
        .collect();
    let admitted_before = before.iter().filter(|(s, _)| *s == 200).count();
    let uncounted = before
        .iter()
        .filter(|(s, took)| *s == 200 && *took >= Duration::from_millis(50))
        .count();
    assert!(
        (5..=5 + uncounted).contains(&admitted_before) && before.iter().any(|(s, _)| *s == 429),
        "{before:?}"
    );
    // While Redis was down, `allow` admitted; no answer took long, none failed otherwise.
    let down = seen
        .iter()
        .filter(|(at, _, _)| *at > killed_at + Duration::from_millis(100) && *at < restarted_at);
    assert!(down.clone().count() > 0 && down.clone().all(|(_, s, _)| *s == 200));
    assert!(
        seen.iter().all(|(_, s, _)| *s == 200 || *s == 429),
        "{seen:?}"
    );
    let slowest = seen.iter().map(|(_, _, took)| *took).max().unwrap();
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    // Exactly the admitted requests reached the provider.
    assert_eq!(mock.count(), admitted);
    let mean = |from: Instant, to: Instant| {
        let phase: Vec<Duration> = seen
            .iter()
            .filter(|(at, _, _)| *at >= from && *at < to)
            .map(|(_, _, took)| *took)
            .collect();
        phase.iter().sum::<Duration>() / phase.len().max(1) as u32
    };
    let first = seen.iter().map(|(at, _, _)| *at).min().unwrap();
    eprintln!(
        "redis killed and restarted: {} requests, {admitted} admitted, slowest {slowest:?}, mean up {:?}, down {:?}, after {:?}",
        seen.len(),
        mean(first, killed_at),
        mean(killed_at, restarted_at),
        mean(restarted_at, Instant::now()),
    );
}

#[tokio::test]
async fn a_budget_fits_exactly_its_requests_under_concurrency() {
    let mock = Mock::start().await;
    // A dollar a token: a request's cost is its token count. Each answer uses exactly what
    // admission reserved for it (its body's bytes / 4 in, `max_tokens` out).
    let mut body = chat("priced", "what does a budget hold?");
    body["max_tokens"] = json!(5);
    let prompt = serde_json::to_vec(&body).unwrap().len() as u64 / 4;
    let cost = (prompt + 5) as f64;
    let fits = 5;
    for _ in 0..40 {
        mock.push(Reply::status(
            200,
            json!({"id": "c", "object": "chat.completion", "created": 1, "model": "priced",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": 5, "total_tokens": prompt + 5}}),
        ));
    }
    let config = format!(
        "auth:\n  keys:\n    - {{name: team-a, key: tok-a}}\n\
         providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n\
         routes:\n  - match: \"*\"\n    provider: oa\n    pricing: {{input_per_million: 1000000, output_per_million: 1000000}}\n\
         limits:\n  rules:\n    - {{name: budget, per: global, window: month, cost_usd: {}}}\n",
        mock.url("/v1"),
        cost * fits as f64 * (1.0 + 1e-9),
    );
    let sidecar = Sidecar::start(&config).await;
    let url = sidecar.url("/v1/chat/completions");
    let http = client();
    // 20 at once: reservations keep them from overshooting together.
    let calls = (0..20).map(|_| {
        let request = http.post(&url).bearer_auth("tok-a").json(&body).send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(calls).await;
    let first = statuses.iter().filter(|s| **s == 200).count();
    assert!(first >= 1 && first <= fits, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // Then one at a time until refused: exactly the budget's requests were admitted.
    let mut admitted = first;
    loop {
        let status = http.post(&url).bearer_auth("tok-a").json(&body).send();
        match status.await.unwrap().status().as_u16() {
            200 => admitted += 1,
            429 => break,
            other => panic!("{other}"),
        }
        assert!(admitted <= fits, "over the budget");
    }
    assert_eq!(admitted, fits);
    assert_eq!(
        mock.count(),
        fits,
        "every admitted request reached the provider once"
    );
    // Settled: what they cost, nothing left reserved, never over the budget.
    let view = sidecar.admin_json("/api/limits").await;
    let budget = &view["limits"][0];
    assert_eq!(
        budget["used"]["cost_usd"].as_f64(),
        Some(cost * fits as f64),
        "{view}"
    );
    assert_eq!(budget["reserved"]["cost_usd"].as_f64(), Some(0.0), "{view}");
}

#[tokio::test]
async fn a_sliding_minute_in_redis_frees_room_as_its_buckets_leave() {
    use respan_sidecar::config::limits::{limits, RawLimits};
    use respan_sidecar::limits::redis::{Decision, Fleet, Settlement};
    use respan_sidecar::limits::{Ask, Kind};
    use std::time::{Duration, SystemTime};
    let redis = crate::support::Redis::start_on(crate::support::free_port()).await;
    let raw: RawLimits = serde_yaml::from_str(
        "rules:\n  - {name: m, per: global, window: minute, requests: 3, tokens: 1000}\n  - {name: skew, per: global, window: minute, requests: 100}\n",
    )
    .unwrap();
    let mut problems = Vec::new();
    let config = limits(raw, None, &mut problems);
    assert!(problems.is_empty());
    let fleet = Fleet::new(&format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    let matched = &[(&config.rules[0], String::new())];
    let t0 = 1_765_000_020;
    let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(t0 + s);
    let ask = Ask {
        tokens: 100,
        cost_usd: 0.0,
    };
    let mut held = Vec::new();
    for s in [0, 10, 20] {
        match fleet.admit(matched, ask, at(s)).await.unwrap() {
            Decision::Admitted(used, h) => {
                assert_eq!(used[0].requests, held.len() as u64 + 1);
                held.push(h);
            }
            Decision::Refused(..) => panic!("refused at {s}"),
        }
    }
    // Full: refused, and room frees when the oldest bucket (t0) leaves, 60 s on.
    let Decision::Refused(0, Kind::Requests, first) =
        fleet.admit(matched, ask, at(30)).await.unwrap()
    else {
        panic!("admitted past the limit")
    };
    assert_eq!(first, (t0) as i64);
    // The first request used 50 tokens; the others settle after their buckets left.
    let settle = |held: Vec<_>, tokens: u64| Settlement {
        held,
        ask,
        tokens,
        cost_usd: 0.0,
    };
    let mut held = held.into_iter();
    let first_held = held.next().unwrap();
    fleet.settle(&[settle(first_held, 50)]).await.unwrap();
    let admit = |s: u64| {
        let fleet = &fleet;
        async move { fleet.admit(matched, ask, at(s)).await.unwrap() }
    };
    // t0 left the window: room for one.
    let Decision::Admitted(used, _) = admit(61).await else {
        panic!("t0's bucket did not leave")
    };
    // Counted: t10, t20, t61; tokens: two reservations in flight and this one's.
    assert_eq!((used[0].requests, used[0].tokens), (3, 300));
    assert!(matches!(
        admit(62).await,
        Decision::Refused(0, Kind::Requests, _)
    ));
    assert!(matches!(admit(71).await, Decision::Admitted(..)));
    // Settled after its bucket left: its tokens are outside the window, not counted.
    fleet
        .settle(&[settle(held.next().unwrap(), 70)])
        .await
        .unwrap();
    // Much later everything has left: the whole limit is free again.
    for s in [500, 501, 502] {
        assert!(matches!(admit(s).await, Decision::Admitted(..)), "{s}");
    }
    assert!(matches!(admit(503).await, Decision::Refused(..)));
    // A sidecar whose clock is behind counts in the oldest bucket still summed, so the sum
    // lets it go with that bucket: once all has left, the next request is counted alone.
    let skew = &[(&config.rules[1], String::new())];
    let used_at = |s: u64| {
        let fleet = &fleet;
        async move {
            match fleet.admit(skew, ask, at(s)).await.unwrap() {
                Decision::Admitted(used, _) => used[0].requests,
                Decision::Refused(..) => panic!("refused at {s}"),
            }
        }
    };
    assert_eq!(used_at(1000).await, 1);
    assert_eq!(used_at(1010).await, 2);
    assert_eq!(used_at(1069).await, 2, "1000 left the window");
    assert_eq!(used_at(1005).await, 3, "a clock 65 s behind");
    assert_eq!(used_at(1200).await, 1, "every earlier count left the sum");
}

/// A reservation whose key faded (an hour after it was first written) is settled without
/// taking it back below nothing: the reservations of requests still in flight stay counted.
#[tokio::test]
async fn a_settlement_after_the_reservations_faded_hides_no_later_reservation() {
    use respan_sidecar::config::limits::{limits, RawLimits};
    use respan_sidecar::limits::redis::{Decision, Fleet, Settlement};
    use respan_sidecar::limits::Ask;
    use std::time::SystemTime;
    let redis = crate::support::Redis::start_on(crate::support::free_port()).await;
    let raw: RawLimits =
        serde_yaml::from_str("rules:\n  - {name: d, per: global, window: day, tokens: 1000000}\n")
            .unwrap();
    let mut problems = Vec::new();
    let config = limits(raw, None, &mut problems);
    assert!(problems.is_empty());
    let fleet = Fleet::new(&format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    let matched = &[(&config.rules[0], String::new())];
    let ask = Ask {
        tokens: 100,
        cost_usd: 0.5,
    };
    let admit = || async {
        match fleet.admit(matched, ask, SystemTime::now()).await.unwrap() {
            Decision::Admitted(used, held) => (used[0].tokens, held),
            Decision::Refused(..) => panic!("refused"),
        }
    };
    let (_, first) = admit().await;
    // The reservations' key fades while the first request is in flight.
    let redis::Value::Array(keys) = redis.command(&["KEYS", "*:r"]) else {
        panic!("no reservation key")
    };
    let redis::Value::BulkString(key) = &keys[0] else {
        panic!("{keys:?}")
    };
    let key = String::from_utf8(key.clone()).unwrap();
    redis.command(&["DEL", &key]);
    let settlement = Settlement {
        held: first,
        ask,
        tokens: 0,
        cost_usd: 0.0,
    };
    fleet.settle(&[settlement]).await.unwrap();
    // Two later requests in flight: both reservations count (200 tokens with the second).
    assert_eq!(admit().await.0, 100);
    assert_eq!(admit().await.0, 200, "a reservation was hidden");
    // And the key fades again: it has an expiry.
    let redis::Value::Int(ttl) = redis.command(&["TTL", &key]) else {
        panic!("no TTL")
    };
    assert!(ttl > 0, "{ttl}");
}

#[tokio::test]
async fn a_refusal_is_in_the_format_of_each_ingress() {
    let mock = Mock::start().await;
    let gemini = Mock::start_as(crate::support::mock::Flavor::Gemini).await;
    let config = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: \"{}\"\n    api_key: sk-x\n  gm:\n    type: gemini\n    base_url: \"{}\"\n    api_key: g-x\n\
         routes:\n  - match: \"gemini-*\"\n    provider: gm\n  - match: \"*\"\n    provider: oa\n\
         limits:\n  rules:\n    - {{name: one, per: global, window: day, requests: 1}}\n",
        mock.url("/v1"),
        gemini.url(""),
    );
    let sidecar = Sidecar::start(&config).await;
    let r = chat_as(&sidecar, "").await;
    assert_eq!(r.status(), 200);
    // The Responses API: OpenAI's error shape, the rule's code.
    let r = ask(
        &sidecar,
        "",
        "/v1/responses",
        &json!({"model": "gpt-4o", "input": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    // Gemini's own path: Gemini's error shape.
    let path = "/api/google/gemini/v1beta/models/gemini-2.5-flash:generateContent";
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let r = ask(&sidecar, "", path, &body).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"]["code"].as_u64(), v["error"]["status"].as_str()),
        (Some(429), Some("RESOURCE_EXHAUSTED")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("one"));
    assert_eq!((mock.count(), gemini.count()), (1, 0));
}
