//! A Messages stream gathered into its whole message (for the cache): every field the events
//! carried is kept (`serde_json::Value`), citations and thinking signatures included.
//!
//! The deltas, most of a stream, are read borrowed and appended where they lie (a text delta
//! as Anthropic writes it, of plain text, without a parser); the few other events are read
//! whole, into maps.

use super::stream::plain_text_delta;
use crate::translate::fields::{append, text, whole_number};
use crate::translate::json_text::OptionalStr;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// An event, as far as telling a delta: its type, its block, and its delta as raw text.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type")]
    kind: OptionalStr<'a>,
    #[serde(borrow)]
    index: Option<&'a RawValue>,
    #[serde(borrow)]
    delta: Option<&'a RawValue>,
}

/// A `content_block_delta`'s delta.
#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(borrow, rename = "type")]
    kind: OptionalStr<'a>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    thinking: Option<&'a RawValue>,
    #[serde(borrow)]
    signature: Option<&'a RawValue>,
    #[serde(borrow)]
    partial_json: Option<&'a RawValue>,
    #[serde(borrow)]
    citation: Option<&'a RawValue>,
}

/// Messages stream events, gathered.
#[derive(Default)]
pub(crate) struct AnthropicStream {
    /// From `message_start`, with `message_delta`'s fields merged in.
    message: Option<Map<String, Value>>,
    /// Content blocks in index order, each with the `input` JSON text of a tool call so far.
    blocks: Vec<(Map<String, Value>, String)>,
    done: bool,
}

impl AnthropicStream {
    pub(crate) fn event(&mut self, data: &str) -> Option<()> {
        if let Some((index, text)) = plain_text_delta(data) {
            let (block, _) = self.blocks.get_mut(index)?;
            append(block, "text", text);
            return Some(());
        }
        let head: Event = serde_json::from_str(data).ok()?;
        let index = whole_number(head.index).and_then(|i| usize::try_from(i).ok());
        if head.kind.as_deref() == Some("content_block_delta") {
            let (block, input) = self.blocks.get_mut(index?)?;
            let delta = serde_json::from_str(head.delta?.get()).ok()?;
            return add_delta(block, input, delta);
        }
        // Only the events that carry fields to keep are read whole, into maps.
        let whole = || serde_json::from_str::<Map<String, Value>>(data).ok();
        match head.kind.as_deref() {
            Some("message_start") => {
                self.message = Some(object(whole()?.remove("message"))?);
            }
            Some("content_block_start") => {
                let block = (object(whole()?.remove("content_block"))?, String::new());
                // Blocks start in index order: the next one, or one started again.
                match index? {
                    next if next == self.blocks.len() => self.blocks.push(block),
                    again => *self.blocks.get_mut(again)? = block,
                }
            }
            Some("content_block_stop") => {
                let (block, input) = self.blocks.get_mut(index?)?;
                if !input.is_empty() {
                    block.insert("input".into(), serde_json::from_str(input).ok()?);
                }
            }
            Some("message_delta") => self.message_delta(whole()?)?,
            Some("message_stop") => self.done = true,
            Some("error") => return None,
            // `ping`, and events of the gateway's own (a request breakdown).
            _ => {}
        }
        Some(())
    }

    fn message_delta(&mut self, mut event: Map<String, Value>) -> Option<()> {
        let message = self.message.as_mut()?;
        if let Some(Value::Object(delta)) = event.remove("delta") {
            message.extend(delta);
        }
        if let Some(Value::Object(counts)) = event.remove("usage") {
            let usage = message.entry("usage").or_insert_with(|| json!({}));
            if !usage.is_object() {
                *usage = json!({});
            }
            if let Value::Object(usage) = usage {
                usage.extend(counts.into_iter().filter(|(_, c)| !c.is_null()));
            }
        }
        Some(())
    }

    pub(crate) fn into_whole(self) -> Option<Value> {
        let mut message = self.message.filter(|_| self.done)?;
        let content: Vec<Value> = self
            .blocks
            .into_iter()
            .map(|(block, _)| Value::Object(block))
            .collect();
        message.insert("content".into(), content.into());
        Some(Value::Object(message))
    }
}

/// An event's part that must be an object, taken out of it.
fn object(part: Option<Value>) -> Option<Map<String, Value>> {
    match part? {
        Value::Object(fields) => Some(fields),
        _ => None,
    }
}

