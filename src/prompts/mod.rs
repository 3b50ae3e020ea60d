//! The `prompt` parameter: a prompt template rendered into a model request before its
//! attempt plan is made.
//!
//! Templates come from the config's `prompts` (the offline source, part of the hot-reloaded
//! state) or, for an id the config does not hold, from the Respan platform (`managed`).
//! `prompt.version` picks one of a prompt's versions; without it the deployed one serves.
//!
//! Every string in the template's messages is a minijinja template (`{{variable}}`,
//! `{% if %}`, filters), rendered with the request's `variables`. A variable the template
//! needs and the request lacks is a 400 naming it, never an empty string; extra variables
//! are ignored. The rendered messages replace the request's. The prompt's other parameters
//! fill in what the request does not set, or win over it with `override: true`; its `model`
//! serves when the request names none, or always with `override`. Templates are OpenAI messages and parameters: on the
//! Anthropic API their system messages become `system` and their parameters Anthropic's
//! (those it has); on Gemini's they are translated to `contents` and `systemInstruction`,
//! and their parameters to `generationConfig`.

pub(crate) mod managed;

use crate::config::{Config, PromptConfig};
use crate::dispatch::request::ModelRequest;
use crate::error::GatewayError;
use crate::params::PromptParam;
use crate::translate::openai::ChatRequest;
use crate::translate::{anthropic, gemini};
use crate::wire::Wire;
use managed::ManagedPrompts;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Renders the request's `prompt` into it, if it has one; the version it rendered, if the
/// template has a number.
pub async fn apply(
    request: &mut ModelRequest<'_>,
    config: &Config,
    managed: &ManagedPrompts,
) -> Result<Option<u64>, GatewayError> {
    let Some(param) = request.params.prompt.clone() else {
        return Ok(None);
    };
    let template = find(&param, config, managed).await?;
    render_into(request, &param, &template)?;
    Ok(template.version)
}

/// A template, borrowed from the config or shared from the managed prompts.
enum Template<'a> {
    Config(&'a PromptConfig),
    Managed(Arc<PromptConfig>),
}

impl std::ops::Deref for Template<'_> {
    type Target = PromptConfig;

    fn deref(&self) -> &PromptConfig {
        match self {
            Template::Config(prompt) => prompt,
            Template::Managed(prompt) => prompt,
        }
    }
}

/// The config's prompt (or the version asked of it), else the Respan platform's.
async fn find<'a>(
    param: &PromptParam,
    config: &'a Config,
    managed: &ManagedPrompts,
) -> Result<Template<'a>, GatewayError> {
    let id = &param.prompt_id;
    if let Some(prompt) = config.prompts.get(id) {
        let chosen = match param.version {
            None => Some(prompt),
            Some(v) if prompt.version == Some(v) => Some(prompt),
            Some(v) => prompt.versions.get(&v),
        };
        return chosen.map(Template::Config).ok_or_else(|| unknown(param));
    }
    match &config.respan_prompts {
        Some(source) => managed
            .get(source, id, param.version)
            .await
            .map(Template::Managed),
        None => Err(unknown(param)),
    }
}

fn unknown(param: &PromptParam) -> GatewayError {
    GatewayError::UnknownPrompt {
        id: param.prompt_id.clone(),
        version: param.version,
    }
}

/// Puts the rendered template in the request, in its API's shape.
fn render_into(
    request: &mut ModelRequest<'_>,
    param: &PromptParam,
    prompt: &PromptConfig,
) -> Result<(), GatewayError> {
    let variables = Value::Object(param.variables.clone());
    let mut messages = render(&param.prompt_id, &prompt.messages, &variables)?;
    let parameters = match request.ingress {
        Wire::OpenAi => {
            request.body.set("messages", raw(&Value::Array(messages))?);
            prompt.parameters.clone()
        }
        Wire::Responses => {
            // A chat message is also a Responses input item.
            request.body.set("input", raw(&Value::Array(messages))?);
            as_responses(&prompt.parameters)
        }
        Wire::Anthropic => {
            if let Some(system) = take_system(&mut messages) {
                request.body.set("system", raw(&Value::String(system))?);
            }
            request.body.set("messages", raw(&Value::Array(messages))?);
            as_anthropic(&prompt.parameters)?
        }
        Wire::Gemini => {
            let mut gemini = as_gemini(messages, &prompt.parameters)?;
            for field in ["contents", "systemInstruction"] {
                if let Some(value) = gemini.remove(field) {
                    request.body.set(field, raw(&value)?);
                }
            }
            if let Some(Value::Object(config)) = gemini.remove("generationConfig") {
                merge_generation_config(request, config, param.override_params)?;
            }
            gemini
        }
    };
    for (key, value) in &parameters {
        if param.override_params || request.body.get(key).is_none() {
            request.body.set(key.clone(), raw(value)?);
        }
    }
    // The prompt's model serves a request that names none; with `override` it wins over the
    // request's, as on Respan.
    if request.model.is_none() || param.override_params {
        if let Some(model) = &prompt.model {
            request.model = Some(model.clone());
            // Gemini's model is in the path, which the route rewrites; its body has none.
            if request.ingress != Wire::Gemini {
                request
                    .body
                    .set("model", raw(&Value::String(model.clone()))?);
            }
        }
    }
    Ok(())
}

