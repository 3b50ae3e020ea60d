//! A Messages stream gathered into its whole message (for the cache): every field the events
//! carried is kept (`serde_json::Value`), citations and thinking signatures included.

use crate::translate::fields::append;
use serde_json::{json, Map, Value};

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
        let event: Map<String, Value> = serde_json::from_str(data).ok()?;
        let index = event.get("index").and_then(Value::as_u64);
        let index = index.and_then(|i| usize::try_from(i).ok());
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                self.message = Some(event.get("message")?.as_object()?.clone());
            }
            Some("content_block_start") => {
                let block = (
                    event.get("content_block")?.as_object()?.clone(),
                    String::new(),
                );
                // Blocks start in index order: the next one, or one started again.
                match index? {
                    next if next == self.blocks.len() => self.blocks.push(block),
                    again => *self.blocks.get_mut(again)? = block,
                }
            }
            Some("content_block_delta") => {
                let (block, input) = self.blocks.get_mut(index?)?;
                add_delta(block, input, event.get("delta")?)?;
            }
            Some("content_block_stop") => {
                let (block, input) = self.blocks.get_mut(index?)?;
                if !input.is_empty() {
                    block.insert("input".into(), serde_json::from_str(input).ok()?);
                }
            }
            Some("message_delta") => self.message_delta(&event)?,
            Some("message_stop") => self.done = true,
            Some("error") => return None,
            // `ping`, and events of the gateway's own (a request breakdown).
            _ => {}
        }
        Some(())
    }

    fn message_delta(&mut self, event: &Map<String, Value>) -> Option<()> {
        let message = self.message.as_mut()?;
        for (name, value) in event
            .get("delta")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            message.insert(name.clone(), value.clone());
        }
        if let Some(counts) = event.get("usage").and_then(Value::as_object) {
            let usage = message.entry("usage").or_insert_with(|| json!({}));
            if !usage.is_object() {
                *usage = json!({});
            }
            if let Value::Object(usage) = usage {
                for (name, count) in counts.iter().filter(|(_, c)| !c.is_null()) {
                    usage.insert(name.clone(), count.clone());
                }
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

/// Applies one `content_block_delta` to its block (a tool call's input is kept as text until
/// the block stops).
fn add_delta(block: &mut Map<String, Value>, input: &mut String, delta: &Value) -> Option<()> {
    let text = |name: &str| delta.get(name).and_then(Value::as_str);
    match delta.get("type").and_then(Value::as_str)? {
        "text_delta" => append(block, "text", text("text")?),
        "thinking_delta" => append(block, "thinking", text("thinking")?),
        "signature_delta" => {
            block.insert("signature".into(), text("signature")?.into());
        }
        "input_json_delta" => input.push_str(text("partial_json")?),
        "citations_delta" => {
            let citation = delta.get("citation")?.clone();
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
