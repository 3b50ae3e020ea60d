//! The `prompt` parameter: a config prompt template rendered into a chat request before its
//! attempt plan is made.
//!
//! Every string in the template's messages is a minijinja template (`{{variable}}`,
//! `{% if %}`, filters), rendered with the request's `variables`. A variable the template
//! needs and the request lacks is a 400 naming it, never an empty string; extra variables
//! are ignored. The rendered messages replace the request's. The prompt's other parameters
//! fill in what the request does not set, or win over it with `override: true`; its `model`
//! serves when the request names none. Templates are OpenAI messages; on the Anthropic API
//! their system messages become `system`.

use crate::config::PromptConfig;
use crate::dispatch::request::ModelRequest;
use crate::endpoint::Ingress;
use crate::error::GatewayError;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// Renders the request's `prompt` into it, if it has one.
pub fn apply(
    request: &mut ModelRequest<'_>,
    prompts: &BTreeMap<String, PromptConfig>,
) -> Result<(), GatewayError> {
    let Some(param) = request.params.prompt.as_ref() else {
        return Ok(());
    };
    if request.ingress == Ingress::Gemini {
        return Err(GatewayError::Unsupported(
            "`prompt` is supported on the OpenAI and Anthropic API paths".into(),
        ));
    }
    let prompt = prompts
        .get(&param.prompt_id)
        .ok_or_else(|| GatewayError::UnknownPrompt(param.prompt_id.clone()))?;
    let variables = Value::Object(param.variables.clone());
    let mut messages = render(&param.prompt_id, &prompt.messages, &variables)?;
    if request.ingress == Ingress::Anthropic {
        if let Some(system) = take_system(&mut messages) {
            request.body.set("system", raw(&Value::String(system))?);
        }
    }
    request.body.set("messages", raw(&Value::Array(messages))?);
    for (key, value) in &prompt.parameters {
        if param.override_params || request.body.get(key).is_none() {
            request.body.set(key.clone(), raw(value)?);
        }
    }
    if request.model.is_none() {
        if let Some(model) = &prompt.model {
            request.model = Some(model.clone());
            request
                .body
                .set("model", raw(&Value::String(model.clone()))?);
        }
    }
    Ok(())
}

/// Templates are written as OpenAI messages; Anthropic's API takes the system text apart:
/// the system messages are taken out, and their text returned, joined.
fn take_system(messages: &mut Vec<Value>) -> Option<String> {
    let mut text = Vec::new();
    messages.retain(|m| {
        let system = m["role"] == "system";
        if system {
            text.extend(m["content"].as_str().map(str::to_string));
        }
        !system
    });
    (!text.is_empty()).then(|| text.join("\n\n"))
}

fn raw(value: &Value) -> Result<Cow<'static, RawValue>, GatewayError> {
    to_raw_value(value)
        .map(Cow::Owned)
        .map_err(|e| GatewayError::invalid_field("prompt", e.to_string()))
}

/// The template's messages with every string rendered.
fn render(id: &str, messages: &[Value], variables: &Value) -> Result<Vec<Value>, GatewayError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let given: BTreeSet<&str> = variables
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut missing = BTreeSet::new();
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        out.push(render_value(
            &env,
            id,
            message,
            variables,
            &given,
            &mut missing,
        )?);
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.into_iter().collect();
        return Err(GatewayError::invalid_field(
            "prompt.variables",
            format!("prompt `{id}` needs {}", names.join(", ")),
        ));
    }
    Ok(out)
}

/// Renders the strings inside `value`; notes the variables they need that are not given
/// (those are rendered as nothing and reported together).
fn render_value(
    env: &Environment,
    id: &str,
    value: &Value,
    variables: &Value,
    given: &BTreeSet<&str>,
    missing: &mut BTreeSet<String>,
) -> Result<Value, GatewayError> {
    let broken = |e: minijinja::Error| GatewayError::Unsupported(format!("prompt `{id}`: {e}"));
    Ok(match value {
        Value::String(text) => {
            let template = env.template_from_str(text).map_err(broken)?;
            let lacking: Vec<String> = template
                .undeclared_variables(false)
                .into_iter()
                .filter(|v| !given.contains(v.as_str()))
                .collect();
            if lacking.is_empty() {
                Value::String(template.render(variables).map_err(broken)?)
            } else {
                missing.extend(lacking);
                Value::Null
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(env, id, v, variables, given, missing))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        render_value(env, id, v, variables, given, missing)?,
                    ))
                })
                .collect::<Result<Map<_, _>, GatewayError>>()?,
        ),
        other => other.clone(),
    })
}
