//! The Messages format's half of a trace's text: a request's conversation (its `system`
//! first), and an answer read into an [`Assembled`] message from a whole message or one
//! event of its stream.

use super::stream::plain_text_delta;
use super::{usage, AUsage};
use crate::body::JsonBody;
use crate::telemetry::record::InputText;
use crate::translate::assembled::{Assembled, CallPart};
use crate::translate::json_text::OptionalStr;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The conversation of a Messages request, a system prompt given apart first (see
/// [`InputText::WithSystem`]); `None` when its messages are not a list.
pub fn conversation(body: &JsonBody) -> Option<InputText> {
    let messages = body.get_non_null("messages")?;
    if !messages.get().starts_with('[') {
        return None;
    }
    Some(match body.get_non_null("system") {
        None => InputText::Conversation(messages.to_owned()),
        Some(system) => InputText::WithSystem {
            system: system.to_owned(),
            messages: messages.to_owned(),
        },
    })
}

/// The usage an event reported (`message_start`'s message and an event's own `usage`),
/// still raw: only those that want the counts read it (the usage tap, and a whole answer
/// read once), so a trace read back does not pay for it, and a report the counts cannot
/// read does not lose the answer. And whether the event was a text delta of plain text that
/// is not empty, read without a parser: the stream's content has begun there.
#[derive(Default)]
pub struct Reported<'a> {
    message: Option<&'a RawValue>,
    usage: Option<&'a RawValue>,
    pub text: bool,
}

impl Reported<'_> {
    pub fn reports(&self) -> [Option<AUsage>; 2] {
        usage::reports(self.message, self.usage)
    }

    /// The event's own `usage`: a whole message's counts.
    pub fn own(&self) -> Option<AUsage> {
        usage::own(self.usage)
    }
}

/// A whole Messages answer, or one of its stream's events, as JSON text; the usage it
/// reported, unread.
pub fn read<'a>(data: &'a str, into: &mut Assembled) -> Reported<'a> {
    if let Some((_, text)) = plain_text_delta(data) {
        into.text(Some(text));
        return Reported {
            text: !text.is_empty(),
            ..Reported::default()
        };
    }
    read_by_serde(data, into)
}

/// [`read`], by serde.
fn read_by_serde<'a>(data: &'a str, into: &mut Assembled) -> Reported<'a> {
    let Ok(event) = serde_json::from_str::<Event>(data) else {
        return Reported::default();
    };
    let reported = Reported {
        message: event.message,
        usage: event.usage,
        text: false,
    };
    let index = event.index.unwrap_or(0);
    match &*event.kind {
        "message" => {
            into.seen();
            for (i, block) in event.content.iter().flatten().enumerate() {
                read_block(i, block, into);
            }
            into.finish_reason(event.stop_reason.as_deref());
        }
        "content_block_start" => {
            into.seen();
            if let Some(block) = &event.content_block {
                read_block(index, block, into);
            }
        }
        "content_block_delta" => {
            let Some(delta) = event.delta else {
                return reported;
            };
            into.text(delta.text.as_deref());
            into.reasoning(delta.thinking.as_deref());
            if delta.partial_json.is_some() {
                let part = CallPart {
                    arguments: delta.partial_json.as_deref(),
                    ..CallPart::default()
                };
                into.call(index, part);
            }
        }
        "message_delta" => {
            into.finish_reason(event.delta.as_ref().and_then(|d| d.stop_reason.as_deref()));
        }
        _ => {}
    }
    reported
}

/// A content block: text, thinking, or a tool call (kept at its block index).
fn read_block(index: usize, block: &Block, into: &mut Assembled) {
    match &*block.kind {
        "text" => into.text(block.text.as_deref()),
        "thinking" => into.reasoning(block.thinking.as_deref()),
        "tool_use" => {
            // A streamed call starts with `{}` and sends its arguments as deltas.
            let input = block
                .input
                .map(RawValue::get)
                .filter(|i| !is_empty_object(i));
            let part = CallPart {
                id: block.id.as_deref(),
                name: block.name.as_deref(),
                arguments: input,
            };
            into.call(index, part);
        }
        _ => {}
    }
}

fn is_empty_object(json: &str) -> bool {
    json.bytes().filter(|b| !b.is_ascii_whitespace()).eq(*b"{}")
}

/// A whole Messages answer or one event of its stream: only what a transcript reads.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    index: Option<usize>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    content_block: Option<Block<'a>>,
    #[serde(borrow)]
    content: Option<Vec<Block<'a>>>,
    #[serde(borrow)]
    stop_reason: OptionalStr<'a>,
    /// `message_start`'s message, for its usage (see [`Reported`]).
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    text: OptionalStr<'a>,
    #[serde(borrow)]
    thinking: OptionalStr<'a>,
    #[serde(borrow)]
    partial_json: OptionalStr<'a>,
    #[serde(borrow)]
    stop_reason: OptionalStr<'a>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: OptionalStr<'a>,
    #[serde(borrow)]
    thinking: OptionalStr<'a>,
    #[serde(borrow)]
    id: OptionalStr<'a>,
    #[serde(borrow)]
    name: OptionalStr<'a>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an event assembles to, read as [`read`] reads it and by serde alone.
    fn both(data: &str) -> (String, String) {
        let (mut fast, mut serde) = (Assembled::default(), Assembled::default());
        // A block is open, as in a stream, so that a delta has somewhere to go.
        fast.seen();
        serde.seen();
        read(data, &mut fast);
        read_by_serde(data, &mut serde);
        let text = |a: Assembled| format!("{:?}", a.finish());
        (text(fast), text(serde))
    }

    /// A text delta of plain text is read without a parser, and as serde reads it; every
    /// other shape is left to serde.
    #[test]
    fn plain_text_deltas_read_as_serde_reads_them() {
        let delta = |index: &str, text: &str| {
            format!(
                r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"{text}"}}}}"#
            )
        };
        for (data, fast) in [
            (delta("0", "tok é 🦊"), true),
            (delta("12", ""), true),
            (delta("0", r#"a \"q\" \n"#), false),
            (delta("0", "raw\u{1}"), false),
            (delta("01", "x"), false),
            (delta("1234567890", "x"), false),
            (delta("", "x"), false),
            (
                delta("0", "x").replace("text_delta", "thinking_delta"),
                false,
            ),
            (format!("{} ", delta("0", "x")), false),
        ] {
            assert_eq!(plain_text_delta(&data).is_some(), fast, "{data}");
            let (read, serde) = both(&data);
            assert_eq!(read, serde, "{data}");
        }
    }

    proptest::proptest! {
        /// Whatever the text and index, the fast path reads what serde reads.
        #[test]
        fn any_text_delta_reads_as_serde_reads_it(
            text in ".*",
            raw in "[^\"\\\\]{0,8}",
            index in "[0-9]{0,11}",
        ) {
            let escaped = serde_json::to_string(&text).unwrap();
            for content in [escaped, format!("\"{raw}\"")] {
                let data = format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{content}}}}}"#
                );
                let (read, serde) = both(&data);
                proptest::prop_assert_eq!(read, serde);
            }
        }
    }
}
