//! `prompt`: config templates rendered into the request the provider gets.

use crate::openai_config;
use crate::support::{post_chat, post_json, Mock, Reply, Sidecar};
use serde_json::{json, Value};
use std::time::Duration;

/// `greet`: a system message with a Jinja condition, a user message with a variable and a
/// filter, a model and a temperature.
const PROMPTS: &str = r#"prompts:
  greet:
    model: gpt-4o-mini
    temperature: 0.2
    max_tokens: 50
    messages:
      - role: system
        content: "You are terse.{% if formal %} Be formal.{% endif %}"
      - role: user
        content: "Say hello to {{ name | upper }}."
"#;

/// `greet` rendered: its system text and the name it says hello to.
fn greeting(system: &str, name: &str) -> Value {
    json!([
        {"role": "system", "content": system},
        {"role": "user", "content": format!("Say hello to {name}.")}
    ])
}

async fn sidecar(mock: &Mock) -> Sidecar {
    Sidecar::start(&format!("{}{PROMPTS}", openai_config(mock))).await
}

#[tokio::test]
async fn a_prompt_is_rendered_into_the_request_the_provider_gets() {
    let mock = Mock::start().await;
    let sidecar = sidecar(&mock).await;
    let body = json!({
        "messages": [{"role": "user", "content": "ignored"}],
        "temperature": 0.9,
        "prompt": {"prompt_id": "greet", "variables": {"name": "ada", "formal": true, "extra": 1}}
    });
    let response = post_chat(&sidecar, &body).await;
    assert_eq!(response.status(), 200);
    let sent = mock.last().json();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(
        sent["messages"],
        greeting("You are terse. Be formal.", "ADA")
    );
    // The request's own parameters win; the prompt fills in the rest.
    assert_eq!(sent["temperature"], 0.9);
    assert_eq!(sent["max_tokens"], 50);
    assert!(sent.get("prompt").is_none());
    let trace = &sidecar.traces("limit=1").await[0];
    assert_eq!(trace["prompt_id"], "greet");
    // The trace's input is the conversation the app sent, not the one rendered for it.
    assert_eq!(
        trace["input"],
        json!([{"role": "user", "content": "ignored"}])
    );
    // Without `override`, a model in the request wins over the prompt's.
    let mut body = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "ignored"}],
        "temperature": 0.9,
        "prompt": {"prompt_id": "greet", "variables": {"name": "bo", "formal": false}}
    });
    assert_eq!(post_chat(&sidecar, &body).await.status(), 200);
    let sent = mock.last().json();
    assert_eq!(
        (sent["model"].clone(), sent["temperature"].clone()),
        (json!("gpt-4o"), json!(0.9))
    );
    // With `override`, the prompt's win, its model included (as on Respan: the request's
    // `model` and `messages` are ignored).
    body["prompt"]["override"] = json!(true);
    assert_eq!(post_chat(&sidecar, &body).await.status(), 200);
    let sent = mock.last().json();
    assert_eq!(
        (sent["model"].clone(), sent["temperature"].clone()),
        (json!("gpt-4o-mini"), json!(0.2))
    );
    assert_eq!(sent["messages"], greeting("You are terse.", "BO"));
    let trace = &sidecar.traces("limit=1").await[0];
    assert_eq!(trace["requested_model"], "gpt-4o-mini");
}

