//! `prompt`: config templates rendered into the request the provider gets.

use crate::openai_config;
use crate::support::{post_chat, Mock, Sidecar};
use serde_json::{json, Value};

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
    assert_eq!(sidecar.traces("limit=1").await[0]["prompt_id"], "greet");
    // With `override`, the prompt's win; a model in the request wins over the prompt's.
    let body = json!({
        "model": "gpt-4o",
        "temperature": 0.9,
        "prompt": {"prompt_id": "greet", "variables": {"name": "bo", "formal": false}, "override": true}
    });
    assert_eq!(post_chat(&sidecar, &body).await.status(), 200);
    let sent = mock.last().json();
    assert_eq!(
        (sent["model"].clone(), sent["temperature"].clone()),
        (json!("gpt-4o"), json!(0.2))
    );
    assert_eq!(sent["messages"][0]["content"], "You are terse.");
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
    let response = crate::support::client()
        .post(sidecar.url("/api/anthropic/v1/messages"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The OpenAI provider gets the prompt translated from the Anthropic request.
    let sent = mock.last().json();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"], greeting("You are terse.", "ADA"));
    // The request's max_tokens wins over the prompt's 50 (sent as OpenAI's field).
    assert_eq!(sent["max_completion_tokens"], 10);
}
