//! OpenAI request -> Gemini `generateContent` request.

use super::schema::Schema;
use super::*;
use crate::body::raw_json;
use crate::translate::json_text::JsonString;
use crate::translate::openai::{
    parse_data_url, ChatRequest, Content, Message, ResponseFormat, Stop, Tool, ToolChoice,
};
use crate::translate::{error::TranslateError, reasoning};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

/// OpenAI request -> Gemini request. (The model and streaming go in the URL, not the body.)
pub fn from_openai(req: ChatRequest) -> Result<GenerateRequest, TranslateError> {
    // Tool results name the function only by call id: find each id's name in the
    // conversation's assistant turns.
    let names: HashMap<String, String> = req
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|c| (c.id.clone(), c.function.name.clone()))
        .collect();
    let mut system = Vec::new();
    let mut contents: Vec<GContent> = Vec::new();
    for message in req.messages {
        let (role, parts) = match message.role.as_str() {
            "system" | "developer" => {
                let text = message.content.map(|c| c.text()).unwrap_or_default();
                if !text.is_empty() {
                    system.push(text_part(text));
                }
                continue;
            }
            "user" => ("user", user_parts(message.content)?),
            "assistant" => ("model", model_parts(message)?),
            "tool" => ("user", vec![function_response(message, &names)?]),
            other => {
                return Err(TranslateError::invalid(
                    "messages",
                    format!("unknown role `{other}`"),
                ))
            }
        };
        push_merged(&mut contents, role, parts);
    }
    let mut config = GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        max_output_tokens: req.max_completion_tokens.or(req.max_tokens),
        stop_sequences: req.stop.map(Stop::into_vec),
        candidate_count: req.n,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        thinking_config: reasoning::gemini_thinking(
            req.thinking.as_ref(),
            req.reasoning_effort.as_deref(),
        ),
        ..GenerationConfig::default()
    };
    match req.response_format {
        Some(ResponseFormat::JsonObject) => {
            config.response_mime_type = Some("application/json".into())
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.response_mime_type = Some("application/json".into());
            config.response_schema = (json_schema.schema.map(Schema::deserialize).transpose())
                .map_err(|e| TranslateError::invalid("response_format", e.to_string()))?;
        }
        Some(ResponseFormat::Text) | None => {}
    }
    let mut tools = match req.tools.filter(|t| !t.is_empty()) {
        Some(tools) => Some(vec![GTool {
            google_search: None,
            function_declarations: tools
                .into_iter()
                .map(declaration)
                .collect::<Result<_, _>>()?,
        }]),
        None => None,
    };
    if req.web_search_options.is_some() {
        tools.get_or_insert_with(Vec::new).push(GTool {
            function_declarations: Vec::new(),
            google_search: Some(json!({})),
        });
    }
    Ok(GenerateRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(GContent {
            role: None,
            parts: system,
        }),
        generation_config: Some(config),
        tools,
        tool_config: req.tool_choice.map(tool_config),
    })
}

fn text_part(text: String) -> GPart {
    GPart {
        text: Some(text),
        ..GPart::default()
    }
}

fn push_merged(contents: &mut Vec<GContent>, role: &str, parts: Vec<GPart>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
        _ => contents.push(GContent {
            role: Some(role.to_string()),
            parts,
        }),
    }
}

fn user_parts(content: Option<Content>) -> Result<Vec<GPart>, TranslateError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(text)) => return Ok(vec![text_part(text.text().into_owned())]),
        Some(Content::Parts(parts)) => parts,
    };
    parts
        .into_iter()
        .filter(|p| p.kind != "text" || p.text.as_deref().is_some_and(|t| !t.is_empty()))
        .map(
            |part| match (part.kind.as_str(), part.text, part.image_url, part.file) {
                ("text", Some(text), ..) => Ok(text_part(text)),
                ("image_url", _, Some(image), _) => image_part(&image.url),
                ("file", .., Some(file)) => {
                    let (mime_type, data) = file.inline()?;
                    Ok(inline_part(mime_type, data))
                }
                (other, ..) => Err(TranslateError::invalid(
                    "messages",
                    format!("content part `{other}` is not supported for Gemini models"),
                )),
            },
        )
        .collect()
}

/// Bytes given inline (an image, a PDF, any file Gemini reads).
fn inline_part(mime_type: &str, data: &str) -> GPart {
    GPart {
        inline_data: Some(Box::new(Blob {
            mime_type: mime_type.to_string(),
            data: data.to_string(),
        })),
        ..GPart::default()
    }
}