/// Fields of an Anthropic request that a prompt's (OpenAI-named) parameters may set.
const ANTHROPIC_PARAMETERS: [&str; 7] = [
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
];

/// The prompt's parameters as an Anthropic request's, through the OpenAI -> Anthropic
/// translation (`stop` becomes `stop_sequences`, tools take Anthropic's shape). Parameters
/// Anthropic has no field for (penalties, `seed`, `response_format`, ...) are left out.
fn as_anthropic(parameters: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut chat = parameters.clone();
    chat.remove("response_format");
    let (request, _) =
        anthropic::request::from_openai(as_chat(Vec::new(), chat)?).map_err(invalid)?;
    let mut fields = fields_of(request)?;
    let mut out: Map<String, Value> = ANTHROPIC_PARAMETERS
        .iter()
        .filter_map(|name| Some((name.to_string(), fields.remove(*name)?)))
        .filter(|(_, value)| !value.is_null())
        .collect();
    // Anthropic always has one; the prompt's counts only if it set one.
    if ["max_tokens", "max_completion_tokens"]
        .iter()
        .any(|name| parameters.contains_key(*name))
    {
        out.extend(
            fields
                .remove("max_tokens")
                .map(|v| ("max_tokens".into(), v)),
        );
    }
    Ok(out)
}

/// The prompt's parameters (chat completions names) as a Responses API request's: the output
/// limit is `max_output_tokens`, tools are flat, `response_format` is `text.format`. Chat-only
/// parameters with no Responses field (`stop`, penalties, `seed`, `n`) are left out.
fn as_responses(parameters: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in parameters {
        match name.as_str() {
            "temperature" | "top_p" | "parallel_tool_calls" | "user" | "metadata" => {
                out.insert(name.clone(), value.clone());
            }
            "max_tokens" | "max_completion_tokens" => {
                out.insert("max_output_tokens".into(), value.clone());
            }
            "tool_choice" => {
                let named = value.pointer("/function/name").cloned();
                let choice =
                    named.map_or(value.clone(), |n| json!({"type": "function", "name": n}));
                out.insert(name.clone(), choice);
            }
            "tools" => {
                let flat = value.as_array().into_iter().flatten().map(|tool| {
                    let mut flat = tool.get("function").cloned().unwrap_or_default();
                    flat["type"] = "function".into();
                    flat
                });
                out.insert(name.clone(), Value::Array(flat.collect()));
            }
            "response_format" => {
                let mut format = value.get("json_schema").cloned().unwrap_or_default();
                format["type"] = value.get("type").cloned().unwrap_or_default();
                out.insert("text".into(), json!({ "format": format }));
            }
            _ => {}
        }
    }
    out
}

/// The prompt's generation settings merged into the request's own `generationConfig` field
/// by field: the request's win, unless `override`.
fn merge_generation_config(
    request: &mut ModelRequest<'_>,
    prompt: Map<String, Value>,
    override_params: bool,
) -> Result<(), GatewayError> {
    if prompt.is_empty() {
        return Ok(());
    }
    let own = request
        .body
        .get_as::<Option<Map<String, Value>>>("generationConfig")
        .map_err(|e| GatewayError::invalid_field("generationConfig", e))?
        .flatten()
        .unwrap_or_default();
    let mut merged = own.clone();
    for (name, value) in prompt {
        if override_params || !own.contains_key(&name) {
            merged.insert(name, value);
        }
    }
    request
        .body
        .set("generationConfig", raw(&Value::Object(merged))?);
    Ok(())
}

/// The template's messages and parameters as a Gemini request's fields (`contents`,
/// `systemInstruction`, `generationConfig`, ...), through the OpenAI -> Gemini translation.
fn as_gemini(
    messages: Vec<Value>,
    parameters: &Map<String, Value>,
) -> Result<Map<String, Value>, GatewayError> {
    let request =
        gemini::request::from_openai(as_chat(messages, parameters.clone())?).map_err(invalid)?;
    fields_of(request)
}

/// A template's messages and parameters as the OpenAI request both translations start from.
fn as_chat(
    messages: Vec<Value>,
    mut parameters: Map<String, Value>,
) -> Result<ChatRequest, GatewayError> {
    parameters.insert("model".into(), Value::String(String::new()));
    parameters.insert("messages".into(), Value::Array(messages));
    serde_json::from_value(Value::Object(parameters)).map_err(invalid)
}

/// A translated request's fields.
fn fields_of(request: impl serde::Serialize) -> Result<Map<String, Value>, GatewayError> {
    match serde_json::to_value(request).map_err(invalid)? {
        Value::Object(fields) => Ok(fields),
        _ => Ok(Map::new()),
    }
}

/// A prompt that cannot be expressed for the request's API.
fn invalid(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::invalid_field("prompt", e.to_string())
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
