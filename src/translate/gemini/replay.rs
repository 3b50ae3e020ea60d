//! A whole Gemini answer told again as its stream (how the cache answers a streaming request).

use crate::translate::sse::write_json;
use serde_json::{Map, Value};

/// A whole Gemini answer is a chunk of its stream: the stream is that one chunk, under a
/// fresh `responseId`.
pub(crate) fn stream(mut whole: Map<String, Value>) -> Vec<u8> {
    let id = format!("{:024x}", rand::random::<u128>() >> 32);
    whole.insert("responseId".into(), id.into());
    let mut out = Vec::new();
    write_json(&mut out, None, &whole);
    out
}
