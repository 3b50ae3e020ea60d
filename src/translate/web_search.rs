//! The built-in web search tool, across providers.
//!
//! An app offers it (the Responses API's `web_search` tool, which the Codex CLI sends by
//! default; chat completions' `web_search_options`); the chat form carries it as
//! `web_search_options`, and each provider gets its own server-side search: Anthropic's web
//! search server tool, Gemini's Google Search grounding. Providers that have none (and
//! routes with `web_search: off`) get the request without it, and the trace says so: a tool
//! an app merely offers never fails its request.
//!
//! What the provider searched comes back in the chat form as `web_search_calls` on the
//! message (and one `web_search_call` per delta in a stream), and its citations as chat
//! completions' `url_citation` annotations; the Responses API turns them into
//! `web_search_call` items and `url_citation` annotations on `output_text`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Anthropic's web search server tool (the version its docs name).
pub const ANTHROPIC_TOOL_TYPE: &str = "web_search_20250305";

/// Web search as the chat form carries it (chat completions' `web_search_options`, plus the
/// Responses tool's domain filter).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct WebSearchOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_context_size: Option<String>,
    /// Chat completions' `{"type": "approximate", "approximate": {...}}`, or the Responses
    /// tool's flat `{"type": "approximate", "city": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_location: Option<Value>,
    /// The Responses tool's `filters.allowed_domains` (chat completions has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
}

impl WebSearchOptions {
    /// From a Responses `web_search` (or `web_search_preview`) tool.
    pub fn from_responses_tool(tool: &Value) -> WebSearchOptions {
        let domains = tool
            .pointer("/filters/allowed_domains")
            .and_then(Value::as_array);
        WebSearchOptions {
            search_context_size: tool
                .get("search_context_size")
                .and_then(Value::as_str)
                .map(str::to_string),
            user_location: tool.get("user_location").filter(|l| l.is_object()).cloned(),
            allowed_domains: domains
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect(),
        }
    }

    /// The location's fields (`city`, `region`, `country`, `timezone`), from either shape.
    fn location(&self) -> Option<Map<String, Value>> {
        let at = self.user_location.as_ref()?;
        let fields = at.get("approximate").unwrap_or(at).as_object()?;
        let kept: Map<String, Value> = fields
            .iter()
            .filter(|(k, v)| {
                matches!(k.as_str(), "city" | "region" | "country" | "timezone") && v.is_string()
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!kept.is_empty()).then_some(kept)
    }

    /// Anthropic's web search server tool for these options.
    pub fn anthropic_tool(&self) -> Value {
        let mut tool = json!({"type": ANTHROPIC_TOOL_TYPE, "name": "web_search"});
        if !self.allowed_domains.is_empty() {
            tool["allowed_domains"] = json!(self.allowed_domains);
        }
        if let Some(mut location) = self.location() {
            location.insert("type".into(), "approximate".into());
            tool["user_location"] = Value::Object(location);
        }
        tool
    }

    /// From an Anthropic web search server tool (an Anthropic request for another model).
    pub fn from_anthropic_tool(tool: &Map<String, Value>) -> WebSearchOptions {
        WebSearchOptions {
            search_context_size: None,
            user_location: tool.get("user_location").filter(|l| l.is_object()).cloned(),
            allowed_domains: tool
                .get("allowed_domains")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect(),
        }
    }
}

/// Whether an Anthropic tool `type` is its web search server tool (any version).
pub fn is_anthropic_tool(kind: &str) -> bool {
    kind.starts_with("web_search_")
}

/// What became of an app's web search for one provider, as its trace tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebSearchUse {
    /// Sent as the provider's own search (`anthropic` or `gemini`).
    Mapped(&'static str),
    /// Left out: the provider has no server-side search, or the route turned it off.
    LeftOut,
}

impl WebSearchUse {
    /// The trace's `web_search` value.
    pub fn as_str(self) -> &'static str {
        match self {
            WebSearchUse::Mapped("anthropic") => "anthropic_web_search",
            WebSearchUse::Mapped(_) => "gemini_google_search",
            WebSearchUse::LeftOut => "left_out",
        }
    }
}

/// One search the provider ran, with the pages it found.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct WebSearchCall {
    /// The provider's id of the search (Anthropic's `srvtoolu_`), or a fresh one.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Why the search failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A page a search found.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Source {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Chat completions' annotation: a span of the message's text cites a page. Indices count
/// characters of the message's content.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Annotation {
    #[serde(rename = "type")]
    pub kind: String,
    pub url_citation: UrlCitation,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct UrlCitation {
    pub url: String,
    #[serde(default)]
    pub title: String,
    pub start_index: usize,
    pub end_index: usize,
}

