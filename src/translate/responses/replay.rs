//! A whole `response` told again as the typed event stream (how the cache answers a
//! streaming Responses request): `response.created` and `response.in_progress` with no
//! output yet, each output item (added, its text, arguments, input or summary as one delta,
//! done), then the terminal event with the whole response. The response keeps its id: it
//! is the one `previous_response_id` names.

use super::{OfItem, OfResponse, Sequence};
use serde_json::{json, Map, Value};

/// The event stream of a whole response; none if it has no `output` list.
pub fn stream(whole: Map<String, Value>) -> Option<Vec<u8>> {
    let output = whole.get("output")?.as_array()?;
    let terminal = match whole.get("status").and_then(Value::as_str) {
        Some("incomplete") => "response.incomplete",
        _ => "response.completed",
    };
    let mut started = whole.clone();
    started.insert("status".into(), "in_progress".into());
    started.insert("output".into(), json!([]));
    started.insert("usage".into(), Value::Null);
    let mut events = Events::default();
    events.write("response.created", OfResponse { response: &started });
    events.write("response.in_progress", OfResponse { response: &started });
    for (index, item) in output.iter().enumerate() {
        let opened = opened(item);
        let added = OfItem {
            output_index: index,
            item: &opened,
        };
        events.write("response.output_item.added", added);
        events.item(index, item);
        let done = OfItem {
            output_index: index,
            item,
        };
        events.write("response.output_item.done", done);
    }
    events.write(terminal, OfResponse { response: &whole });
    Some(events.out)
}

/// The events written so far.
#[derive(Default)]
struct Events {
    out: Vec<u8>,
    sequence: Sequence,
}

impl Events {
    fn write(&mut self, kind: &str, fields: impl serde::Serialize) {
        self.sequence.write(&mut self.out, kind, fields);
    }

    /// What fills an output item in: its text, arguments, input or summary, whole.
    fn item(&mut self, index: usize, item: &Value) {
        let id = item.get("id").cloned().unwrap_or(Value::Null);
        let place = Place(json!({"item_id": id, "output_index": index}));
        let field = |name: &str| item.get(name).cloned().unwrap_or_else(|| "".into());
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for (j, part) in parts(item, "content").enumerate() {
                    self.content_part(&place, j, part);
                }
            }
            Some("reasoning") => {
                for (j, part) in parts(item, "summary").enumerate() {
                    self.summary_part(&place, j, part);
                }
            }
            Some("function_call") => {
                let arguments = field("arguments");
                let delta = place.with(json!({"delta": arguments}));
                self.write("response.function_call_arguments.delta", delta);
                let done = place.with(json!({"name": field("name"), "arguments": arguments}));
                self.write("response.function_call_arguments.done", done);
            }
            Some("custom_tool_call") => {
                let input = field("input");
                let delta = place.with(json!({"delta": input}));
                self.write("response.custom_tool_call_input.delta", delta);
                let done = place.with(json!({"input": input}));
                self.write("response.custom_tool_call_input.done", done);
            }
            Some("web_search_call") => {
                for kind in ["in_progress", "searching", "completed"] {
                    let e = place.with(json!({}));
                    self.write(&format!("response.web_search_call.{kind}"), e);
                }
            }
            _ => {}
        }
    }

    /// A message's part: added (empty, if text), its text as one delta, done.
    fn content_part(&mut self, place: &Place, j: usize, part: &Value) {
        let is_text = part.get("type").and_then(Value::as_str) == Some("output_text");
        let empty = json!({"type": "output_text", "text": "", "annotations": []});
        let opened = if is_text { &empty } else { part };
        let added = place.with(json!({"content_index": j, "part": opened}));
        self.write("response.content_part.added", added);
        if is_text {
            let text = part.get("text").cloned().unwrap_or_else(|| "".into());
            let delta = json!({"content_index": j, "delta": text, "logprobs": []});
            self.write("response.output_text.delta", place.with(delta));
            let done = json!({"content_index": j, "text": text, "logprobs": []});
            self.write("response.output_text.done", place.with(done));
        }
        let done = place.with(json!({"content_index": j, "part": part}));
        self.write("response.content_part.done", done);
    }

    /// A reasoning summary's part: added empty, its text as one delta, done.
    fn summary_part(&mut self, place: &Place, j: usize, part: &Value) {
        let text = part.get("text").cloned().unwrap_or_else(|| "".into());
        let empty = json!({"type": "summary_text", "text": ""});
        let added = place.with(json!({"summary_index": j, "part": empty}));
        self.write("response.reasoning_summary_part.added", added);
        let delta = place.with(json!({"summary_index": j, "delta": text}));
        self.write("response.reasoning_summary_text.delta", delta);
        let done = place.with(json!({"summary_index": j, "text": text}));
        self.write("response.reasoning_summary_text.done", done);
        let done = place.with(json!({"summary_index": j, "part": part}));
        self.write("response.reasoning_summary_part.done", done);
    }
}

/// Where an event is about: its item's id and output index.
struct Place(Value);

impl Place {
    /// The place, with `fields` beside it.
    fn with(&self, fields: Value) -> Value {
        let mut event = self.0.clone();
        if let (Some(event), Value::Object(fields)) = (event.as_object_mut(), fields) {
            event.extend(fields);
        }
        event
    }
}

/// The parts of an item's `field` (`content`, `summary`).
fn parts<'a>(item: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    item.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// An output item as `output_item.added` tells it: in progress, nothing in it yet.
fn opened(item: &Value) -> Value {
    let mut opened = item.clone();
    if opened.get("status").is_some() {
        opened["status"] = "in_progress".into();
    }
    for (field, empty) in [
        ("content", json!([])),
        ("summary", json!([])),
        ("arguments", json!("")),
        ("input", json!("")),
    ] {
        if opened.get(field).is_some() {
            opened[field] = empty;
        }
    }
    opened
}
