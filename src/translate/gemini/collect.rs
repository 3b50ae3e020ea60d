//! A `streamGenerateContent` stream gathered into its whole answer (for the cache): every
//! field the chunks carried is kept (`serde_json::Value`).

use crate::translate::fields::append;
use serde_json::{Map, Value};

/// `streamGenerateContent` chunks, gathered: each chunk is a `GenerateContentResponse`
/// holding the parts that are new. The stream has no end marker: it is whole once a
/// candidate has a `finishReason`.
#[derive(Default)]
pub(crate) struct GeminiStream {
    /// The fields of the chunks but `candidates`: the last value of each.
    whole: Map<String, Value>,
    /// Candidates by index, with their parts so far.
    candidates: Vec<(u64, Map<String, Value>)>,
    finished: bool,
}

impl GeminiStream {
    pub(crate) fn event(&mut self, data: &str) -> Option<()> {
        let mut chunk: Map<String, Value> = serde_json::from_str(data).ok()?;
        if chunk.contains_key("error") {
            return None;
        }
        if let Some(Value::Array(candidates)) = chunk.remove("candidates") {
            for candidate in candidates {
                self.candidate(candidate);
            }
        }
        // responseId, modelVersion, usageMetadata, promptFeedback: the last one counts.
        self.whole.extend(chunk);
        Some(())
    }

    fn candidate(&mut self, candidate: Value) {
        let Value::Object(mut candidate) = candidate else {
            return;
        };
        let index = candidate.get("index").and_then(Value::as_u64).unwrap_or(0);
        self.finished |= candidate.get("finishReason").is_some_and(|r| !r.is_null());
        let parts = match candidate
            .get_mut("content")
            .and_then(|c| c.get_mut("parts"))
        {
            Some(Value::Array(parts)) => std::mem::take(parts),
            _ => Vec::new(),
        };
        let at = match self.candidates.iter().position(|(i, _)| *i == index) {
            Some(at) => at,
            None => {
                self.candidates.push((index, Map::new()));
                self.candidates.len() - 1
            }
        };
        let so_far = &mut self.candidates[at].1;
        let mut kept_parts = match so_far.remove("content") {
            Some(Value::Object(content)) => content,
            _ => Map::new(),
        };
        let all = kept_parts
            .entry("parts")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(all) = all {
            for part in parts {
                add_part(all, part);
            }
        }
        if let Some(Value::Object(content)) = candidate.remove("content") {
            for (name, value) in content.into_iter().filter(|(n, _)| n != "parts") {
                kept_parts.insert(name, value);
            }
        }
        so_far.extend(candidate);
        so_far.insert("content".into(), Value::Object(kept_parts));
    }

    pub(crate) fn into_whole(mut self) -> Option<Value> {
        if !self.finished {
            return None;
        }
        let candidates: Vec<Value> = self
            .candidates
            .into_iter()
            .map(|(_, c)| Value::Object(c))
            .collect();
        self.whole.insert("candidates".into(), candidates.into());
        Some(Value::Object(self.whole))
    }
}

/// Adds a streamed part: text continues the last part when both are text of the same kind
/// (thought or not); any other part is a part of its own.
fn add_part(parts: &mut Vec<Value>, part: Value) {
    let text_kind = |p: &Value| {
        let plain = p
            .as_object()
            .is_some_and(|o| o.keys().all(|k| matches!(k.as_str(), "text" | "thought")));
        (plain && p.get("text").is_some()).then(|| p.get("thought").cloned())
    };
    if let (Some(last), Some(kind)) = (parts.last_mut(), text_kind(&part)) {
        let text = part.get("text").and_then(Value::as_str);
        if let (true, Some(last), Some(text)) =
            (text_kind(last) == Some(kind), last.as_object_mut(), text)
        {
            append(last, "text", text);
            return;
        }
    }
    parts.push(part);
}