impl Annotation {
    pub fn url(url: String, title: String, start_index: usize, end_index: usize) -> Annotation {
        Annotation {
            kind: "url_citation".into(),
            url_citation: UrlCitation {
                url,
                title,
                start_index,
                end_index,
            },
        }
    }

    /// The Responses API's flat `url_citation` annotation.
    pub fn to_responses(&self) -> Value {
        let c = &self.url_citation;
        json!({"type": "url_citation", "url": c.url, "title": c.title,
            "start_index": c.start_index, "end_index": c.end_index})
    }
}

/// A Responses API `web_search_call` output item.
pub fn responses_item(id: &str, call: &WebSearchCall, status: &str) -> Value {
    let mut action = json!({"type": "search"});
    if let Some(query) = &call.query {
        action["query"] = query.as_str().into();
    }
    if status != "in_progress" {
        let sources: Vec<Value> = call
            .sources
            .iter()
            .map(|s| json!({"type": "url", "url": s.url}))
            .collect();
        action["sources"] = Value::Array(sources);
    }
    json!({"type": "web_search_call", "id": id, "status": status, "action": action})
}

/// The status of a finished search's item.
pub fn final_status(call: &WebSearchCall) -> &'static str {
    if call.error.is_some() {
        "failed"
    } else {
        "completed"
    }
}

/// The searches of an Anthropic answer, built up block by block (whole answers and
/// streams alike): a `server_tool_use` names the search and its query, the
/// `web_search_tool_result` with the same id holds what it found.
#[derive(Debug, Default)]
pub struct AnthropicSearches {
    pending: Vec<WebSearchCall>,
}

impl AnthropicSearches {
    /// A `server_tool_use` block for the web search (its input, when known whole).
    pub fn started(&mut self, id: &str, input: Option<&Value>) {
        self.pending.push(WebSearchCall {
            id: id.to_string(),
            query: input.and_then(query_of),
            ..WebSearchCall::default()
        });
    }

    /// A streamed `server_tool_use` input, once whole.
    pub fn input(&mut self, id: &str, input_json: &str) {
        let input: Option<Value> = serde_json::from_str(input_json).ok();
        if let Some(call) = self.pending.iter_mut().find(|c| c.id == id) {
            call.query = input.as_ref().and_then(query_of).or(call.query.take());
        }
    }

    /// A `web_search_tool_result` block: its search, finished (or one made for it).
    pub fn finished(&mut self, tool_use_id: &str, content: &Value) -> WebSearchCall {
        let position = self.pending.iter().position(|c| c.id == tool_use_id);
        let mut call = match position {
            Some(i) => self.pending.remove(i),
            None => WebSearchCall {
                id: tool_use_id.to_string(),
                ..WebSearchCall::default()
            },
        };
        match content {
            Value::Array(results) => {
                call.sources = results
                    .iter()
                    .filter_map(|r| {
                        Some(Source {
                            url: r.get("url")?.as_str()?.to_string(),
                            title: r.get("title").and_then(Value::as_str).map(str::to_string),
                        })
                    })
                    .collect();
            }
            other => {
                let code = other.get("error_code").and_then(Value::as_str);
                call.error = Some(code.unwrap_or("search failed").to_string());
            }
        }
        call
    }
}

fn query_of(input: &Value) -> Option<String> {
    input.get("query")?.as_str().map(str::to_string)
}

/// The annotations of an Anthropic text block with `citations`, spanning the block's text
/// (`start`..`end`, in characters of the whole message): one per cited page.
pub fn anthropic_citations(citations: &[Value], start: usize, end: usize) -> Vec<Annotation> {
    let mut out: Vec<Annotation> = Vec::new();
    for c in citations {
        if c.get("type").and_then(Value::as_str) != Some("web_search_result_location") {
            continue;
        }
        let Some(url) = c.get("url").and_then(Value::as_str) else {
            continue;
        };
        if out.iter().any(|a| a.url_citation.url == url) {
            continue;
        }
        let title = c.get("title").and_then(Value::as_str).unwrap_or_default();
        out.push(Annotation::url(url.into(), title.into(), start, end));
    }
    out
}

