//! A Responses API stream gathered into its whole response (for the cache).

use serde_json::{Map, Value};

/// Responses API events: nothing to gather, since the terminal event holds the whole
/// response.
#[derive(Default)]
pub(crate) struct ResponsesStream {
    pub(crate) whole: Option<Value>,
}

impl ResponsesStream {
    pub(crate) fn event(&mut self, data: &str) -> Option<()> {
        // The deltas, told by their leading type, are not parsed.
        if super::leading_type(data.as_bytes())
            .is_some_and(|kind| kind != b"error" && !super::is_terminal(kind))
        {
            return Some(());
        }
        let mut event: Map<String, Value> = serde_json::from_str(data).ok()?;
        match event.get("type").and_then(Value::as_str) {
            // A stop at the token limit is an answer too, as it is in chat completions.
            Some("response.completed" | "response.incomplete") => {
                self.whole = Some(event.remove("response")?);
                Some(())
            }
            Some("error" | "response.failed") => None,
            // The items as they stream, and the gateway's own request breakdown.
            _ => Some(()),
        }
    }
}
