//! Requests: OpenAI -> Anthropic (Claude behind `/v1/chat/completions`) and Anthropic ->
//! OpenAI (other models behind `/v1/messages`).

use super::*;
use crate::body::raw_json;
use crate::translate::json_text::JsonString;
use crate::translate::openai::{
    parse_data_url, ChatRequest, Content, FilePart, FunctionCall, FunctionDef, ImageUrl, Message,
    NamedToolChoice, Part, ResponseFormat, Stop, StreamOptions, Tool, ToolCall, ToolChoice,
    ToolName,
};
use crate::translate::web_search::{self, WebSearchOptions};
use crate::translate::{error::TranslateError, reasoning};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde_json::json;

/// How an OpenAI `response_format` was carried out, so the answer can be turned back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum JsonMode {
    #[default]
    Off,
    /// `json_schema`: a tool of this name was forced; its input is the answer.
    ForcedTool(String),
}

const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with one valid JSON object and nothing else: no prose, no code fences.";

/// OpenAI request -> Messages request.
pub fn from_openai(req: ChatRequest) -> Result<(MessagesRequest, JsonMode), TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::invalid(
            "n",
            "n > 1 is not supported for Anthropic models",
        ));
    }
    let mut system = Vec::new();
    let mut turns: Vec<AMessage> = Vec::new();
    for message in req.messages {
        let (role, blocks) = match message.role.as_str() {
            "system" | "developer" => {
                let text = message.content.map(|c| c.text()).unwrap_or_default();
                if !text.is_empty() {
                    system.push(text_block(text));
                }
                continue;
            }
            "user" => ("user", user_blocks(message.content)?),
            "assistant" => ("assistant", assistant_blocks(message)?),
            "tool" => ("user", vec![tool_result(message)]),
            other => {
                return Err(TranslateError::invalid(
                    "messages",
                    format!("unknown role `{other}`"),
                ))
            }
        };
        push_merged(&mut turns, role, blocks);
    }
    let mut tools: Option<Vec<ATool>> = req.tools.map(|tools| {
        tools
            .into_iter()
            .map(|t| {
                let schema = t.function.parameters;
                let schema = schema
                    .unwrap_or_else(|| raw_json(&json!({"type": "object", "properties": {}})));
                ATool::function(t.function.name, t.function.description, schema)
            })
            .collect()
    });
    if let Some(search) = &req.web_search_options {
        let server_tool = serde_json::from_value(search.anthropic_tool())
            .map_err(|e| TranslateError::invalid("tools", e.to_string()))?;
        tools.get_or_insert_with(Vec::new).push(server_tool);
    }
    let mut tool_choice = tool_choice(req.tool_choice, req.parallel_tool_calls);
    let mut json_mode = JsonMode::Off;
    match req.response_format {
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let name = tool_name(&json_schema.name);
            tools.get_or_insert_with(Vec::new).push(ATool::function(
                name.clone(),
                Some("Answer with this tool: its input is the answer.".into()),
                raw_json(
                    &json_schema
                        .schema
                        .unwrap_or_else(|| json!({"type": "object"})),
                ),
            ));
            tool_choice = Some(AToolChoice {
                kind: "tool".into(),
                name: Some(name.clone()),
                disable_parallel_tool_use: None,
            });
            json_mode = JsonMode::ForcedTool(name);
        }
        Some(ResponseFormat::JsonObject) => system.push(text_block(JSON_OBJECT_INSTRUCTION.into())),
        Some(ResponseFormat::Text) | None => {}
    }
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    // An effort asked of a reasoning model becomes a thinking budget; Anthropic then takes
    // no sampling settings.
    let derived = req.thinking.is_none().then(|| {
        let effort = req.reasoning_effort.as_deref()?;
        reasoning::anthropic_thinking(effort, max_tokens)
    });
    let thinks = derived.as_ref().is_some_and(Option::is_some);
    let request = MessagesRequest {
        model: req.model,
        system: (!system.is_empty()).then_some(System::Blocks(system)),
        messages: turns,
        max_tokens,
        stop_sequences: req.stop.map(Stop::into_vec),
        temperature: req
            .temperature
            .filter(|_| !thinks)
            .map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p.filter(|_| !thinks),
        top_k: req.top_k.filter(|_| !thinks),
        stream: req.stream.then_some(true),
        tools,
        tool_choice,
        metadata: req.user.map(|user| AMetadata {
            user_id: Some(user),
        }),
        thinking: req.thinking.or(derived.flatten()),
        output_config: None,
    };
    Ok((request, json_mode))
}

