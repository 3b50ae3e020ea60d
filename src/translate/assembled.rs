//! The assistant message a trace shows, assembled from an answer's parts as they pass.
//!
//! Every wire format's transcript reader (`<wire>/transcript.rs`) feeds one: from the app's
//! bytes when they are read back (a whole answer, a cached one), or event by event on the
//! request path, straight from the decoder's chunks when the stream is translated. The
//! exporters then only serialise what it made.

use crate::telemetry::capture::Output;
use serde::Serialize;
use serde_json::value::to_raw_value;

/// A tool call's parts, as they come (a streamed call sends its arguments in pieces).
#[derive(Debug, Default)]
pub struct CallPart<'a> {
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub arguments: Option<&'a str>,
}

/// An assistant message being assembled, its text bounded by the capture limit.
#[derive(Debug)]
pub struct Assembled {
    seen: bool,
    text: String,
    reasoning: String,
    /// By index: id, name, arguments.
    tools: Vec<(String, String, String)>,
    finish_reasons: Vec<String>,
    /// Bytes of text, reasoning and arguments still to keep.
    room: usize,
    truncated: bool,
}

impl Default for Assembled {
    /// Unbounded: for text read back from a capture, which was bounded as it was taken.
    fn default() -> Self {
        Assembled::bounded(usize::MAX)
    }
}

impl Assembled {
    /// A message that keeps at most `limit` bytes of text (reasoning and arguments count).
    pub fn bounded(limit: usize) -> Assembled {
        Assembled {
            seen: false,
            text: String::new(),
            reasoning: String::new(),
            tools: Vec::new(),
            finish_reasons: Vec::new(),
            room: limit,
            truncated: false,
        }
    }

    /// Notes that an answer (or its start) was seen: an empty answer is still a message.
    pub fn seen(&mut self) {
        self.seen = true;
    }

    pub fn text(&mut self, text: Option<&str>) {
        make_room(&mut self.text, text, self.room);
        keep(&mut self.text, text, &mut self.room, &mut self.truncated);
    }

    pub fn reasoning(&mut self, text: Option<&str>) {
        make_room(&mut self.reasoning, text, self.room);
        keep(
            &mut self.reasoning,
            text,
            &mut self.room,
            &mut self.truncated,
        );
    }

    /// Adds to the call at `index` (a new one past the last).
    pub fn call(&mut self, index: usize, part: CallPart<'_>) {
        // An index far past the calls seen is not a real call: never grow without bound.
        if index > self.tools.len() + 64 {
            return;
        }
        if self.tools.len() <= index {
            self.tools.resize_with(index + 1, Default::default);
        }
        let (room, truncated) = (&mut self.room, &mut self.truncated);
        let Some((id, name, arguments)) = self.tools.get_mut(index) else {
            return;
        };
        keep(id, part.id, room, truncated);
        keep(name, part.name, room, truncated);
        keep(arguments, part.arguments, room, truncated);
    }

    /// A call after the ones seen so far (formats that send whole calls, without indexes).
    pub fn next_call(&mut self, part: CallPart<'_>) {
        self.call(self.tools.len(), part);
    }

    pub fn finish_reason(&mut self, reason: Option<&str>) {
        if let Some(r) = reason {
            self.finish_reasons.push(r.to_string());
        }
    }

    /// The stream ended with this one reason, in the app's words: it replaces the chat
    /// chunks' reasons a translated stream was assembled from.
    pub fn ended_with(&mut self, reason: &str) {
        self.finish_reasons = vec![reason.to_string()];
    }

    /// The message in OpenAI's `message` shape, as JSON text, with its finish reasons and
    /// whether text was left out for want of room.
    pub fn finish(self) -> Output {
        if !self.seen {
            return Output {
                truncated: self.truncated,
                ..Output::default()
            };
        }
        let message = AssistantMessage {
            role: "assistant",
            content: &self.text,
            reasoning_content: &self.reasoning,
            tool_calls: self
                .tools
                .iter()
                .filter(|(_, name, _)| !name.is_empty())
                .map(|(id, name, arguments)| ToolCall {
                    id,
                    kind: "function",
                    function: Function { name, arguments },
                })
                .collect(),
        };
        Output {
            message: to_raw_value(&message).ok(),
            finish_reasons: self.finish_reasons,
            truncated: self.truncated,
        }
    }
}

/// Makes room for a streamed text at its first piece: it comes a few bytes at a time, and
/// a string grown from nothing was copied over four times in a short answer. (Nothing for
/// an answer without that kind of text.)
fn make_room(text: &mut String, piece: Option<&str>, room: usize) {
    const FIRST: usize = 256;
    if text.capacity() == 0 && piece.is_some_and(|p| !p.is_empty()) {
        text.reserve(FIRST.min(room));
    }
}

/// Appends what fits of `value` in `room` (cut at a character boundary); notes a cut.
fn keep(into: &mut String, value: Option<&str>, room: &mut usize, truncated: &mut bool) {
    let Some(s) = value else { return };
    let mut n = s.len().min(*room);
    if n < s.len() {
        *truncated = true;
        while !s.is_char_boundary(n) {
            n -= 1;
        }
    }
    into.push_str(&s[..n]);
    *room -= n;
}

/// The assembled answer, in OpenAI's `message` shape.
#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reasoning_content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_past_the_bound_is_cut_at_a_character_and_noted() {
        let mut m = Assembled::bounded(5);
        m.seen();
        m.text(Some("abcé"));
        assert!(!m.truncated, "five bytes fit in five");
        m.reasoning(Some("xy"));
        m.call(
            0,
            CallPart {
                name: Some("f"),
                ..CallPart::default()
            },
        );
        let out = m.finish();
        assert!(out.truncated);
        let v: serde_json::Value = serde_json::from_str(out.message.unwrap().get()).unwrap();
        assert_eq!(v["content"], "abcé");
        assert!(v.get("reasoning_content").is_none() && v.get("tool_calls").is_none());
    }

    #[test]
    fn nothing_seen_is_no_message() {
        assert!(Assembled::default().finish().message.is_none());
    }
}
