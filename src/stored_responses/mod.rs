//! Responses API answers kept for a while (`responses.store`), so that `previous_response_id`
//! works on every route, Claude and Gemini models included, and `GET /v1/responses/{id}`
//! (and its `input_items`) finds what the sidecar answered.
//!
//! A kept response is the `response` object the app got and the whole conversation that led
//! to it, as input items. A turn naming it as `previous_response_id` is sent as that
//! conversation, the response's output, then what the turn adds: every provider gets the
//! whole conversation, as it would without the parameter. A request saying `store: false`
//! (the Codex CLI's way: its state rides in `encrypted_content`) is not kept.

mod store;

use crate::config::{CacheConfig, ResponsesConfig};
use crate::dispatch::request::ModelRequest;
use crate::error::GatewayError;
use crate::translate::sse::{Event, SseParser};
use crate::wire::Wire;
use bytes::Bytes;
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use store::Store;

/// The longest stream, in bytes as the app gets them, whose response is kept.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The process's kept responses (built once; `responses.store` is read per request).
pub struct StoredResponses {
    store: Store,
}

/// A kept response and the conversation before it.
#[derive(Serialize, Deserialize)]
pub struct Kept {
    pub response: Value,
    pub input: Vec<Value>,
}

impl Kept {
    /// The conversation a next turn continues: the input, then the response's output.
    fn conversation(self) -> Vec<Value> {
        let mut items = self.input;
        if let Some(Value::Array(output)) = self.response.get("output") {
            items.extend(output.iter().cloned());
        }
        items
    }

    /// `GET /v1/responses/{id}/input_items`: a list, newest first as OpenAI's default order.
    pub fn input_items(&self) -> Value {
        let data: Vec<&Value> = self.input.iter().rev().collect();
        let id = |item: Option<&&Value>| item.and_then(|i| i.get("id")).cloned();
        json!({
            "object": "list",
            "data": data,
            "first_id": id(data.first()),
            "last_id": id(data.last()),
            "has_more": false,
        })
    }
}

impl StoredResponses {
    pub fn new(config: &CacheConfig) -> Result<StoredResponses, String> {
        Ok(StoredResponses {
            store: Store::new(config)?,
        })
    }

    pub async fn get(&self, id: &str) -> Option<Kept> {
        let json = self.store.get(id).await?;
        serde_json::from_slice(&json).ok()
    }

    pub async fn delete(&self, id: &str) -> bool {
        self.store.delete(id).await
    }
}

/// Before routing: a Responses request naming a kept `previous_response_id` is rewritten to
/// carry the whole conversation instead. One naming a response not kept here is left as it
/// is: an OpenAI route may know it (a route that cannot is refused by its translation).
/// Gives what is needed to keep this request's response, if it is to be kept.
pub async fn recall(
    stored: &Arc<StoredResponses>,
    config: &ResponsesConfig,
    request: &mut ModelRequest<'_>,
) -> Result<Option<Keeping>, GatewayError> {
    if request.ingress != Wire::Responses || !config.store {
        return Ok(None);
    }
    let body = &mut request.body;
    let previous = body
        .get_as::<Option<String>>("previous_response_id")
        .map_err(|e| GatewayError::invalid_field("previous_response_id", e))?
        .flatten();
    let mut conversation = match previous {
        Some(id) => match stored.get(&id).await {
            Some(kept) => kept.conversation(),
            None => return Ok(None),
        },
        None => Vec::new(),
    };
    let continued = !conversation.is_empty();
    conversation.extend(input_items(body.get_as::<Value>("input"))?);
    if continued {
        let input = serde_json::value::to_raw_value(&conversation)
            .map_err(|e| GatewayError::invalid_field("input", e.to_string()))?;
        body.take("previous_response_id");
        body.set("input", Cow::Owned(input));
    }
    let keep = body
        .get_as::<Option<bool>>("store")
        .map_err(|e| GatewayError::invalid_field("store", e))?
        .flatten()
        != Some(false);
    Ok(keep.then(|| Keeping {
        stored: stored.clone(),
        ttl: config.store_ttl,
        input: conversation,
        whole: None,
        stream: TerminalWatch::default(),
    }))
}

/// A request's `input` as items: a string is one user message.
fn input_items(input: Result<Option<Value>, String>) -> Result<Vec<Value>, GatewayError> {
    match input.map_err(|e| GatewayError::invalid_field("input", e))? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(GatewayError::invalid_field(
            "input",
            "must be a string or an array of items",
        )),
    }
}

/// A response to keep once the app has it whole.
pub struct Keeping {
    stored: Arc<StoredResponses>,
    ttl: Duration,
    input: Vec<Value>,
    /// A JSON answer, as the app got it.
    whole: Option<Bytes>,
    /// A stream's terminal response, watched for as the app gets the stream.
    stream: TerminalWatch,
}

impl Keeping {
    /// Notes a whole (JSON) successful answer.
    pub fn answered(&mut self, body: &[u8]) {
        self.whole = Some(Bytes::copy_from_slice(body));
    }

    /// Notes a piece of a stream.
    pub fn sent(&mut self, piece: &[u8]) {
        self.stream.read(piece);
    }

    /// Keeps the response the answer holds, if it is one: a JSON `response` object, or the
    /// one a stream's terminal event carries (a stream cut short has none).
    pub async fn keep(self) {
        let response = match &self.whole {
            Some(body) => serde_json::from_slice::<Value>(body).ok(),
            None => self.stream.response(),
        };
        let Some(response) = response.filter(|r| r["object"] == "response") else {
            return;
        };
        let Some(id) = response["id"].as_str().map(str::to_string) else {
            return;
        };
        let kept = Kept {
            response,
            input: self.input,
        };
        if let Ok(json) = serde_json::to_vec(&kept) {
            self.stored.store.put(&id, json.into(), self.ttl).await;
        }
    }
}

