//! A Responses API request -> the OpenAI chat form every provider translation starts from.
//!
//! `input` items become messages: `function_call` (and `custom_tool_call`) items join the
//! assistant turn they belong to, their outputs become tool messages (matched by `call_id`), and a
//! `reasoning` item's `encrypted_content` (the provider's own opaque thinking, as this
//! gateway wrote it) goes back on the next assistant turn.

use super::super::error::TranslateError;
use super::super::json_text::{ByShape, CheckedRaw, JsonString, Shaped};
use super::super::openai::{
    ChatRequest, Content, FilePart, FunctionCall, FunctionDef, ImageUrl, JsonSchema, Message,
    NamedToolChoice, Part, ResponseFormat, StreamOptions, Tool, ToolCall, ToolChoice, ToolName,
};
use super::super::text_or_list::text_or_list;
use super::super::web_search::WebSearchOptions;
use super::{custom_arguments, flat_name, thinking_of, ToolNames, CUSTOM_INPUT};
use crate::body::raw_json;
use serde::de::{Deserializer, MapAccess};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// The fields of a Responses request that are translated; the rest (`store`, `include`,
/// `truncation`, `service_tier`, ...) mean nothing to another provider.
#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    #[serde(default)]
    input: Option<Input>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    tools: Option<Vec<GivenTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    text: Option<TextConfig>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    safety_identifier: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    reasoning: Option<ReasoningConfig>,
}

#[derive(Debug, Deserialize)]
struct ReasoningConfig {
    #[serde(default)]
    effort: Option<String>,
}

#[derive(Debug)]
enum Input {
    Text(String),
    Items(Vec<Item>),
}

/// One `input` item: its fields as a tree, but a tool result's `output` as JSON text (a
/// file's worth of text is passed on as it came, not unescaped and escaped again).
#[derive(Debug)]
struct Item {
    fields: Value,
    output: Option<Box<RawValue>>,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByShape::new())
    }
}

impl<'de> Shaped<'de> for Item {
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Item, A::Error> {
        let (mut fields, mut output) = (serde_json::Map::new(), None);
        // A key given twice is read as a tree reads it: the last one holds.
        while let Some(key) = map.next_key::<String>()? {
            if key == "output" {
                output = Some(map.next_value::<CheckedRaw>()?.0);
            } else {
                fields.insert(key, map.next_value()?);
            }
        }
        Ok(Item {
            fields: Value::Object(fields),
            output,
        })
    }

    /// What is not an object is kept as it is: an item of no role, refused as one by its
    /// index.
    fn other(fields: Value) -> Item {
        Item {
            fields,
            output: None,
        }
    }
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text_or_list(d, Input::Text, Input::Items)
    }
}

#[derive(Debug, Deserialize)]
struct TextConfig {
    #[serde(default)]
    format: Option<Value>,
}

/// Tools only OpenAI runs (on its side): no other provider can take them. (`web_search` is
/// not among them: each provider gets its own search, see `web_search`.)
const BUILT_IN_TOOLS: &[&str] = &[
    "file_search",
    "computer_use_preview",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
];

/// The chat form of a request, and the names of its tools whose calls must be turned back.
pub fn to_openai(req: ResponsesRequest) -> Result<(ChatRequest, ToolNames), TranslateError> {
    if req.previous_response_id.is_some() {
        return Err(TranslateError::invalid(
            "previous_response_id",
            "names a response this gateway did not keep (`responses.store` is off, the request said `store: false`, or it expired): send the whole conversation in `input`",
        ));
    }
    let mut messages = Vec::new();
    if let Some(instructions) = req.instructions.filter(|i| !i.is_empty()) {
        messages.push(text_message("system", instructions));
    }
    match req.input {
        Some(Input::Text(text)) => messages.push(text_message("user", text)),
        Some(Input::Items(items)) => Conversation::default().read(items, &mut messages)?,
        None => {}
    }
    let stream = req.stream.unwrap_or(false);
    let (tools, tool_names, web_search) = match req.tools {
        Some(given) => {
            let (tools, tool_names, web_search) = tools(given)?;
            // Only a search offered: no function tools to send.
            let only_search = tools.is_empty() && web_search.is_some();
            ((!only_search).then_some(tools), tool_names, web_search)
        }
        None => (None, ToolNames::default(), None),
    };
    let chat = ChatRequest {
        messages,
        stream,
        // The terminal event carries the usage: an OpenAI-format provider is asked for it.
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        max_tokens: req.max_output_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        tools,
        tool_choice: req.tool_choice.map(tool_choice).transpose()?,
        parallel_tool_calls: req.parallel_tool_calls,
        response_format: req
            .text
            .and_then(|t| t.format)
            .map(response_format)
            .transpose()?
            .flatten(),
        user: req.safety_identifier.or(req.user),
        reasoning_effort: req.reasoning.and_then(|r| r.effort),
        web_search_options: web_search,
        ..ChatRequest::default()
    };
    Ok((chat, tool_names))
}