#[tokio::test]
async fn an_unknown_prompt_or_a_missing_variable_never_reaches_the_provider() {
    let mock = Mock::start().await;
    let sidecar = sidecar(&mock).await;
    let unknown = json!({"prompt": {"prompt_id": "nope", "variables": {}}});
    let response = post_chat(&sidecar, &unknown).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "prompt_not_found");
    let lacking = json!({"prompt": {"prompt_id": "greet", "variables": {}}});
    let response = post_chat(&sidecar, &lacking).await;
    assert_eq!(response.status(), 400);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].clone();
    let message = message.as_str().unwrap();
    assert!(
        message.contains("formal") && message.contains("name"),
        "{message}"
    );
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn a_prompt_serves_the_anthropic_api_with_its_system_text_apart() {
    let mock = Mock::start().await;
    let sidecar = sidecar(&mock).await;
    let body = json!({
        "max_tokens": 10,
        "prompt": {"prompt_id": "greet", "variables": {"name": "ada", "formal": false}}
    });
    let response = post_json(&sidecar, "/api/anthropic/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    // The OpenAI provider gets the prompt translated from the Anthropic request.
    let sent = mock.last().json();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"], greeting("You are terse.", "ADA"));
    // The request's max_tokens wins over the prompt's 50 (sent as OpenAI's field).
    assert_eq!(sent["max_completion_tokens"], 10);
}

/// `menu`: version 2 deployed, version 1 kept beside it.
const VERSIONED: &str = r#"prompts:
  menu:
    version: 2
    messages:
      - { role: user, content: "Today: {{ dish }}." }
    versions:
      1:
        temperature: 0.5
        messages:
          - { role: user, content: "Menu: {{ dish }}." }
"#;

#[tokio::test]
async fn a_prompt_version_picks_its_template_and_is_on_the_trace() {
    let mock = Mock::start().await;
    let sidecar = Sidecar::start(&format!("{}{VERSIONED}", openai_config(&mock))).await;
    let ask = |version: Option<u64>| {
        let mut prompt = json!({"prompt_id": "menu", "variables": {"dish": "soup"}});
        if let Some(version) = version {
            prompt["version"] = json!(version);
        }
        json!({"model": "gpt-4o", "prompt": prompt})
    };
    for (version, text, served) in [
        (None, "Today: soup.", 2),
        (Some(1), "Menu: soup.", 1),
        (Some(2), "Today: soup.", 2),
    ] {
        assert_eq!(post_chat(&sidecar, &ask(version)).await.status(), 200);
        let sent = mock.last().json();
        assert_eq!(sent["messages"][0]["content"], text);
        let temperature = if served == 1 { json!(0.5) } else { Value::Null };
        assert_eq!(sent["temperature"], temperature);
        let trace = sidecar.traces("limit=1").await[0].clone();
        assert_eq!(trace["prompt_version"], served);
    }
    let response = post_chat(&sidecar, &ask(Some(7))).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "prompt_not_found");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("version 7"));
    assert_eq!(mock.count(), 3);
}

#[tokio::test]
async fn a_prompt_serves_the_gemini_api() {
    let mock = Mock::start_as(crate::support::mock::Flavor::Gemini).await;
    let config = format!(
        "providers:\n  ge:\n    type: gemini\n    base_url: \"{}\"\n    api_key: sk-ge\nroutes:\n  - match: \"*\"\n    provider: ge\n{PROMPTS}",
        mock.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let body = json!({
        "generationConfig": {"maxOutputTokens": 20},
        "prompt": {"prompt_id": "greet", "variables": {"name": "ada", "formal": false}}
    });
    let path = "/api/google/gemini/v1beta/models/gemini-2.5-flash:generateContent";
    let response = post_json(&sidecar, path, &body).await;
    assert_eq!(response.status(), 200);
    let sent = mock.last().json();
    assert_eq!(
        sent["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hello to ADA."}]}])
    );
    assert_eq!(
        sent["systemInstruction"]["parts"][0]["text"],
        "You are terse."
    );
    // The prompt's parameters fill in the request's generationConfig, field by field.
    assert_eq!(
        sent["generationConfig"],
        json!({"maxOutputTokens": 20, "temperature": 0.2})
    );
    assert!(sent.get("prompt").is_none());
}

/// A config whose prompts come from a mock of the Respan prompt API.
fn managed_config(provider: &Mock, respan: &Mock) -> String {
    format!(
        "{}respan_prompts:\n  api_key: rk-test\n  base_url: \"{}\"\n  refresh_seconds: 1\n",
        openai_config(provider),
        respan.url("/api")
    )
}

/// The prompt API's answer naming the deployed version.
fn deployed(version: u64) -> Reply {
    Reply::status(
        200,
        json!({"id": "support", "name": "Support", "live_version": {"version": version}}),
    )
}

/// The prompt API's answer for one version.
fn version(number: u64, text: &str) -> Reply {
    Reply::status(
        200,
        json!({"id": "pv_1", "prompt_version_id": "pv_1", "version": number, "model": "gpt-4o-mini",
            "temperature": 0.3, "max_tokens": null, "variables": {"name": ""}, "is_deployed": true,
            "messages": [{"role": "user", "content": text}]}),
    )
}

fn support(name: &str) -> Value {
    json!({"prompt": {"prompt_id": "support", "variables": {"name": name}}})
}