fn text_block(text: String) -> Block {
    Block::Text {
        text,
        cache_control: None,
        citations: None,
    }
}

/// Appends a turn, merging it into the previous one when the roles match (Anthropic wants
/// alternating roles). Tool results of a user turn stay before its text.
fn push_merged(turns: &mut Vec<AMessage>, role: &str, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut().filter(|t| t.role == role) {
        let mut merged =
            std::mem::replace(&mut last.content, AContent::Blocks(Vec::new())).into_blocks();
        merged.extend(blocks);
        last.content = AContent::Blocks(merged);
        return;
    }
    turns.push(AMessage {
        role: role.to_string(),
        content: AContent::Blocks(blocks),
    });
}

fn user_blocks(content: Option<Content>) -> Result<Vec<Block>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(non_empty_text(text.text().into_owned())
            .into_iter()
            .collect()),
        Some(Content::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                match (part.kind.as_str(), part.text, part.image_url, part.file) {
                    ("text", Some(text), ..) => blocks.extend(non_empty_text(text)),
                    ("image_url", _, Some(image), _) => blocks.push(image_block(&image.url)?),
                    ("file", .., Some(file)) => blocks.push(document_block(&file)?),
                    (other, ..) => {
                        return Err(TranslateError::invalid(
                            "messages",
                            format!("content part `{other}` is not supported for Anthropic models"),
                        ))
                    }
                }
            }
            Ok(blocks)
        }
    }
}

/// Anthropic refuses empty text blocks.
fn non_empty_text(text: String) -> Option<Block> {
    (!text.is_empty()).then(|| text_block(text))
}

fn image_block(url: &str) -> Result<Block, TranslateError> {
    let source = match parse_data_url(url) {
        Some((media_type, data)) => ImageSource::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        },
        None if url.starts_with("https://") || url.starts_with("http://") => ImageSource::Url {
            url: url.to_string(),
        },
        None => {
            return Err(TranslateError::invalid(
                "messages",
                "an image_url must be an https URL or a base64 data URL",
            ))
        }
    };
    Ok(Block::Image { source })
}

/// A file as a document: Anthropic reads PDFs (as base64) and plain text (as text).
fn document_block(file: &FilePart) -> Result<Block, TranslateError> {
    let (media_type, data) = file.inline()?;
    let source = match media_type {
        "application/pdf" => DocumentSource::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        },
        "text/plain" => {
            let text = BASE64_STANDARD
                .decode(data)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    TranslateError::invalid(
                        "messages",
                        "a text/plain file must be UTF-8 text in base64",
                    )
                })?;
            DocumentSource::Text {
                media_type: media_type.to_string(),
                data: text,
            }
        }
        other => {
            return Err(TranslateError::invalid(
                "messages",
                format!(
                    "a `{other}` file cannot be sent to Anthropic models (PDF and plain text can)"
                ),
            ))
        }
    };
    Ok(Block::Document {
        source,
        title: file.filename.clone(),
    })
}

fn assistant_blocks(message: Message) -> Result<Vec<Block>, TranslateError> {
    let mut blocks = Vec::new();
    for thinking in message.thinking_blocks.into_iter().flatten() {
        // Signed thinking must go back exactly as it came; anything else is not ours to send.
        if let Ok(block @ (Block::Thinking { .. } | Block::RedactedThinking { .. })) =
            serde_json::from_value::<Block>(thinking)
        {
            blocks.push(block);
        }
    }
    if let Some(content) = message.content {
        blocks.extend(non_empty_text(content.text()));
    }
    for call in message.tool_calls.into_iter().flatten() {
        blocks.push(Block::ToolUse {
            input: parse_arguments(&call.function.arguments)?,
            id: call.id,
            name: call.function.name,
        });
    }
    Ok(blocks)
}