/// Gemini's `groundingMetadata`: the queries it ran, the pages it used (`groundingChunks`),
/// and which spans of the text cite which pages (`groundingSupports`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroundingMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_search_queries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grounding_chunks: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grounding_supports: Vec<Value>,
    /// Other fields (`searchEntryPoint`, ...), kept as they came.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl GroundingMetadata {
    /// One search per query; the pages found go with the first.
    pub fn searches(&self) -> Vec<WebSearchCall> {
        let sources: Vec<Source> = self
            .grounding_chunks
            .iter()
            .filter_map(|c| {
                let web = c.get("web")?;
                Some(Source {
                    url: web.get("uri")?.as_str()?.to_string(),
                    title: web.get("title").and_then(Value::as_str).map(str::to_string),
                })
            })
            .collect();
        let mut calls: Vec<WebSearchCall> = self
            .web_search_queries
            .iter()
            .map(|q| WebSearchCall {
                id: format!("ws_{:032x}", rand::random::<u128>()),
                query: Some(q.clone()),
                ..WebSearchCall::default()
            })
            .collect();
        if calls.is_empty() && !sources.is_empty() {
            calls.push(WebSearchCall {
                id: format!("ws_{:032x}", rand::random::<u128>()),
                ..WebSearchCall::default()
            });
        }
        if let Some(first) = calls.first_mut() {
            first.sources = sources;
        }
        calls
    }

    /// The spans of `text` (the whole answer's) that cite pages. Gemini gives each span's
    /// text beside its byte offsets: the span is found by its text, from where the last one
    /// was, so the indices are in characters whatever the offsets count.
    pub fn annotations(&self, text: &str) -> Vec<Annotation> {
        let mut out = Vec::new();
        let mut from = 0;
        for support in &self.grounding_supports {
            let Some(span) = support.pointer("/segment/text").and_then(Value::as_str) else {
                continue;
            };
            let Some(at) = text[from..].find(span).map(|i| i + from) else {
                continue;
            };
            let start = text[..at].chars().count();
            let end = start + span.chars().count();
            from = at;
            let chunks = support
                .get("groundingChunkIndices")
                .and_then(Value::as_array);
            for index in chunks.into_iter().flatten().filter_map(Value::as_u64) {
                let web = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.grounding_chunks.get(i))
                    .and_then(|c| c.get("web"));
                let Some(url) = web.and_then(|w| w.get("uri")).and_then(Value::as_str) else {
                    continue;
                };
                let title = web.and_then(|w| w.get("title")).and_then(Value::as_str);
                out.push(Annotation::url(
                    url.into(),
                    title.unwrap_or_default().into(),
                    start,
                    end,
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_each_providers_tool() {
        let tool = json!({"type": "web_search", "filters": {"allowed_domains": ["docs.rs"]},
            "user_location": {"type": "approximate", "city": "Paris", "country": "FR", "x": 1}});
        let options = WebSearchOptions::from_responses_tool(&tool);
        assert_eq!(
            options.anthropic_tool(),
            json!({"type": "web_search_20250305", "name": "web_search",
                "allowed_domains": ["docs.rs"],
                "user_location": {"type": "approximate", "city": "Paris", "country": "FR"}})
        );
        let chat = WebSearchOptions {
            user_location: Some(json!({"type": "approximate", "approximate": {"city": "Oslo"}})),
            ..WebSearchOptions::default()
        };
        assert_eq!(chat.anthropic_tool()["user_location"]["city"], "Oslo");
        assert_eq!(
            WebSearchOptions::default().anthropic_tool(),
            json!({"type": "web_search_20250305", "name": "web_search"})
        );
    }

    #[test]
    fn anthropic_searches_pair_uses_with_results() {
        let mut s = AnthropicSearches::default();
        s.started("srvtoolu_1", None);
        s.input("srvtoolu_1", r#"{"query": "rust 2024"}"#);
        let results = json!([{"type": "web_search_result", "url": "https://a.example", "title": "A",
            "encrypted_content": "x"}]);
        let call = s.finished("srvtoolu_1", &results);
        assert_eq!(call.query.as_deref(), Some("rust 2024"));
        assert_eq!(call.sources[0].url, "https://a.example");
        let failed = s.finished(
            "srvtoolu_2",
            &json!({"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}),
        );
        assert_eq!(final_status(&failed), "failed");
        let item = responses_item("ws_1", &call, "completed");
        assert_eq!(item["action"]["sources"][0]["url"], "https://a.example");
    }

    #[test]
    fn gemini_grounding_gives_searches_and_character_spans() {
        let g: GroundingMetadata = serde_json::from_value(json!({
            "webSearchQueries": ["q1", "q2"],
            "groundingChunks": [{"web": {"uri": "https://g.example", "title": "G"}}],
            "groundingSupports": [{"segment": {"startIndex": 7, "endIndex": 12, "text": "world"},
                "groundingChunkIndices": [0, 5]}],
            "searchEntryPoint": {"renderedContent": "<div/>"}
        }))
        .unwrap();
        let calls = g.searches();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].sources.len(), 1);
        let a = g.annotations("héllo, world!");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].url_citation.start_index, a[0].url_citation.end_index),
            (7, 12)
        );
        assert!(g.rest.contains_key("searchEntryPoint"));
    }
}