/// A stream, framed as it passes for the one event a kept response needs: the last
/// `response.completed` (or `.incomplete`), whose `response` is the whole response. Only an
/// event whose data names one of those is parsed; the stream itself is not kept.
#[derive(Default)]
struct TerminalWatch {
    parser: SseParser,
    response: Option<Value>,
    bytes: usize,
    /// The stream was longer than [`MAX_ANSWER_BYTES`] (or could not be framed).
    spoilt: bool,
}

impl TerminalWatch {
    fn read(&mut self, piece: &[u8]) {
        if self.spoilt {
            return;
        }
        self.bytes += piece.len();
        let response = &mut self.response;
        // Framing cannot fail under the bound (an event is refused past twice as much), but
        // a stream that could not be framed would keep nothing either.
        let framed = self.bytes <= MAX_ANSWER_BYTES
            && self
                .parser
                .feed(piece, &mut |e| note_terminal(e, response))
                .is_ok();
        if !framed {
            // What the parser holds of an event is of no more use.
            *self = TerminalWatch {
                spoilt: true,
                ..TerminalWatch::default()
            };
        }
    }

    /// The terminal response, if the stream had one (a stream cut short has none).
    fn response(mut self) -> Option<Value> {
        if self.spoilt {
            return None;
        }
        let response = &mut self.response;
        self.parser.finish(&mut |e| note_terminal(e, response));
        self.response
    }
}

/// Notes `event`'s response if it is a terminal event.
fn note_terminal(event: &Event, response: &mut Option<Value>) {
    #[derive(Deserialize)]
    struct Terminal {
        #[serde(rename = "type")]
        kind: String,
        response: Value,
    }
    const TERMINAL: [&str; 2] = ["response.completed", "response.incomplete"];
    static FINDERS: LazyLock<[Finder<'static>; 2]> =
        LazyLock::new(|| TERMINAL.map(|kind| Finder::new(kind.as_bytes())));
    let data = event.data.as_bytes();
    if !FINDERS.iter().any(|f| f.find(data).is_some()) {
        return;
    }
    if let Ok(t) = serde_json::from_str::<Terminal>(&event.data) {
        if TERMINAL.contains(&t.kind.as_str()) {
            *response = Some(t.response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The terminal response of `stream` fed in pieces of `size` bytes.
    fn terminal_response(stream: &[u8], size: usize) -> Option<Value> {
        let mut watch = TerminalWatch::default();
        stream.chunks(size).for_each(|piece| watch.read(piece));
        watch.response()
    }

    const STREAM: &[u8] = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"output\":[]}}\n\n\
        event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"not response.completed\"}\n\n\
        event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"object\":\"response\",\"output\":[1]}}";

    #[test]
    fn a_stream_s_terminal_event_holds_the_response_however_the_stream_is_cut() {
        for size in [1, 7, 64, STREAM.len()] {
            let response = terminal_response(STREAM, size).unwrap();
            assert_eq!(response["output"], json!([1]), "in pieces of {size}");
        }
        // Without event names, as some servers write it.
        let unnamed: Vec<u8> = String::from_utf8_lossy(STREAM)
            .lines()
            .filter(|l| !l.starts_with("event:"))
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect();
        assert_eq!(terminal_response(&unnamed, 5).unwrap()["id"], "r");
        let cut = &STREAM[..STREAM.len() - 40];
        assert!(terminal_response(cut, 64).is_none(), "a stream cut short");
        let incomplete = String::from_utf8_lossy(STREAM).replace(".completed", ".incomplete");
        assert!(terminal_response(incomplete.as_bytes(), 64).is_some());
    }

    #[test]
    fn the_last_terminal_event_is_the_one_kept_and_only_a_terminal_event_is() {
        let later = b"\n\nevent: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"response\":{\"id\":\"x\",\"instructions\":\"say response.completed\"}}\n\n";
        let stream = [STREAM, later.as_slice()].concat();
        assert_eq!(terminal_response(&stream, 9).unwrap()["id"], "r");
        let again = String::from_utf8_lossy(STREAM)
            .replace("\"id\":\"r\",\"object\"", "\"id\":\"r2\",\"object\"");
        let twice = [STREAM, b"\n\n".as_slice(), again.as_bytes()].concat();
        assert_eq!(terminal_response(&twice, 9).unwrap()["id"], "r2");
    }

    #[test]
    fn a_stream_too_long_to_keep_keeps_nothing() {
        // A comment line as long as the bound, then a whole stream.
        let mut long = vec![b':'; MAX_ANSWER_BYTES];
        long.extend_from_slice(b"\n\n");
        assert!(terminal_response(&[&long[..], STREAM].concat(), 1 << 20).is_none());
        long.truncate(MAX_ANSWER_BYTES - STREAM.len() - 2);
        long.extend_from_slice(b"\n\n");
        assert!(terminal_response(&[&long[..], STREAM].concat(), 1 << 20).is_some());
    }

    #[test]
    fn a_next_turn_continues_the_input_then_the_output() {
        let kept = Kept {
            response: json!({"id": "r", "output": [{"type": "message", "id": "m"}]}),
            input: vec![json!({"type": "message", "id": "u"})],
        };
        let ids: Vec<_> = kept
            .conversation()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!(ids, [json!("u"), json!("m")]);
        let items = input_items(Ok(Some(json!("hi")))).unwrap();
        assert_eq!(items[0]["content"][0]["text"], "hi");
        assert!(input_items(Ok(Some(json!(3)))).is_err());
    }
}