fn text_message(role: &str, text: String) -> Message {
    Message {
        role: role.to_string(),
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

/// Reads `input` items in order, keeping what belongs to the assistant turn being built.
#[derive(Default)]
struct Conversation {
    /// Thinking from `reasoning` items, for the next assistant turn.
    thinking: Vec<Value>,
    summary: String,
}

impl Conversation {
    fn read(mut self, items: Vec<Item>, out: &mut Vec<Message>) -> Result<(), TranslateError> {
        for (
            i,
            Item {
                fields: item,
                output,
            },
        ) in items.into_iter().enumerate()
        {
            let at = |field: &str| format!("input[{i}].{field}");
            let kind = item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("message");
            match kind {
                "message" => self.message(&item, i, out)?,
                "function_call" => {
                    let name = string(&item, "name", &at("name"))?;
                    let name = match item.get("namespace").and_then(Value::as_str) {
                        Some(namespace) => flat_name(namespace, &name),
                        None => name,
                    };
                    let arguments = string(&item, "arguments", &at("arguments"))?;
                    let call_id = string(&item, "call_id", &at("call_id"))?;
                    self.call(call_id, name, arguments, out);
                }
                "custom_tool_call" => {
                    let arguments = custom_arguments(&string(&item, "input", &at("input"))?);
                    let name = string(&item, "name", &at("name"))?;
                    let call_id = string(&item, "call_id", &at("call_id"))?;
                    self.call(call_id, name, arguments, out);
                }
                "function_call_output" | "custom_tool_call_output" => out.push(Message {
                    role: "tool".into(),
                    tool_call_id: Some(string(&item, "call_id", &at("call_id"))?),
                    content: Some(Content::Text(output_text(output))),
                    ..Message::default()
                }),
                "reasoning" => self.reasoning(&item),
                // A search the provider ran on an earlier turn: what it found is in the
                // answer's text; the provider cannot be handed the search itself again.
                "web_search_call" => {}
                other => {
                    return Err(TranslateError::invalid(
                        at("type"),
                        format!("`{other}` items are only understood by OpenAI models"),
                    ))
                }
            }
        }
        Ok(())
    }

    fn message(
        &mut self,
        item: &Value,
        i: usize,
        out: &mut Vec<Message>,
    ) -> Result<(), TranslateError> {
        let role = match item.get("role").and_then(Value::as_str) {
            Some("developer" | "system") => "system",
            Some("user") => "user",
            Some("assistant") => "assistant",
            _ => {
                return Err(TranslateError::invalid(
                    format!("input[{i}].role"),
                    "must be user, assistant, system or developer",
                ))
            }
        };
        let content = content(item.get("content"), i)?;
        if role == "assistant" {
            let turn = self.assistant(out);
            turn.content = Some(match turn.content.take() {
                Some(before) => Content::Text((before.text() + &content.text()).into()),
                None => content,
            });
        } else {
            out.push(Message {
                role: role.into(),
                content: Some(content),
                ..Message::default()
            });
        }
        Ok(())
    }

    /// The assistant turn the next assistant item belongs to: the last message if it is one
    /// that no tool result has answered yet, else a new one (with pending thinking).
    fn assistant<'a>(&mut self, out: &'a mut Vec<Message>) -> &'a mut Message {
        let open = out.last().is_some_and(|m| m.role == "assistant");
        if !open {
            out.push(Message {
                role: "assistant".into(),
                reasoning_content: (!self.summary.is_empty())
                    .then(|| std::mem::take(&mut self.summary)),
                thinking_blocks: (!self.thinking.is_empty())
                    .then(|| std::mem::take(&mut self.thinking)),
                ..Message::default()
            });
        }
        let last = out.len() - 1;
        &mut out[last]
    }

    /// A tool call, on the assistant turn it belongs to.
    fn call(&mut self, id: String, name: String, arguments: String, out: &mut Vec<Message>) {
        let call = ToolCall {
            id,
            kind: "function".into(),
            function: FunctionCall { name, arguments },
        };
        self.assistant(out)
            .tool_calls
            .get_or_insert_with(Vec::new)
            .push(call);
    }

    fn reasoning(&mut self, item: &Value) {
        for part in item
            .get("summary")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                self.summary.push_str(text);
            }
        }
        let opaque = item.get("encrypted_content").and_then(Value::as_str);
        self.thinking
            .extend(opaque.map(thinking_of).into_iter().flatten());
    }
}

