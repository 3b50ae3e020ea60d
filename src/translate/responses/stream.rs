//! OpenAI chunks -> the Responses API's typed events, chunk by chunk: `response.created` and
//! `response.in_progress` first, each output item opened (`output_item.added`, its part),
//! filled by deltas (a `custom` tool's input in one, when its call ends: it streams as
//! JSON around the text), and closed (`.done` events) as the next begins, and a terminal
//! `response.completed` or `response.incomplete` holding the whole response, which is
//! the one thing kept until the end (the protocol repeats the output there).

use super::super::openai::{ChatChunk, ChunkChoice, Delta, ToolCallDelta, Usage, UsageField};
use super::super::sse::{write_event, write_json};
use super::super::web_search::{final_status, responses_item, Annotation, WebSearchCall};
use super::{
    call_item, custom_call_item, custom_input, ending, function_call_item, item_id, reasoning_item,
    response_object, End, JsonText, MessageItem, OfItem, OfResponse, Sequence, SummaryPart,
    TextPart, ToolNames,
};
use crate::body::raw_json;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// The output item being streamed.
enum Open {
    Reasoning {
        id: String,
        summary: String,
        /// A `summary_text` part was announced (there is summary text).
        part: bool,
        thinking: Vec<Value>,
    },
    Text {
        id: String,
        text: String,
        /// Its `url_citation`s, in the Responses API's shape.
        annotations: Vec<Value>,
        /// Characters of the answer's text before this item's: citations count from the
        /// start of the chat form's whole content, and this item holds only part of it.
        base: usize,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        /// The chat chunk's tool call index it is built from.
        index: u32,
        /// Of a `custom` tool: its input is only known whole, when the call ends (the
        /// arguments stream as the JSON object around it).
        custom: bool,
    },
}

/// An event about one output item (a part added or done, its whole text, a call's
/// arguments, a citation, and the frame of its deltas: see [`DeltaFrame`]): written from
/// borrowed fields, where a `json!` map per event cost more than the rest of the
/// translation. The fields are in the order the API writes them; each event has only its
/// own.
#[derive(Serialize, Default, Clone, Copy)]
struct ItemEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotation_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotation: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<JsonText<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<Part<'a>>,
}

/// The part an event is about: a message's text, or a reasoning summary's.
#[derive(Serialize, Clone, Copy)]
#[serde(untagged)]
enum Part<'a> {
    Text(&'a TextPart<'a>),
    Summary(&'a SummaryPart<'a>),
}

impl<'a> ItemEvent<'a> {
    fn of(item_id: &'a str, output_index: usize) -> Self {
        ItemEvent {
            item_id,
            output_index,
            ..ItemEvent::default()
        }
    }
}

/// Writes an item's event of type `kind` under the next `sequence_number`.
fn write_item<'a>(out: &mut Vec<u8>, sequence: &mut Sequence, kind: &'a str, event: ItemEvent<'a>) {
    let event = ItemEvent {
        kind,
        sequence_number: sequence.next(),
        ..event
    };
    write_json(out, Some(kind), &event);
}

/// A delta event's fields but for its sequence number and its text, made at an item's first
/// delta and copied for the rest (until the item closes): a stream is mostly deltas, and
/// serialising each whole (six or seven keys, three strings) was an eighth of translating
/// Anthropic to the Responses API. The bytes are [`write_item`]'s (tested).
#[derive(Default)]
struct DeltaFrame {
    /// The kind and output index the frame is for.
    of: Option<(&'static str, usize)>,
    /// `,"item_id":"…","output_index":…` and the event's other fields, then `,"delta":`.
    middle: Vec<u8>,
    /// What follows the text: `,"logprobs":[]}` or `}`.
    tail: &'static str,
}

/// How an [`ItemEvent`] of no kind and sequence number 0 begins: what the frame's middle
/// follows.
const UNNUMBERED: &[u8] = br#"{"type":"","sequence_number":0"#;

impl DeltaFrame {
    /// Writes a `kind` event of `delta`'s text under the next `sequence_number`. `event`
    /// holds the other fields, and is the same for every delta of an item: only an item's
    /// first delta of a kind reads it.
    fn write(
        &mut self,
        out: &mut Vec<u8>,
        sequence: &mut Sequence,
        kind: &'static str,
        event: ItemEvent<'_>,
        delta: &str,
    ) {
        if self.of != Some((kind, event.output_index)) {
            self.frame(kind, &event);
        }
        debug_assert!(self.holds(kind, &event), "a frame of another event");
        let (number, middle, tail) = (sequence.next(), &self.middle, self.tail);
        write_event(out, Some(kind), |out| {
            for part in [r#"{"type":""#, kind, r#"","sequence_number":"#] {
                out.extend_from_slice(part.as_bytes());
            }
            serde_json::to_writer(&mut *out, &number)?;
            out.extend_from_slice(middle);
            serde_json::to_writer(&mut *out, delta)?;
            out.extend_from_slice(tail.as_bytes());
            Ok(())
        });
    }