/// Applies one `content_block_delta` to its block (a tool call's input is kept as text until
/// the block stops).
fn add_delta(block: &mut Map<String, Value>, input: &mut String, delta: BlockDelta) -> Option<()> {
    match delta.kind.as_deref()? {
        "text_delta" => append(block, "text", &text(delta.text)?),
        "thinking_delta" => append(block, "thinking", &text(delta.thinking)?),
        "signature_delta" => {
            block.insert("signature".into(), text(delta.signature)?.into());
        }
        "input_json_delta" => input.push_str(&text(delta.partial_json)?),
        "citations_delta" => {
            let citation: Value = serde_json::from_str(delta.citation?.get()).ok()?;
            match block.get_mut("citations").and_then(Value::as_array_mut) {
                Some(citations) => citations.push(citation),
                None => {
                    block.insert("citations".into(), json!([citation]));
                }
            }
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deltas, read borrowed, build their blocks (escaped text, a citation, a tool call's
    /// input in pieces); the other events are merged as before; an error keeps nothing.
    #[test]
    fn a_stream_gathers_into_its_whole_message() {
        let events = [
            r#"{"type":"message_start","message":{"id":"m","role":"assistant","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a \"b\"\n"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"web_search_result_location","url":"u"}}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let mut stream = AnthropicStream::default();
        for data in events {
            assert!(stream.event(data).is_some(), "{data}");
        }
        let whole = stream.into_whole().unwrap();
        assert_eq!(
            whole["content"],
            json!([
                {"type": "text", "text": "a \"b\"\n",
                 "citations": [{"type": "web_search_result_location", "url": "u"}]},
                {"type": "tool_use", "id": "t", "name": "f", "input": {"x": 1}},
            ])
        );
        assert_eq!(whole["stop_reason"], "tool_use");
        assert_eq!(
            whole["usage"],
            json!({"input_tokens": 3, "output_tokens": 7})
        );
        let mut failed = AnthropicStream::default();
        assert!(failed.event(events[0]).is_some());
        assert!(failed
            .event(r#"{"type":"error","error":{"type":"overloaded_error"}}"#)
            .is_none());
        let delta_without_text =
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#;
        assert!(failed.event(events[1]).is_some());
        assert!(failed.event(delta_without_text).is_none());
    }

    /// Text deltas read without a parser gather as serde's reading of the same events does
    /// (spaced out, so the fast path does not take them), into the block of their index.
    #[test]
    fn plain_text_deltas_gather_as_serde_reads_them() {
        let start = |i: usize| {
            format!(
                r#"{{"type":"content_block_start","index":{i},"content_block":{{"type":"text","text":""}}}}"#
            )
        };
        let delta = |i: usize, text: &str| {
            format!(
                r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"text_delta","text":{}}}}}"#,
                serde_json::to_string(text).unwrap()
            )
        };
        let events = [
            r#"{"type":"message_start","message":{"id":"m","role":"assistant","content":[]}}"#
                .to_string(),
            start(0),
            delta(0, "tok é "),
            delta(0, "a \"q\"\n"),
            start(1),
            delta(1, "second"),
            delta(0, "late"),
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#.to_string(),
            r#"{"type":"message_stop"}"#.to_string(),
        ];
        let spaced = |data: &str| {
            let value: Value = serde_json::from_str(data).unwrap();
            serde_json::to_string_pretty(&value).unwrap()
        };
        let (mut fast, mut serde) = (AnthropicStream::default(), AnthropicStream::default());
        for data in &events {
            assert!(fast.event(data).is_some(), "{data}");
            assert!(serde.event(&spaced(data)).is_some(), "{data}");
        }
        let fast = fast.into_whole().unwrap();
        assert_eq!(fast, serde.into_whole().unwrap());
        assert_eq!(fast["content"][0]["text"], "tok é a \"q\"\nlate");
        // A delta for a block that never started is a stream not kept, either way.
        let mut orphan = AnthropicStream::default();
        assert!(orphan.event(&events[0]).is_some());
        assert!(orphan.event(&delta(2, "x")).is_none());
        assert!(orphan.event(&spaced(&delta(2, "x"))).is_none());
    }
}