fn string(item: &Value, field: &str, at: &str) -> Result<String, TranslateError> {
    item.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| TranslateError::invalid(at, "must be a string"))
}

/// A tool result's text: a string as it came, or the text of its parts.
fn output_text(output: Option<Box<RawValue>>) -> JsonString {
    JsonString::of_value(output, |tree| match tree {
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        other => other.to_string(),
    })
}

/// A message's content: a string, or `input_text` / `output_text` / `input_image` /
/// `input_file` parts.
fn content(content: Option<&Value>, i: usize) -> Result<Content, TranslateError> {
    let parts = match content {
        Some(Value::String(s)) => return Ok(Content::Text(s.as_str().into())),
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(TranslateError::invalid(
                format!("input[{i}].content"),
                "must be a string or an array of parts",
            ))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        let text = || part.get("text").and_then(Value::as_str).map(str::to_string);
        out.push(match kind {
            "input_text" | "output_text" | "text" => Part {
                kind: "text".into(),
                text: text(),
                ..Part::default()
            },
            "input_file" => file_part(part, &format!("input[{i}].content[{j}]"))?,
            "input_image" => Part {
                kind: "image_url".into(),
                image_url: Some(ImageUrl {
                    url: image_url(part).ok_or_else(|| {
                        TranslateError::invalid(
                            format!("input[{i}].content[{j}].image_url"),
                            "an image must be given by URL or data URL (file_id is OpenAI's)",
                        )
                    })?,
                    detail: part
                        .get("detail")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                }),
                ..Part::default()
            },
            other => {
                return Err(TranslateError::invalid(
                    format!("input[{i}].content[{j}].type"),
                    format!("`{other}` parts are only understood by OpenAI models"),
                ))
            }
        });
    }
    Ok(Content::Parts(out))
}

/// An `input_file` part as a chat `file` part; a file by URL is refused (only OpenAI fetches
/// those), as is a `file_id` when the provider is asked (only OpenAI keeps files).
fn file_part(part: &Value, at: &str) -> Result<Part, TranslateError> {
    if part.get("file_url").is_some() {
        return Err(TranslateError::invalid(
            format!("{at}.file_url"),
            "a file by URL is only fetched for OpenAI models: send it as file_data",
        ));
    }
    let field = |name: &str| part.get(name).and_then(Value::as_str).map(str::to_string);
    Ok(Part {
        kind: "file".into(),
        file: Some(FilePart {
            file_data: field("file_data"),
            filename: field("filename"),
            file_id: field("file_id"),
        }),
        ..Part::default()
    })
}

fn image_url(part: &Value) -> Option<String> {
    match part.get("image_url")? {
        Value::String(url) => Some(url.clone()),
        Value::Object(o) => o.get("url")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// One of a request's tools. A function's schema (`parameters`) is kept as the app wrote
/// it, never built into a tree (a coding agent's tools are tens of kilobytes of schemas, on
/// every turn), and so is a namespace's `tools` until it is read as tools in turn; the other
/// fields (a few words) as a tree.
#[derive(Debug)]
struct GivenTool {
    fields: Value,
    parameters: Option<Box<RawValue>>,
    tools: Option<Box<RawValue>>,
}

impl<'de> Deserialize<'de> for GivenTool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByShape::new())
    }
}

impl<'de> Shaped<'de> for GivenTool {
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<GivenTool, A::Error> {
        let (mut fields, mut parameters, mut tools) = (serde_json::Map::new(), None, None);
        // A key given twice is read as a tree reads it: the last one holds.
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "parameters" => parameters = map.next_value()?,
                "tools" => tools = map.next_value()?,
                _ => {
                    fields.insert(key, map.next_value()?);
                }
            }
        }
        Ok(GivenTool {
            fields: Value::Object(fields),
            parameters,
            tools,
        })
    }

    /// What is not an object is kept as it is: a tool of no type, refused as one by its
    /// index.
    fn other(value: Value) -> GivenTool {
        GivenTool {
            fields: value,
            parameters: None,
            tools: None,
        }
    }
}