    /// Whether the frame is the one `event` would make (checked in debug builds: an item's
    /// deltas all have the same fields).
    fn holds(&self, kind: &'static str, event: &ItemEvent<'_>) -> bool {
        let mut fresh = DeltaFrame::default();
        fresh.frame(kind, event);
        (&fresh.middle, fresh.tail) == (&self.middle, self.tail)
    }

    /// Makes the frame for `kind`'s events about `event`'s item, from the item event's own
    /// serialisation (of no kind and number 0): what follows its first two fields.
    fn frame(&mut self, kind: &'static str, event: &ItemEvent<'_>) {
        debug_assert!(
            event.delta.is_none() && event.text.is_none() && event.part.is_none(),
            "serde writes these after the delta: a frame cannot hold them"
        );
        let fields = ItemEvent {
            kind: "",
            sequence_number: 0,
            delta: None,
            logprobs: None,
            ..*event
        };
        // The gateway's own fields: serialising them cannot fail.
        let json = serde_json::to_vec(&fields).unwrap_or_default();
        let middle = json
            .strip_prefix(UNNUMBERED)
            .and_then(|rest| rest.strip_suffix(b"}"));
        debug_assert!(
            middle.is_some(),
            "an item event begins with its type and number"
        );
        self.middle.clear();
        self.middle.extend_from_slice(middle.unwrap_or_default());
        self.middle.extend_from_slice(br#","delta":"#);
        self.tail = if event.logprobs.is_some() {
            r#","logprobs":[]}"#
        } else {
            "}"
        };
        self.of = Some((kind, event.output_index));
    }
}

pub struct FromOpenAi {
    tool_names: ToolNames,
    id: String,
    model: String,
    created_at: u64,
    sequence: Sequence,
    deltas: DeltaFrame,
    started: bool,
    /// The items already closed, for the terminal event: as JSON text, as each was written
    /// when it closed.
    output: Vec<Box<RawValue>>,
    open: Option<Open>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// Characters of text written so far, over every message item.
    text_chars: usize,
}

impl FromOpenAi {
    pub fn new(model: String, tool_names: ToolNames) -> Self {
        FromOpenAi {
            tool_names,
            id: item_id("resp"),
            model,
            created_at: super::super::openai::now_unix(),
            sequence: Sequence::default(),
            deltas: DeltaFrame::default(),
            started: false,
            output: Vec::new(),
            open: None,
            finish_reason: None,
            usage: None,
            text_chars: 0,
        }
    }

    /// Translates one chunk, appending the events it makes.
    pub fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        if let UsageField::Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        match chunk.choices.iter().find(|c| c.index == 0) {
            Some(choice) => self.choice(choice, out),
            None => self.start(out),
        }
    }

    /// Translates a choice: a chunk's, or one an Anthropic or Gemini stream was read into,
    /// with no chunk made around it. Only choice 0 is the response's.
    pub fn choice(&mut self, choice: &ChunkChoice, out: &mut Vec<u8>) {
        self.start(out);
        if choice.index != 0 {
            return;
        }
        self.reasoning(&choice.delta, out);
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            self.text(text, out);
        }
        for call in choice.delta.tool_calls.iter().flatten() {
            self.call(call, out);
        }
        if let Some(search) = &choice.delta.web_search_call {
            self.web_search(search, out);
        }
        if let Some(annotations) = &choice.delta.annotations {
            self.annotations(annotations, out);
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
    }

