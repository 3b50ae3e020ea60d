//! JSON object fields built up from streamed pieces, as the cache's gatherers do for
//! Anthropic blocks and Gemini parts, and the raw values they read pieces from.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Appends `text` to the string `field`, or sets it if absent (or not a string).
pub(crate) fn append(fields: &mut Map<String, Value>, field: &str, text: &str) {
    match fields.get_mut(field) {
        Some(Value::String(so_far)) => so_far.push_str(text),
        _ => {
            fields.insert(field.into(), text.into());
        }
    }
}

/// A raw value that is a string, read (borrowed unless it has escapes); a value of another
/// type is no text.
pub(crate) fn text(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    let raw = raw.filter(|r| r.get().starts_with('"'))?;
    serde_json::from_str::<Text>(raw.get()).ok().map(|t| t.0)
}

/// A raw value that is a whole number; none when absent or of another type.
pub(crate) fn whole_number(raw: Option<&RawValue>) -> Option<u64> {
    raw?.get().parse().ok()
}
