//! `cache_enabled`: identical requests answered once by the provider, then from the cache.

use crate::openai_config;
use crate::support::{client, post_chat, post_json, Mock, Redis, Sidecar};
use serde_json::{json, Value};
use std::time::Duration;

fn cached(text: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}],
           "temperature": 0, "cache_enabled": true})
}

async fn ask(sidecar: &Sidecar, body: &Value) -> (String, Value) {
    let response = post_chat(sidecar, body).await;
    assert_eq!(response.status(), 200);
    let state = response.headers()["x-respan-cache"]
        .to_str()
        .unwrap()
        .to_string();
    (state, response.json().await.unwrap())
}

#[tokio::test]
async fn identical_requests_reach_the_provider_once() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let (state, first) = ask(&sidecar, &cached("hi")).await;
    assert_eq!(state, "miss");
    for _ in 0..3 {
        let (state, again) = ask(&sidecar, &cached("hi")).await;
        assert_eq!(state, "hit");
        assert_eq!(again, first);
    }
    // The same request in another key order and spacing is the same entry.
    let reordered = r#"{ "cache_enabled": true, "temperature": 0,
        "messages": [ {"content": "hi", "role": "user"} ], "model": "gpt-4o" }"#;
    let response = client()
        .post(sidecar.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-respan-cache"], "hit");
    assert_eq!(mock.count(), 1);
    // Another conversation is another entry; without cache_enabled there is no lookup.
    assert_eq!(ask(&sidecar, &cached("ho")).await.0, "miss");
    let mut plain = cached("hi");
    plain["cache_enabled"] = json!(false);
    let response = post_chat(&sidecar, &plain).await;
    assert!(response.headers().get("x-respan-cache").is_none());
    assert_eq!(mock.count(), 3);
    sidecar.idle().await;
    let hits = sidecar
        .metric("respan_cache_lookups_total", &[("result", "hit")])
        .await;
    let misses = sidecar
        .metric("respan_cache_lookups_total", &[("result", "miss")])
        .await;
    assert_eq!((hits, misses), (4.0, 2.0));
    let traces = sidecar.traces("limit=10").await;
    let hit = traces
        .iter()
        .find(|t| t["cache_hit"] == true)
        .unwrap()
        .clone();
    assert_eq!(hit["cost_usd"], 0.0);
    assert!(hit["cost_saved_usd"].as_f64().unwrap() > 0.0, "{hit}");
    // omit_log: a hit leaves no trace (it is still counted).
    let before = traces.len();
    let mut quiet = cached("hi");
    quiet["cache_options"] = json!({"omit_log": true});
    assert_eq!(ask(&sidecar, &quiet).await.0, "hit");
    assert_eq!(sidecar.traces("limit=10").await.len(), before);
    assert_eq!(hit["provider"], "mock");
    assert!(hit["attempts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn entries_expire_and_are_scoped_and_failures_are_not_kept() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    // A failure is not stored.
    mock.push(crate::support::Reply::openai_error(400, "refused"));
    let response = post_chat(&sidecar, &cached("a")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(ask(&sidecar, &cached("a")).await.0, "miss");
    assert_eq!(ask(&sidecar, &cached("a")).await.0, "hit");
    // cache_ttl: gone after it.
    let mut short = cached("b");
    short["cache_ttl"] = json!(1);
    assert_eq!(ask(&sidecar, &short).await.0, "miss");
    assert_eq!(ask(&sidecar, &short).await.0, "hit");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(ask(&sidecar, &short).await.0, "miss");
    // cache_by_customer: each customer their own entry; without it, one shared.
    let for_customer = |c: &str| {
        let mut body = cached("c");
        body["customer_identifier"] = json!(c);
        body["cache_options"] = json!({"cache_by_customer": true});
        body
    };
    assert_eq!(ask(&sidecar, &for_customer("x")).await.0, "miss");
    assert_eq!(ask(&sidecar, &for_customer("y")).await.0, "miss");
    assert_eq!(ask(&sidecar, &for_customer("x")).await.0, "hit");
    // A request with its own credentials never looks up or stores.
    let mut own = cached("a");
    own["customer_credentials"] = json!({"mock": {"api_key": "sk-own"}});
    let response = post_chat(&sidecar, &own).await;
    assert!(response.headers().get("x-respan-cache").is_none());
    assert_eq!(mock.last().header("authorization"), Some("Bearer sk-own"));
}

#[tokio::test]
async fn sidecars_share_answers_through_redis_and_survive_its_outage() {
    let redis = Redis::start_on(crate::support::free_port()).await;
    let mock = Mock::start().await;
    let config = format!(
        "{}cache:\n  backend: redis\n  redis_url: \"redis://127.0.0.1:{}\"\n",
        openai_config(&mock),
        redis.port
    );
    let (a, b) = (Sidecar::start(&config).await, Sidecar::start(&config).await);
    // Answers are kept in memory too once Redis's invalidations are tracked.
    tracking(&a).await;
    tracking(&b).await;
    assert_eq!(ask(&a, &cached("shared")).await.0, "miss");
    stored(&redis, 1).await;
    let (state, from_b) = ask(&b, &cached("shared")).await;
    assert_eq!(state, "hit", "b serves what a stored");
    assert_eq!(from_b["choices"][0]["message"]["content"], "mock answer");
    assert_eq!(mock.count(), 1);
    // Redis goes away: every request still succeeds, promptly, as a miss.
    let port = redis.port;
    drop(redis);
    for i in 0..5 {
        let started = std::time::Instant::now();
        assert_eq!(ask(&a, &cached(&format!("down {i}"))).await.0, "miss");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(a.metric("respan_cache_errors_total", &[]).await > 0.0);
    // Without Redis nothing says what was deleted from it: memory is not served either.
    assert_eq!(ask(&a, &cached("shared")).await.0, "miss");
    assert_eq!(ask(&b, &cached("shared")).await.0, "miss");
    assert_eq!(mock.count(), 8);
    // Redis is back: hits resume.
    let _redis = Redis::start_on(port).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        ask(&a, &cached("again")).await;
        if ask(&b, &cached("again")).await.0 == "hit" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no hit after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until a sidecar tracks Redis's invalidations (its near cache serves from then on).
async fn tracking(sidecar: &Sidecar) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !sidecar.log().contains("tracking Redis invalidations") {
        assert!(std::time::Instant::now() < deadline, "{}", sidecar.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until Redis holds `n` cached answers: a sidecar stores an answer after it has
/// answered, so the next step must not race that store.
async fn stored(redis: &Redis, n: usize) {
    let started = std::time::Instant::now();
    loop {
        match redis.command(&["KEYS", "respan:cache:*"]) {
            redis::Value::Array(keys) if keys.len() == n => return,
            keys => assert!(
                started.elapsed() < Duration::from_secs(3),
                "not {n} answers stored: {keys:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks until the answer is a miss. Redis tells within milliseconds; the bound leaves room
/// for a CI machine running every test at once.
async fn miss_within_a_second(sidecar: &Sidecar, body: &Value) {
    let started = std::time::Instant::now();
    while ask(sidecar, body).await.0 != "miss" {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a deleted entry was still served after {:?}; its log:\n{}",
            started.elapsed(),
            sidecar.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_entry_deleted_from_redis_stops_being_served_by_every_sidecar() {
    let redis = Redis::start_on(crate::support::free_port()).await;
    let mock = Mock::start().await;
    let config = format!(
        "{}cache:\n  backend: redis\n  redis_url: \"redis://127.0.0.1:{}\"\n",
        openai_config(&mock),
        redis.port
    );
    let (a, b) = (Sidecar::start(&config).await, Sidecar::start(&config).await);
    tracking(&a).await;
    tracking(&b).await;
    // Each answer stored by one sidecar and served from both near caches.
    for text in ["one", "two", "three"] {
        assert_eq!(ask(&a, &cached(text)).await.0, "miss");
        for _ in 0..2 {
            assert_eq!(ask(&b, &cached(text)).await.0, "hit");
            assert_eq!(ask(&a, &cached(text)).await.0, "hit");
        }
    }
    assert_eq!(mock.count(), 3);
    // An operator deletes one entry: no sidecar serves it any more.
    let keys = redis.command(&["KEYS", "respan:cache:*"]);
    let redis::Value::Array(keys) = keys else {
        panic!("{keys:?}")
    };
    assert_eq!(keys.len(), 3);
    let redis::Value::BulkString(key) = &keys[0] else {
        panic!("{keys:?}")
    };
    let before = mock.count();
    redis.command(&["DEL", std::str::from_utf8(key).unwrap()]);
    // Whichever answer that was, b asks the provider for it again within a second.
    let started = std::time::Instant::now();
    'found: loop {
        for text in ["one", "two", "three"] {
            if ask(&b, &cached(text)).await.0 == "miss" {
                break 'found;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(3), "still served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.count(), before + 1, "one DEL, one new upstream call");
    // b stores that answer again after it has answered: before the FLUSHALL below, or
    // that store could land after it (and rightly be served from then on).
    stored(&redis, 3).await;
    // FLUSHALL: nothing is served from any near cache.
    redis.command(&["FLUSHALL"]);
    miss_within_a_second(&a, &cached("one")).await;
    miss_within_a_second(&b, &cached("two")).await;
    stored(&redis, 2).await;
    assert_eq!(ask(&a, &cached("two")).await.0, "hit", "b stored it again");
}

/// `n` identical cacheable requests at once; their statuses and `x-respan-cache` headers.
async fn at_once(sidecar: &Sidecar, n: usize) -> Vec<(u16, String)> {
    let body = cached("together");
    let sends = (0..n).map(|_| async {
        let response = post_chat(sidecar, &body).await;
        let state = response
            .headers()
            .get("x-respan-cache")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (response.status().as_u16(), state)
    });
    futures::future::join_all(sends).await
}

#[tokio::test]
async fn identical_requests_in_flight_make_one_upstream_call() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let slow = || {
        crate::support::Reply::Delay(
            Duration::from_millis(300),
            Box::new(crate::support::Reply::openai_chat("gpt-4o", "once")),
        )
    };
    mock.push(slow());
    let answers = at_once(&sidecar, 5).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let misses = answers.iter().filter(|(_, s)| s == "miss").count();
    assert_eq!((misses, mock.count()), (1, 1), "{answers:?}");
}

#[tokio::test]
async fn when_the_leader_fails_the_others_ask_for_themselves() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    // Long enough for all three to arrive while it runs, even on a loaded machine.
    mock.push(crate::support::Reply::Delay(
        Duration::from_millis(1000),
        Box::new(crate::support::Reply::openai_error(400, "refused")),
    ));
    let answers = at_once(&sidecar, 3).await;
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    // Each asked for itself, unless the other's answer was stored by the time it woke.
    assert_eq!(ok, 2, "{answers:?}");
    assert!((2..=3).contains(&mock.count()), "{answers:?}");
}

/// The JSON of each data event of an SSE body (the `[DONE]` marker apart).
fn data_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// A streamed answer: its `x-respan-cache` state and its SSE text.
async fn ask_streamed(sidecar: &Sidecar, path: &str, body: &Value) -> (String, String) {
    let response = post_json(sidecar, path, body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let state = response.headers()["x-respan-cache"]
        .to_str()
        .unwrap()
        .to_string();
    (state, response.text().await.unwrap())
}

/// The text an OpenAI stream tells, and the ids its chunks carry.
fn openai_text(sse: &str) -> (String, Vec<String>) {
    let events = data_events(sse);
    let text = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    let ids = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    (text, ids)
}

#[tokio::test]
async fn a_stream_is_kept_and_replayed_as_a_stream_or_a_whole_answer_and_the_reverse() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let path = "/v1/chat/completions";
    let mut streamed = cached("stream me");
    streamed["stream"] = json!(true);
    let (state, first) = ask_streamed(&sidecar, path, &streamed).await;
    assert_eq!(state, "miss");
    let (text, first_ids) = openai_text(&first);
    assert_eq!(text, "mock answer");

    // A hit, told as a stream again: the same text and finish, a fresh id, no usage chunk
    // since none was asked for.
    let (state, again) = ask_streamed(&sidecar, path, &streamed).await;
    assert_eq!(state, "hit");
    let (text, ids) = openai_text(&again);
    assert_eq!(text, "mock answer");
    assert_ne!(ids[0], first_ids[0]);
    assert!(ids.iter().all(|id| *id == ids[0]), "one id per stream");
    let events = data_events(&again);
    assert!(events.iter().all(|e| e.get("usage").is_none()));
    assert_eq!(
        events.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(again.ends_with("data: [DONE]\n\n"));

    // Asked with the usage chunk, it comes (the counts the gateway read for itself).
    streamed["stream_options"] = json!({"include_usage": true});
    let (state, with_usage) = ask_streamed(&sidecar, path, &streamed).await;
    assert_eq!(state, "hit");
    let usage = data_events(&with_usage).last().unwrap()["usage"].clone();
    assert_eq!(usage["total_tokens"], 7, "{with_usage}");

    // The same request not streamed: the whole answer the stream told.
    let (state, whole) = ask(&sidecar, &cached("stream me")).await;
    assert_eq!(state, "hit");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"], "mock answer");
    assert_eq!(whole["usage"]["total_tokens"], 7);

    // The reverse: a whole answer kept, then asked for as a stream.
    let (state, whole) = ask(&sidecar, &cached("whole first")).await;
    assert_eq!(state, "miss");
    let mut streamed = cached("whole first");
    streamed["stream"] = json!(true);
    let (state, replayed) = ask_streamed(&sidecar, path, &streamed).await;
    assert_eq!(state, "hit");
    let (text, _) = openai_text(&replayed);
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(mock.count(), 2);
    let traces = sidecar.traces("limit=10").await;
    let hit = traces
        .iter()
        .find(|t| t["cache_hit"] == true && t["stream"] == true)
        .unwrap();
    assert_eq!(hit["output"]["content"], "mock answer", "{hit}");
}

#[tokio::test]
async fn an_anthropic_stream_translated_from_openai_is_kept_in_its_own_format() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let path = "/api/anthropic/v1/messages";
    let body = json!({"model": "gpt-4o", "max_tokens": 10, "stream": true, "cache_enabled": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let text = |sse: &str| -> (String, String) {
        let events = data_events(sse);
        let text = events
            .iter()
            .filter_map(|e| e["delta"]["text"].as_str())
            .collect();
        (
            text,
            events[0]["message"]["id"].as_str().unwrap().to_string(),
        )
    };
    let (state, first) = ask_streamed(&sidecar, path, &body).await;
    assert_eq!(state, "miss");
    let (state, again) = ask_streamed(&sidecar, path, &body).await;
    assert_eq!(state, "hit");
    let ((first_text, first_id), (again_text, again_id)) = (text(&first), text(&again));
    assert_eq!(
        (first_text.as_str(), again_text.as_str()),
        ("mock answer", "mock answer")
    );
    assert_ne!(first_id, again_id);
    assert!(again.contains("event: message_stop\n"));
    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let response = post_json(&sidecar, path, &whole).await;
    assert_eq!(response.headers()["x-respan-cache"], "hit");
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["text"], "mock answer");
    assert_eq!(message["stop_reason"], "end_turn");
    // A request on another API is another entry.
    let mut openai = cached("hi");
    openai["stream"] = json!(true);
    assert_eq!(
        ask_streamed(&sidecar, "/v1/chat/completions", &openai)
            .await
            .0,
        "miss"
    );
    assert_eq!(mock.count(), 2);
}

/// A streamed request's `x-respan-cache` state, when its first piece came (from `start`),
/// and its whole text.
async fn timed_stream(
    sidecar: &Sidecar,
    body: &Value,
    start: std::time::Instant,
) -> (String, Duration, String) {
    let mut response = post_chat(sidecar, body).await;
    assert_eq!(response.status(), 200);
    let state = response.headers()["x-respan-cache"]
        .to_str()
        .unwrap()
        .to_string();
    let mut text = Vec::new();
    let mut first = None;
    while let Some(piece) = response.chunk().await.unwrap() {
        first.get_or_insert_with(|| start.elapsed());
        text.extend_from_slice(&piece);
    }
    (state, first.unwrap(), String::from_utf8(text).unwrap())
}

#[tokio::test]
async fn identical_streams_in_flight_follow_the_first_as_it_arrives() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let gap = Duration::from_millis(150);
    mock.push(crate::support::Reply::openai_stream(
        "gpt-4o",
        &["one ", "two ", "three"],
        gap,
    ));
    let mut body = cached("follow me");
    body["stream"] = json!(true);
    let start = std::time::Instant::now();
    let leader = timed_stream(&sidecar, &body, start);
    let followers = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let each = (0..3).map(|_| timed_stream(&sidecar, &body, start));
        futures::future::join_all(each).await
    };
    let (leader, followers) = tokio::join!(leader, followers);
    assert_eq!(mock.count(), 1, "one upstream call for four streams");
    assert_eq!(leader.0, "miss");
    let whole = start.elapsed();
    for (state, first, text) in &followers {
        assert_eq!(state, "hit");
        assert_eq!(openai_text(text).0, "one two three");
        assert_eq!(openai_text(text).1[0], openai_text(&leader.2).1[0]);
        // Each got its first piece as the stream went on, not once it was over.
        assert!(
            *first + 2 * gap < whole,
            "first piece at {first:?} of {whole:?}"
        );
    }
    sidecar.idle().await;
    let hits = sidecar
        .metric("respan_cache_lookups_total", &[("result", "hit")])
        .await;
    assert_eq!(hits, 3.0);
    // The stream was kept too.
    let (state, again) = ask_streamed(&sidecar, "/v1/chat/completions", &body).await;
    assert_eq!(
        (state.as_str(), openai_text(&again).0.as_str()),
        ("hit", "one two three")
    );
}

#[tokio::test]
async fn followers_of_a_stream_that_fails_before_it_starts_ask_for_themselves() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    mock.push(crate::support::Reply::Delay(
        Duration::from_millis(1000),
        Box::new(crate::support::Reply::openai_error(400, "refused")),
    ));
    let mut body = cached("fail first");
    body["stream"] = json!(true);
    let sends = (0..3).map(|_| async {
        let response = post_chat(&sidecar, &body).await;
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    });
    let answers = futures::future::join_all(sends).await;
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    // Each asked for itself, unless the other's answer was stored by the time it woke.
    assert_eq!(ok, 2, "{answers:?}");
    assert!((2..=3).contains(&mock.count()), "{answers:?}");
    for (_, text) in answers.iter().filter(|(status, _)| *status == 200) {
        assert_eq!(openai_text(text).0, "mock answer");
    }
}

#[tokio::test]
async fn a_gemini_stream_is_kept_and_replayed_either_way() {
    let mock = Mock::start_as(crate::support::mock::Flavor::Gemini).await;
    let config = format!(
        "providers:\n  ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: sk-ge\nroutes:\n  - match: \"*\"\n    provider: ge\n",
        mock.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let body =
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "cache_enabled": true});
    let models = "/api/google/gemini/v1beta/models/gemini-2.5-flash";
    let stream = format!("{models}:streamGenerateContent?alt=sse");
    let text = |sse: &str| -> String {
        data_events(sse)
            .iter()
            .flat_map(|e| {
                e["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["text"].as_str().map(str::to_string))
            .collect()
    };
    let (state, first) = ask_streamed(&sidecar, &stream, &body).await;
    assert_eq!(
        (state.as_str(), text(&first).as_str()),
        ("miss", "mock answer")
    );
    let (state, again) = ask_streamed(&sidecar, &stream, &body).await;
    assert_eq!(
        (state.as_str(), text(&again).as_str()),
        ("hit", "mock answer")
    );
    let last = data_events(&again).pop().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 7);
    let response = post_json(&sidecar, &format!("{models}:generateContent"), &body).await;
    assert_eq!(response.headers()["x-respan-cache"], "hit");
    let whole: Value = response.json().await.unwrap();
    assert_eq!(
        whole["candidates"][0]["content"]["parts"][0]["text"],
        "mock answer"
    );
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn is_cached_by_model_false_shares_an_answer_across_models() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&openai_config(&mock)).await;
    let asked = |model: &str, by_model: bool| {
        let mut body = cached("any model");
        body["model"] = json!(model);
        body["cache_options"] = json!({"is_cached_by_model": by_model});
        body
    };
    assert_eq!(ask(&sidecar, &asked("gpt-4o", false)).await.0, "miss");
    assert_eq!(ask(&sidecar, &asked("gpt-4o-mini", false)).await.0, "hit");
    // By model (the default), another model is another entry.
    assert_eq!(ask(&sidecar, &asked("gpt-4o-mini", true)).await.0, "miss");
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn a_responses_stream_translated_from_anthropic_is_kept_and_replayed_as_typed_events() {
    let anthropic = Mock::start().await;
    anthropic.push(crate::support::Reply::anthropic_stream(
        "claude-x",
        &["Hel", "lo"],
    ));
    let config = format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\n",
        anthropic.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let path = "/v1/responses";
    let body = json!({"model": "claude-x", "input": "hi", "stream": true, "cache_enabled": true});
    let text = |sse: &str| -> String {
        data_events(sse)
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .filter_map(|e| e["delta"].as_str())
            .collect()
    };
    let (state, first) = ask_streamed(&sidecar, path, &body).await;
    assert_eq!(state, "miss");
    assert_eq!(text(&first), "Hello");
    let (state, again) = ask_streamed(&sidecar, path, &body).await;
    assert_eq!(state, "hit");
    assert_eq!(text(&again), "Hello");
    let events = data_events(&again);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{again}");
    }
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    let first_done = data_events(&first)
        .into_iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap()["response"]
        .clone();
    assert_eq!(last["response"]["id"], first_done["id"]);
    assert_eq!(last["response"]["output"], first_done["output"]);
    // Not streamed: the whole response the stream told.
    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let response = post_json(&sidecar, path, &whole).await;
    assert_eq!(response.headers()["x-respan-cache"], "hit");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["output"], first_done["output"]);
    assert_eq!(anthropic.count(), 1);
}