/// Flat `function` tools; a `namespace` tool's functions are each one, under a flat name;
/// a `custom` tool is a function of one string.
/// The tools as chat tools, the names whose calls are turned back, and the web search the
/// app offered (if any).
fn tools(
    offered: Vec<GivenTool>,
) -> Result<(Vec<Tool>, ToolNames, Option<WebSearchOptions>), TranslateError> {
    let mut tools = Vec::with_capacity(offered.len());
    let (mut namespaces, mut custom) = (Vec::new(), Vec::new());
    let mut web_search = None;
    for (i, given) in offered.into_iter().enumerate() {
        let at = format!("tools[{i}]");
        let tool = &given.fields;
        match tool.get("type").and_then(Value::as_str) {
            Some("namespace") => {
                let namespace = string(tool, "name", &format!("{at}.name"))?;
                for (j, f) in namespace_tools(given.tools, &at)?.into_iter().enumerate() {
                    tools.push(function(f, Some(&namespace), &format!("{at}.tools[{j}]"))?);
                }
                namespaces.push(namespace);
            }
            Some("custom") => {
                let tool = custom_tool(tool, &at)?;
                custom.push(tool.function.name.clone());
                tools.push(tool);
            }
            Some("web_search" | "web_search_preview") => {
                web_search = Some(WebSearchOptions::from_responses_tool(tool));
            }
            _ => tools.push(function(given, None, &at)?),
        }
    }
    Ok((tools, ToolNames::new(namespaces, custom), web_search))
}

/// A namespace's functions: none when it names no `tools`.
fn namespace_tools(
    tools: Option<Box<RawValue>>,
    at: &str,
) -> Result<Vec<GivenTool>, TranslateError> {
    let Some(tools) = tools else {
        return Ok(Vec::new());
    };
    serde_json::from_str(tools.get())
        .map_err(|e| TranslateError::invalid(format!("{at}.tools"), e.to_string()))
}

/// A `custom` tool as a function whose one parameter, `input`, is the free-form text; its
/// `format` (a grammar, or plain text) is told to the model in that parameter's description.
fn custom_tool(tool: &Value, at: &str) -> Result<Tool, TranslateError> {
    let name = string(tool, "name", &format!("{at}.name"))?;
    let format = tool.get("format");
    let described = match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("grammar") => {
            let syntax = format
                .and_then(|f| f.get("syntax"))
                .and_then(Value::as_str)
                .unwrap_or("grammar");
            let definition = format
                .and_then(|f| f.get("definition"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            format!("Free-form text in this {syntax} grammar:\n{definition}")
        }
        _ => "Free-form text.".to_string(),
    };
    Ok(Tool {
        kind: "function".into(),
        function: FunctionDef {
            name,
            description: tool
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            parameters: Some(raw_json(&json!({
                "type": "object",
                "properties": {CUSTOM_INPUT: {"type": "string", "description": described}},
                "required": [CUSTOM_INPUT],
                "additionalProperties": false,
            }))),
        },
    })
}

/// A `function` tool (in `namespace`, if given); any other type is refused, naming it.
fn function(given: GivenTool, namespace: Option<&str>, at: &str) -> Result<Tool, TranslateError> {
    let tool = &given.fields;
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind != "function" {
        let why = if BUILT_IN_TOOLS.contains(&kind) {
            format!("the built-in tool `{kind}` runs only on OpenAI models")
        } else {
            format!("`{kind}` tools cannot be sent to this model's provider")
        };
        return Err(TranslateError::invalid(format!("{at}.type"), why));
    }
    let name = string(tool, "name", &format!("{at}.name"))?;
    Ok(Tool {
        kind: "function".into(),
        function: FunctionDef {
            name: namespace.map_or_else(|| name.clone(), |n| flat_name(n, &name)),
            description: tool
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            parameters: given.parameters,
        },
    })
}

/// `auto` / `none` / `required`, or `{"type": "function" | "custom", "name": ...}`.
fn tool_choice(choice: Value) -> Result<ToolChoice, TranslateError> {
    match &choice {
        Value::String(mode) => Ok(ToolChoice::Mode(mode.clone())),
        Value::Object(o)
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some("function" | "custom")
            ) =>
        {
            let name = string(&choice, "name", "tool_choice.name")?;
            Ok(ToolChoice::Named(NamedToolChoice {
                kind: "function".into(),
                function: ToolName { name },
            }))
        }
        _ => Err(TranslateError::invalid(
            "tool_choice",
            "must be auto, none, required, a function or a custom tool",
        )),
    }
}

/// `text.format`: `text` (nothing to ask), `json_object`, or `json_schema` (flat here,
/// nested in chat completions).
fn response_format(format: Value) -> Result<Option<ResponseFormat>, TranslateError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => Ok(Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchema {
                name: format
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("response")
                    .to_string(),
                schema: format.get("schema").cloned(),
                strict: format.get("strict").and_then(Value::as_bool),
            },
        })),
        _ => Err(TranslateError::invalid(
            "text.format.type",
            "must be text, json_object or json_schema",
        )),
    }
}
