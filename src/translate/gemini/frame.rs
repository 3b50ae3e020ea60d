//! The bytes around the text of a Gemini stream event that is one text part and nothing else.
//!
//! A stream is mostly such events, alike but for their text: the same candidate, the same
//! usage so far, model version and response id around it. An event that is a framed event's
//! bytes with a plain text (no quote, escape or control character) between them is that
//! event with this text: it reads as that event did, but for the text, and needs no parse.
//! The stream's translator and the trace's reader of a relayed stream each keep one.
//!
//! A reader sets or clears its frame at every event it parses, so a frame stands only while
//! every event since the framed one matched it: what that event set in the reader (a model,
//! counts, a begun candidate) is still what a parse of a matching event would set.

use crate::translate::json_text::plain_string;

/// The last framed event's bytes around its text, and what its reader noted of it.
#[derive(Debug, Default)]
pub(super) struct TextFrame<T> {
    /// Up to the text's opening quote; empty when there is no frame.
    before: String,
    /// From the text's closing quote.
    after: String,
    pub(super) noted: T,
}

impl<T> TextFrame<T> {
    /// The text of `data` if it is the framed event but for its text.
    pub(super) fn text_of<'d>(&self, data: &'d str) -> Option<&'d str> {
        if self.before.is_empty() {
            return None;
        }
        let text = data
            .strip_prefix(self.before.as_str())?
            .strip_suffix(self.after.as_str())?;
        plain_string(text).then_some(text)
    }

    /// Frames `data` around `text`, which serde read from it borrowed (so as it is between
    /// its quotes), with what its reader notes of it; clears the frame if there is no such
    /// text (the event is not one to frame), or it is empty or not a slice of `data`. The
    /// buffers are kept from one frame to the next: a stream whose events never match is
    /// framed at every event.
    pub(super) fn set(&mut self, data: &str, lone: Option<(&str, T)>) {
        self.clear();
        let Some((text, noted)) = lone else {
            return;
        };
        // Read from `data`, so a slice of it: its place there is its address's offset, and
        // the bounds check proves it (a text from elsewhere falls outside).
        let Some(at) = (text.as_ptr() as usize).checked_sub(data.as_ptr() as usize) else {
            return;
        };
        let Some(end) = at.checked_add(text.len()) else {
            return;
        };
        if text.is_empty() || data.get(at..end).is_none() {
            return;
        }
        self.before.push_str(&data[..at]);
        self.after.push_str(&data[end..]);
        self.noted = noted;
    }

    pub(super) fn clear(&mut self) {
        self.before.clear();
        self.after.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_text_read_from_the_data_frames_it() {
        let data = r#"{"text": "hello","n": 1}"#;
        let mut frame = TextFrame::default();
        frame.set(data, Some((&data[10..15], 7)));
        assert_eq!(frame.noted, 7);
        assert_eq!(
            frame.text_of(r#"{"text": "other words","n": 1}"#),
            Some("other words")
        );
        assert_eq!(frame.text_of(r#"{"text": "","n": 1}"#), Some(""));
        assert_eq!(frame.text_of(r#"{"text": "a\"b","n": 1}"#), None);
        assert_eq!(frame.text_of(r#"{"text": "a","n": 2}"#), None);
        assert_eq!(frame.text_of(r#"{"text": ""#), None);
        let elsewhere = String::from("hello");
        frame.set(data, Some((&elsewhere, 8)));
        assert_eq!(
            frame.text_of(data),
            None,
            "a text not in the data frames nothing"
        );
        frame.set(data, Some((&data[10..10], 9)));
        assert_eq!(frame.text_of(data), None, "nor does an empty one");
        frame.set(data, Some((&data[10..15], 10)));
        frame.set(data, None);
        assert_eq!(
            frame.text_of(data),
            None,
            "an event not to frame clears the frame"
        );
    }
}

/// Gemini stream events for the readers' tests.
#[cfg(test)]
pub(super) mod test_events {
    /// An event in the shape Gemini streams text in (spaced as the API spaces it).
    pub fn text_event(text: &str, thought: bool, prompt_tokens: u32) -> String {
        let text = serde_json::to_string(text).unwrap();
        let thought = if thought { r#","thought": true"# } else { "" };
        format!(
            r#"{{"candidates": [{{"content": {{"parts": [{{"text": {text}{thought}}}],"role": "model"}},"index": 0}}],"usageMetadata": {{"promptTokenCount": {prompt_tokens},"totalTokenCount": {prompt_tokens}}},"modelVersion": "gemini-2.5-flash","responseId": "r-1"}}"#
        )
    }

    /// An event of each text, as [`text_event`] writes it.
    pub fn text_events(texts: &[&str], thought: bool, prompt_tokens: u32) -> Vec<String> {
        texts
            .iter()
            .map(|t| text_event(t, thought, prompt_tokens))
            .collect()
    }

    /// `text_event` with `candidate` for its candidate's fields after the content.
    pub fn with_candidate(text: &str, candidate: &str) -> String {
        text_event(text, false, 25).replace(r#""index": 0}"#, candidate)
    }

    /// Texts of a stream, each with whether it is a thought and the prompt's count beside it.
    pub type Texts = Vec<(String, bool, u32)>;

    /// Any few texts of any characters, some thoughts, the counts beside them changing.
    pub fn any_texts() -> impl proptest::strategy::Strategy<Value = Texts> {
        let text = (".{0,6}", proptest::bool::weighted(0.2), 25u32..27);
        proptest::collection::vec(text, 1..12)
    }

    /// Whether `read` (a reader checked against a parse of each event; it gives how many
    /// events its frame took) reads the stream of `texts` and `LAST` as the parse does,
    /// and its frame takes an event where one must be taken.
    pub fn reads_texts(
        texts: &Texts,
        read: impl Fn(&[String]) -> Result<usize, String>,
    ) -> Result<(), String> {
        let mut events: Vec<String> = texts
            .iter()
            .map(|(text, thought, tokens)| text_event(text, *thought, *tokens))
            .collect();
        events.push(LAST.to_string());
        let taken = read(&events).map_err(|e| format!("{e}: {events:?}"))?;
        if taken == 0 && neighbours_alike(texts) {
            return Err(format!("no frame: {events:?}"));
        }
        Ok(())
    }

    /// Whether two events in a row, as `text_event` makes them from `texts`, are alike but
    /// for their text, the first's text plain and not empty, the second's plain: then a
    /// reader's frame takes at least the second.
    fn neighbours_alike(texts: &Texts) -> bool {
        let plain = |t: &str| serde_json::to_string(t).unwrap() == format!("\"{t}\"");
        texts.windows(2).any(|pair| {
            let [(first, thought, tokens), (second, thought2, tokens2)] = pair else {
                return false;
            };
            !first.is_empty()
                && plain(first)
                && plain(second)
                && (thought, tokens) == (thought2, tokens2)
        })
    }

    /// A stream's last event: its last text, the finish and the final counts.
    pub const LAST: &str = r#"{"candidates": [{"content": {"parts": [{"text": "."}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 25,"candidatesTokenCount": 9,"totalTokenCount": 34},"modelVersion": "gemini-2.5-flash","responseId": "r-1"}"#;
}
