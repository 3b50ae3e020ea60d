//! JSON object fields built up from streamed pieces, as the cache's gatherers do for
//! Anthropic blocks and Gemini parts.

use serde_json::{Map, Value};

/// Appends `text` to the string `field`, or sets it if absent (or not a string).
pub(crate) fn append(fields: &mut Map<String, Value>, field: &str, text: &str) {
    match fields.get_mut(field) {
        Some(Value::String(so_far)) => so_far.push_str(text),
        _ => {
            fields.insert(field.into(), text.into());
        }
    }
}