/// Tool-call arguments (a JSON string) -> the input object.
fn parse_arguments(arguments: &str) -> Result<Value, TranslateError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(arguments).map_err(|e| {
        TranslateError::invalid(
            "messages",
            format!("tool call arguments are not valid JSON: {e}"),
        )
    })
}

fn tool_result(message: Message) -> Block {
    let text = message.content.map(Content::into_text).unwrap_or_default();
    Block::ToolResult {
        tool_use_id: message.tool_call_id.unwrap_or_default(),
        content: Some(text.into_raw()),
        is_error: None,
    }
}

fn tool_choice(choice: Option<ToolChoice>, parallel: Option<bool>) -> Option<AToolChoice> {
    let (kind, name) = match choice {
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "required" => ("any", None),
            "none" => ("none", None),
            _ => ("auto", None),
        },
        Some(ToolChoice::Named(named)) => ("tool", Some(named.function.name)),
        None if parallel == Some(false) => ("auto", None),
        None => return None,
    };
    Some(AToolChoice {
        kind: kind.to_string(),
        name,
        disable_parallel_tool_use: (parallel == Some(false) && kind != "none").then_some(true),
    })
}

/// A schema name made into a valid Anthropic tool name (`^[a-zA-Z0-9_-]{1,64}$`).
fn tool_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "response".into()
    } else {
        cleaned
    }
}