    /// A choice 0 of `text` alone, translated as [`Self::choice`] translates it.
    pub fn text_alone(&mut self, text: &str, out: &mut Vec<u8>) {
        self.start(out);
        if !text.is_empty() {
            self.text(text, out);
        }
    }

    /// The `status` the response ends with.
    pub fn status(&self) -> &'static str {
        ending(self.finish_reason.as_deref()).0
    }

    /// Ends the response: the open item closed, then the terminal event.
    pub fn finish(&mut self, usage: Option<Usage>, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let (status, incomplete_details) = ending(self.finish_reason.as_deref());
        let end = End {
            created_at: self.created_at,
            incomplete_details,
            usage: usage.or(self.usage),
        };
        let output = std::mem::take(&mut self.output);
        let response = response_object(&self.id, &self.model, status, &output, &end);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.sequence.write(
            out,
            kind,
            OfResponse {
                response: &response,
            },
        );
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let end = End {
            created_at: self.created_at,
            incomplete_details: Value::Null,
            usage: None,
        };
        let response = response_object::<Value>(&self.id, &self.model, "in_progress", &[], &end);
        // The two events hold the same response: it is serialised once (the gateway's own
        // fields: this cannot fail).
        let Ok(response) = serde_json::value::to_raw_value(&response) else {
            return;
        };
        for kind in ["response.created", "response.in_progress"] {
            let response = &*response;
            self.sequence.write(out, kind, OfResponse { response });
        }
    }