/// Asks with `support` until the provider is sent `text` (at most `within`).
async fn until_sent(sidecar: &Sidecar, provider: &Mock, text: &str, within: Duration) {
    let start = std::time::Instant::now();
    loop {
        assert_eq!(post_chat(sidecar, &support("ada")).await.status(), 200);
        if provider.last().json()["messages"][0]["content"] == text {
            return;
        }
        assert!(start.elapsed() < within, "never sent {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn respan_prompts_are_fetched_once_refreshed_and_outlive_an_outage() {
    let (provider, respan) = (Mock::start().await, Mock::start().await);
    respan.push(deployed(3));
    respan.push(version(3, "Hi {{ name }}, v3"));
    let sidecar = Sidecar::start(&managed_config(&provider, &respan)).await;
    let ask = support("ada");
    let asks = (0..4).map(|_| post_chat(&sidecar, &ask));
    for response in futures::future::join_all(asks).await {
        assert_eq!(response.status(), 200);
    }
    let sent = provider.last().json();
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Hi ada, v3"}])
    );
    assert_eq!(
        (sent["model"].clone(), sent["temperature"].clone()),
        (json!("gpt-4o-mini"), json!(0.3))
    );
    let fetched: Vec<String> = respan.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        fetched,
        ["/api/prompts/support/", "/api/prompts/support/versions/3/"]
    );
    assert!(respan
        .received()
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer rk-test")));
    let trace = sidecar.traces("limit=1").await[0].clone();
    assert_eq!(
        (trace["prompt_id"].clone(), trace["prompt_version"].clone()),
        (json!("support"), json!(3))
    );

    // The platform deploys version 4: the background refresh picks it up.
    respan.push(deployed(4));
    respan.push(version(4, "Hello {{ name }}, v4"));
    until_sent(&sidecar, &provider, "Hello ada, v4", Duration::from_secs(6)).await;

    // The platform goes down: the last good copy keeps serving.
    for _ in 0..10 {
        respan.push(Reply::status(503, json!({"detail": "unavailable"})));
    }
    let before = respan.count();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(respan.count() > before, "the refresh kept trying");
    assert_eq!(post_chat(&sidecar, &support("bo")).await.status(), 200);
    assert_eq!(
        provider.last().json()["messages"][0]["content"],
        "Hello bo, v4"
    );
}

#[tokio::test]
async fn an_unknown_or_unreachable_respan_prompt_is_a_clear_error() {
    let (provider, respan) = (Mock::start().await, Mock::start().await);
    let sidecar = Sidecar::start(&managed_config(&provider, &respan)).await;
    let error = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["error"].clone())
    };
    respan.push(Reply::status(404, json!({"detail": "Not found."})));
    let ask = json!({"prompt": {"prompt_id": "nope", "version": 2, "variables": {}}});
    let (status, e) = error(post_chat(&sidecar, &ask).await).await;
    assert_eq!(
        (status, e["code"].clone()),
        (404, json!("prompt_not_found"))
    );
    assert_eq!(respan.last().path, "/api/prompts/nope/versions/2/");
    // Known as unknown for a while: asked again, the platform is not.
    assert_eq!(error(post_chat(&sidecar, &ask).await).await.0, 404);
    // An id that is not one is never sent to the platform.
    let ask = json!({"prompt": {"prompt_id": "../admin", "variables": {}}});
    assert_eq!(error(post_chat(&sidecar, &ask).await).await.0, 404);
    assert_eq!(respan.count(), 1);
    respan.push(Reply::status(503, json!({"detail": "unavailable"})));
    let (status, e) = error(post_chat(&sidecar, &support("ada")).await).await;
    assert_eq!(status, 502);
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("Respan prompt API") && !message.contains("rk-test"),
        "{message}"
    );
    assert_eq!(provider.count(), 0);
}

#[tokio::test]
async fn a_prompt_on_the_anthropic_api_sets_anthropic_parameters_only() {
    let mock = Mock::start_as(crate::support::mock::Flavor::Anthropic).await;
    let config = format!(
        "providers:\n  an:\n    type: anthropic\n    base_url: \"{}\"\n    api_key: sk-an\nroutes:\n  - match: \"*\"\n    provider: an\n\
         prompts:\n  tools:\n    model: claude-haiku-4-5\n    stop: [\"END\"]\n    seed: 7\n    frequency_penalty: 0.5\n    temperature: 0.3\n\
         \x20   tools: [{{type: function, function: {{name: get, parameters: {{type: object}}}}}}]\n\
         \x20   messages: [{{role: user, content: \"hi\"}}]\n",
        mock.url("")
    );
    let sidecar = Sidecar::start(&config).await;
    let body = json!({"max_tokens": 10, "prompt": {"prompt_id": "tools"}});
    let response = post_json(&sidecar, "/api/anthropic/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    let sent = mock.last().json();
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["max_tokens"], 10);
    assert_eq!(sent["tools"][0]["name"], "get");
    assert_eq!(sent["tools"][0]["input_schema"], json!({"type": "object"}));
    for openai_only in ["seed", "frequency_penalty", "stop"] {
        assert!(sent.get(openai_only).is_none(), "{openai_only}: {sent}");
    }
}