/// Messages request -> OpenAI request (for a model another provider serves).
pub fn to_openai(req: MessagesRequest) -> Result<ChatRequest, TranslateError> {
    let mut messages = Vec::new();
    match req.system {
        Some(System::Text(text)) if !text.is_empty() => messages.push(text_message("system", text)),
        Some(System::Blocks(blocks)) => {
            let text = blocks_text(&blocks);
            if !text.is_empty() {
                messages.push(text_message("system", text));
            }
        }
        _ => {}
    }
    for message in req.messages {
        let blocks = message.content.into_blocks();
        match message.role.as_str() {
            "assistant" => messages.push(assistant_message(blocks)),
            _ => user_messages(blocks, &mut messages)?,
        }
    }
    // Anthropic's web search goes on as the chat form's; its other server tools (code
    // execution, web fetch, ...) only Anthropic runs, so they are left out.
    let web_search_options = req.tools.iter().flatten().find_map(|t| {
        let kind = t.kind.as_deref()?;
        web_search::is_anthropic_tool(kind)
            .then(|| WebSearchOptions::from_anthropic_tool(&t.settings))
    });
    let tools = req.tools.map(|tools| {
        tools
            .into_iter()
            .filter(|t| !t.is_server_tool())
            .map(|t| Tool {
                kind: "function".into(),
                function: FunctionDef {
                    name: t.name,
                    description: t.description,
                    parameters: t.input_schema,
                },
            })
            .collect()
    });
    let (tool_choice, parallel_tool_calls) = match req.tool_choice {
        Some(choice) => {
            let parallel = choice.disable_parallel_tool_use.map(|d| !d);
            let mapped = match choice.kind.as_str() {
                "any" => Some(ToolChoice::Mode("required".into())),
                "none" => Some(ToolChoice::Mode("none".into())),
                "tool" => choice.name.map(|name| {
                    ToolChoice::Named(NamedToolChoice {
                        kind: "function".into(),
                        function: ToolName { name },
                    })
                }),
                _ => Some(ToolChoice::Mode("auto".into())),
            };
            (mapped, parallel)
        }
        None => (None, None),
    };
    Ok(ChatRequest {
        model: req.model,
        messages,
        stream: req.stream.unwrap_or(false),
        // The counts of a stream come in its last chunk only when asked for.
        stream_options: req.stream.unwrap_or(false).then_some(StreamOptions {
            include_usage: true,
        }),
        max_completion_tokens: Some(req.max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.map(Stop::Many),
        tools,
        tool_choice,
        parallel_tool_calls,
        reasoning_effort: reasoning::effort_of_anthropic(
            req.thinking.as_ref(),
            req.output_config.as_ref(),
        ),
        // The exact budget, for a provider that takes one (Gemini).
        thinking: req.thinking,
        web_search_options,
        ..ChatRequest::default()
    })
}

fn text_message(role: &str, text: String) -> Message {
    Message {
        role: role.to_string(),
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

fn blocks_text(blocks: &[Block]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn assistant_message(blocks: Vec<Block>) -> Message {
    let text = blocks_text(&blocks);
    let calls: Vec<ToolCall> = blocks
        .into_iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            _ => None,
        })
        .collect();
    Message {
        role: "assistant".into(),
        content: (!text.is_empty()).then(|| Content::Text(text.into())),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Message::default()
    }
}

/// A document as a `file` part's data URL (text is sent as base64 text/plain, as OpenAI
/// takes files); one at a URL cannot be given inline.
fn document_data_url(source: DocumentSource) -> Result<String, TranslateError> {
    match source {
        DocumentSource::Base64 { media_type, data } => {
            Ok(format!("data:{media_type};base64,{data}"))
        }
        DocumentSource::Text { data, .. } => Ok(format!(
            "data:text/plain;base64,{}",
            BASE64_STANDARD.encode(data)
        )),
        DocumentSource::Url { .. } => Err(TranslateError::invalid(
            "messages",
            "a document at a URL can only be read by Anthropic models: send it as base64",
        )),
    }
}

/// A user turn: its tool results become `tool` messages first (OpenAI wants them right after
/// the assistant's calls), then the rest is one user message.
fn user_messages(blocks: Vec<Block>, out: &mut Vec<Message>) -> Result<(), TranslateError> {
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            Block::ToolResult {
                tool_use_id,
                content,
                ..
            } => out.push(Message {
                role: "tool".into(),
                tool_call_id: Some(tool_use_id),
                content: Some(Content::Text(tool_result_text(content))),
                ..Message::default()
            }),
            Block::Text { text, .. } => parts.push(Part {
                kind: "text".into(),
                text: Some(text),
                ..Part::default()
            }),
            Block::Document { source, title } => parts.push(Part {
                kind: "file".into(),
                file: Some(FilePart {
                    file_data: Some(document_data_url(source)?),
                    filename: title,
                    file_id: None,
                }),
                ..Part::default()
            }),
            Block::Image { source } => parts.push(Part {
                kind: "image_url".into(),
                image_url: Some(ImageUrl {
                    url: match source {
                        ImageSource::Base64 { media_type, data } => {
                            format!("data:{media_type};base64,{data}")
                        }
                        ImageSource::Url { url } => url,
                    },
                    detail: None,
                }),
                ..Part::default()
            }),
            Block::ToolUse { .. }
            | Block::ServerToolUse { .. }
            | Block::WebSearchToolResult { .. }
            | Block::Thinking { .. }
            | Block::RedactedThinking { .. } => {
                return Err(TranslateError::invalid(
                    "messages",
                    "a user turn cannot hold tool_use, server tool or thinking blocks",
                ))
            }
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = match parts.as_slice() {
        [only] if only.kind == "text" => {
            Content::Text(only.text.as_deref().unwrap_or_default().into())
        }
        _ => Content::Parts(parts),
    };
    out.push(Message {
        role: "user".into(),
        content: Some(content),
        ..Message::default()
    });
    Ok(())
}

/// A tool result's content (a string or text blocks) as text: a string as it came.
fn tool_result_text(content: Option<Box<RawValue>>) -> JsonString {
    JsonString::of_value(content, |tree| match tree {
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