    fn reasoning(&mut self, delta: &Delta, out: &mut Vec<u8>) {
        let text = delta.reasoning_content.as_deref().filter(|t| !t.is_empty());
        let blocks = delta.thinking_blocks.as_deref().filter(|b| !b.is_empty());
        if text.is_none() && blocks.is_none() {
            return;
        }
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            let id = item_id("rs");
            self.open_item(out, &reasoning_item(&id, "", &[]));
            self.open = Some(Open::Reasoning {
                id,
                summary: String::new(),
                part: false,
                thinking: Vec::new(),
            });
        }
        let index = self.index();
        let Some(Open::Reasoning {
            id,
            summary,
            part,
            thinking,
        }) = &mut self.open
        else {
            return;
        };
        // Borrowed from the open item: the sequence and the delta frame are other fields.
        let announce = text.is_some() && !std::mem::replace(part, true);
        if let Some(text) = text {
            summary.push_str(text);
        }
        thinking.extend(blocks.into_iter().flatten().cloned());
        if announce {
            let part = SummaryPart::new("");
            let e = ItemEvent {
                summary_index: Some(0),
                part: Some(Part::Summary(&part)),
                ..ItemEvent::of(id, index)
            };
            write_item(
                out,
                &mut self.sequence,
                "response.reasoning_summary_part.added",
                e,
            );
        }
        if let Some(text) = text {
            let event = ItemEvent {
                summary_index: Some(0),
                ..ItemEvent::of(id, index)
            };
            let kind = "response.reasoning_summary_text.delta";
            self.deltas
                .write(out, &mut self.sequence, kind, event, text);
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Text { .. })) {
            let id = item_id("msg");
            self.open_item(out, &MessageItem::new(&id, "in_progress", &[]));
            let part = TextPart::new("", &[]);
            let e = ItemEvent {
                content_index: Some(0),
                part: Some(Part::Text(&part)),
                ..ItemEvent::of(&id, self.index())
            };
            write_item(out, &mut self.sequence, "response.content_part.added", e);
            self.open = Some(Open::Text {
                id,
                text: String::new(),
                annotations: Vec::new(),
                base: self.text_chars,
            });
        }
        self.text_chars += text.chars().count();
        let index = self.index();
        if let Some(Open::Text { id, text: all, .. }) = &mut self.open {
            all.push_str(text);
            let event = ItemEvent {
                content_index: Some(0),
                logprobs: Some([]),
                ..ItemEvent::of(id, index)
            };
            let kind = "response.output_text.delta";
            self.deltas
                .write(out, &mut self.sequence, kind, event, text);
        }
    }

    fn call(&mut self, call: &ToolCallDelta, out: &mut Vec<u8>) {
        let same = matches!(self.open, Some(Open::Call { index, .. }) if index == call.index);
        let function = call.function.as_ref();
        if !same || call.id.is_some() {
            let name = function.and_then(|f| f.name.clone()).unwrap_or_default();
            let id = item_id(self.tool_names.call_prefix(&name));
            let call_id = call.id.clone().unwrap_or_default();
            let item = call_item(&id, "in_progress", &call_id, (&name, &self.tool_names), "");
            self.open_item(out, &item);
            self.open = Some(Open::Call {
                id,
                call_id,
                custom: self.tool_names.is_custom(&name),
                name,
                arguments: String::new(),
                index: call.index,
            });
        }
        let delta = function.and_then(|f| f.arguments.as_deref());
        let index = self.index();
        let Some(Open::Call {
            id,
            arguments,
            custom,
            ..
        }) = &mut self.open
        else {
            return;
        };
        if let Some(delta) = delta.filter(|d| !d.is_empty()) {
            arguments.push_str(delta);
            if !*custom {
                let event = ItemEvent::of(id, index);
                let kind = "response.function_call_arguments.delta";
                self.deltas
                    .write(out, &mut self.sequence, kind, event, delta);
            }
        }
    }

    /// A search the provider ran: a `web_search_call` item, told whole (it is over by the
    /// time the provider says what it found).
    fn web_search(&mut self, search: &WebSearchCall, out: &mut Vec<u8>) {
        let id = item_id("ws");
        self.open_item(out, &responses_item(&id, search, "in_progress"));
        let index = self.index();
        for kind in ["in_progress", "searching", "completed"] {
            let e = ItemEvent::of(&id, index);
            write_item(
                out,
                &mut self.sequence,
                &format!("response.web_search_call.{kind}"),
                e,
            );
        }
        let item = raw_json(&responses_item(&id, search, final_status(search)));
        let done = OfItem {
            output_index: index,
            item: &*item,
        };
        self.sequence.write(out, "response.output_item.done", done);
        self.output.push(item);
    }

    /// Citations of the text being written: each announced, and kept for its `.done`.
    fn annotations(&mut self, cited: &[Annotation], out: &mut Vec<u8>) {
        let index = self.index();
        let Some(Open::Text {
            id,
            annotations,
            base,
            ..
        }) = &mut self.open
        else {
            return;
        };
        for annotation in cited {
            let mut annotation = annotation.to_responses();
            for end in ["start_index", "end_index"] {
                let at = annotation[end].as_u64().unwrap_or_default();
                annotation[end] = at.saturating_sub(*base as u64).into();
            }
            let e = ItemEvent {
                content_index: Some(0),
                annotation_index: Some(annotations.len()),
                annotation: Some(&annotation),
                ..ItemEvent::of(id, index)
            };
            write_item(
                out,
                &mut self.sequence,
                "response.output_text.annotation.added",
                e,
            );
            annotations.push(annotation);
        }
    }

    /// The output index of the open item (or of the next one).
    fn index(&self) -> usize {
        self.output.len()
    }

    /// Closes the open item, if any, and announces a new one.
    fn open_item(&mut self, out: &mut Vec<u8>, item: &impl Serialize) {
        self.close(out);
        let added = OfItem {
            output_index: self.index(),
            item,
        };
        self.sequence
            .write(out, "response.output_item.added", added);
    }

    /// Closes the open item: its `.done` events, with the whole of what it streamed.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        self.deltas.of = None;
        let index = self.index();
        let item = match open {
            Open::Reasoning {
                id,
                summary,
                part,
                thinking,
            } => {
                let summary = raw_json(&summary.as_str());
                let summary = JsonText::Escaped(&summary);
                if part {
                    let base = ItemEvent {
                        summary_index: Some(0),
                        ..ItemEvent::of(&id, index)
                    };
                    let e = ItemEvent {
                        text: Some(summary),
                        ..base
                    };
                    write_item(
                        out,
                        &mut self.sequence,
                        "response.reasoning_summary_text.done",
                        e,
                    );
                    let whole = SummaryPart::new(summary);
                    let e = ItemEvent {
                        part: Some(Part::Summary(&whole)),
                        ..base
                    };
                    write_item(
                        out,
                        &mut self.sequence,
                        "response.reasoning_summary_part.done",
                        e,
                    );
                }
                raw_json(&reasoning_item(&id, summary, &thinking))
            }
            Open::Text {
                id,
                text,
                annotations,
                ..
            } => {
                let text = raw_json(&text.as_str());
                let text = JsonText::Escaped(&text);
                let part = [TextPart::new(text, &annotations)];
                let base = ItemEvent {
                    content_index: Some(0),
                    ..ItemEvent::of(&id, index)
                };
                let e = ItemEvent {
                    text: Some(text),
                    logprobs: Some([]),
                    ..base
                };
                write_item(out, &mut self.sequence, "response.output_text.done", e);
                // The part is the item's one part, as it is written in the item.
                let e = ItemEvent {
                    part: Some(Part::Text(&part[0])),
                    ..base
                };
                write_item(out, &mut self.sequence, "response.content_part.done", e);
                raw_json(&MessageItem::new(&id, "completed", &part))
            }
            Open::Call {
                id,
                call_id,
                name,
                arguments,
                custom: true,
                ..
            } => {
                let input = custom_input(&arguments);
                let event = ItemEvent {
                    delta: Some(&input),
                    ..ItemEvent::of(&id, index)
                };
                write_item(
                    out,
                    &mut self.sequence,
                    "response.custom_tool_call_input.delta",
                    event,
                );
                let e = ItemEvent {
                    input: Some(&input),
                    ..ItemEvent::of(&id, index)
                };
                write_item(
                    out,
                    &mut self.sequence,
                    "response.custom_tool_call_input.done",
                    e,
                );
                raw_json(&custom_call_item(&id, "completed", &call_id, &name, &input))
            }
            Open::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => {
                let e = ItemEvent {
                    name: Some(&name),
                    arguments: Some(&arguments),
                    ..ItemEvent::of(&id, index)
                };
                write_item(
                    out,
                    &mut self.sequence,
                    "response.function_call_arguments.done",
                    e,
                );
                raw_json(&function_call_item(
                    &id,
                    "completed",
                    &call_id,
                    (&name, &self.tool_names),
                    &arguments,
                ))
            }
        };
        let done = OfItem {
            output_index: index,
            item: &*item,
        };
        self.sequence.write(out, "response.output_item.done", done);
        self.output.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame writes what serialising each delta event whole writes, for every kind of
    /// delta, at an item's first delta and after it, across items, and for text that needs
    /// escaping.
    #[test]
    fn delta_frames_write_the_events_bytes() {
        let kinds: [(&str, ItemEvent); 4] = [
            (
                "response.output_text.delta",
                ItemEvent {
                    content_index: Some(0),
                    logprobs: Some([]),
                    ..ItemEvent::of("msg_1", 1)
                },
            ),
            (
                "response.reasoning_summary_text.delta",
                ItemEvent {
                    summary_index: Some(0),
                    ..ItemEvent::of("rs_1", 0)
                },
            ),
            (
                "response.function_call_arguments.delta",
                ItemEvent::of("fc_1", 2),
            ),
            (
                "response.output_text.delta",
                ItemEvent {
                    content_index: Some(0),
                    logprobs: Some([]),
                    ..ItemEvent::of("msg_2", 3)
                },
            ),
        ];
        let texts = ["Hi", " \"quoted\"\n\u{1F98A} \\ \u{7}", ""];
        let (mut framed, mut whole) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (Sequence::default(), Sequence::default());
        let mut frame = DeltaFrame::default();
        for (kind, event) in kinds {
            for text in texts {
                frame.write(&mut framed, &mut a, kind, event, text);
                let event = ItemEvent {
                    delta: Some(text),
                    ..event
                };
                write_item(&mut whole, &mut b, kind, event);
            }
        }
        assert_eq!(String::from_utf8(framed), String::from_utf8(whole));
    }

    /// A frame is only reused for the event it was made from (checked in debug builds).
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a frame of another event")]
    fn a_frame_is_not_reused_for_another_item() {
        let (mut out, mut sequence) = (Vec::new(), Sequence::default());
        let mut frame = DeltaFrame::default();
        let kind = "response.function_call_arguments.delta";
        frame.write(&mut out, &mut sequence, kind, ItemEvent::of("fc_1", 0), "{");
        frame.write(&mut out, &mut sequence, kind, ItemEvent::of("fc_2", 0), "}");
    }
}