fn image_part(url: &str) -> Result<GPart, TranslateError> {
    if let Some((mime_type, data)) = parse_data_url(url) {
        return Ok(inline_part(mime_type, data));
    }
    if !url.starts_with("https://") && !url.starts_with("http://") && !url.starts_with("gs://") {
        return Err(TranslateError::invalid(
            "messages",
            "an image_url must be an https URL or a base64 data URL",
        ));
    }
    Ok(GPart {
        file_data: Some(Box::new(FileData {
            mime_type: mime_from_extension(url).to_string(),
            file_uri: url.to_string(),
        })),
        ..GPart::default()
    })
}

/// `fileData` needs a MIME type; URLs only hint at it by their extension.
fn mime_from_extension(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

fn model_parts(message: Message) -> Result<Vec<GPart>, TranslateError> {
    let mut parts = Vec::new();
    if let Some(text) = message.content.map(|c| c.text()).filter(|t| !t.is_empty()) {
        parts.push(text_part(text));
    }
    for call in message.tool_calls.into_iter().flatten() {
        let args = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|e| {
                TranslateError::invalid(
                    "messages",
                    format!("tool call arguments are not valid JSON: {e}"),
                )
            })?
        };
        parts.push(GPart {
            function_call: Some(Box::new(GFunctionCall {
                name: call.function.name,
                args,
                id: None,
            })),
            thought_signature: signature_of(&call.id).map(str::to_string),
            ..GPart::default()
        });
    }
    Ok(parts)
}

fn function_response(
    message: Message,
    names: &HashMap<String, String>,
) -> Result<GPart, TranslateError> {
    let id = message.tool_call_id.unwrap_or_default();
    let name = names.get(&id).cloned().or(message.name).ok_or_else(|| {
        TranslateError::invalid(
            "messages",
            format!("tool message `{id}` answers no tool call of the conversation"),
        )
    })?;
    let text = message.content.map(Content::into_text).unwrap_or_default();
    // Gemini wants an object; a JSON object result is passed as is, anything else wrapped.
    let response = object_text(&text).unwrap_or_else(|| {
        let wrapped = format!(r#"{{"result":{}}}"#, text.into_raw().get());
        RawValue::from_string(wrapped).unwrap_or_default()
    });
    Ok(GPart {
        function_response: Some(Box::new(GFunctionResponse {
            name,
            response,
            id: None,
        })),
        ..GPart::default()
    })
}

/// A tool's result as a JSON object's text, if it is one (read as a tree, as before: a key
/// given twice is given once, a number Gemini could not read is no object).
fn object_text(result: &JsonString) -> Option<Box<RawValue>> {
    if !opens_object(result.raw().get()) {
        return None;
    }
    match serde_json::from_str(&result.text()) {
        Ok(Value::Object(object)) => Some(raw_json(&object)),
        _ => None,
    }
}

/// Whether a JSON string's text (quotes and escapes included) may hold an object: false only
/// when, past the JSON whitespace it starts with (escaped or not), comes anything but a `{`
/// or an escape that is not whitespace (`\u0020` is a space; any other is looked at).
/// Most tool results are plain text, and are not unescaped only to be looked at.
fn opens_object(raw: &str) -> bool {
    let mut bytes = raw.bytes().skip(1);
    while let Some(b) = bytes.next() {
        match b {
            b' ' => {}
            b'\\' => match bytes.next() {
                Some(b'n' | b't' | b'r') => {}
                _ => return true,
            },
            b => return b == b'{',
        }
    }
    false
}

fn tool_config(choice: ToolChoice) -> ToolConfig {
    let (mode, allowed) = match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "required" => ("ANY", None),
            "none" => ("NONE", None),
            _ => ("AUTO", None),
        },
        ToolChoice::Named(named) => ("ANY", Some(vec![named.function.name])),
    };
    ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode: mode.to_string(),
            allowed_function_names: allowed,
        },
    }
}

/// A function tool as Gemini declares it, its schema cleaned as it is read.
fn declaration(tool: Tool) -> Result<FunctionDeclaration, TranslateError> {
    let parameters = (tool.function.parameters)
        .map(|schema| serde_json::from_str(schema.get()))
        .transpose()
        .map_err(|e| TranslateError::invalid("tools", e.to_string()))?;
    Ok(FunctionDeclaration {
        name: tool.function.name,
        description: tool.function.description,
        parameters,
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
