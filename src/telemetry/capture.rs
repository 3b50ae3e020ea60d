//! Bounded copies of what went by (an answer's bytes), so that a thousand live streams with
//! content capture on hold at most a thousand times the bound.

use crate::wire::Wire;
use bytes::BytesMut;
use serde_json::value::RawValue;

/// `telemetry.max_capture_bytes` by default: a long answer, not a runaway one.
pub const DEFAULT_MAX_CAPTURE_BYTES: usize = 256 * 1024;

/// An answer read back from its capture: one assistant message (as JSON text), with its
/// finish reasons.
#[derive(Debug, Default, Clone)]
pub struct Output {
    pub message: Option<Box<RawValue>>,
    pub finish_reasons: Vec<String>,
    /// Text was left out for want of room (an answer assembled as it passed).
    pub truncated: bool,
}

/// Reads text back from captured bytes (the formats are `translate`'s knowledge; it hands
/// these in when the telemetry is built). Both give JSON text, not a `Value` tree: the
/// exporters only ever copy it out, so it is parsed as little as it can be.
#[derive(Debug, Clone, Copy)]
pub struct Transcriber {
    pub input: fn(Option<Wire>, &[u8]) -> Option<Box<RawValue>>,
    pub output: fn(Option<Wire>, bool, &[u8]) -> Output,
}

/// Up to `limit` bytes of a body, and whether more went by; or the answer the relay read as
/// it passed (a stream's, event by event, or a whole answer's, with its usage): then no
/// bytes are kept.
#[derive(Debug, Default, Clone)]
pub struct Capture {
    pub format: Option<Wire>,
    /// An SSE stream rather than one JSON body.
    pub stream: bool,
    kept: Kept,
    limit: usize,
    pub truncated: bool,
}

/// What a capture holds.
#[derive(Debug, Clone)]
enum Kept {
    /// The bytes that went by (up to the limit).
    Bytes(BytesMut),
    /// Nothing: the relay is assembling the answer as it passes.
    Assembling,
    /// The answer the relay assembled.
    Assembled(Output),
}

impl Default for Kept {
    fn default() -> Self {
        Kept::Bytes(BytesMut::new())
    }
}

impl Capture {
    /// A capture that keeps nothing.
    pub fn off() -> Capture {
        Capture::default()
    }

    /// Starts capturing a body of `format`, up to `limit` bytes (0 keeps nothing).
    pub fn start(&mut self, format: Option<Wire>, stream: bool, limit: usize) {
        *self = Capture {
            format,
            stream,
            limit,
            ..Capture::default()
        };
    }

    /// The relay reads the answer into a message as it passes: keep no bytes of it.
    pub fn assembling(&mut self) {
        self.kept = Kept::Assembling;
    }

    /// The answer the relay assembled.
    pub fn assembled(&mut self, output: Output) {
        self.truncated = output.truncated;
        self.kept = Kept::Assembled(output);
    }

    /// The answer the relay assembled, if it did.
    pub fn assembled_output(&self) -> Option<&Output> {
        match &self.kept {
            Kept::Assembled(output) => Some(output),
            Kept::Bytes(_) | Kept::Assembling => None,
        }
    }

    pub fn is_on(&self) -> bool {
        self.limit > 0
    }

    /// Whether it holds every byte that went by, not yet read into an answer.
    pub fn kept_whole(&self) -> bool {
        matches!(self.kept, Kept::Bytes(_)) && self.is_on() && !self.truncated
    }

    /// Whether `len` more bytes would be kept whole (none are kept once an answer is
    /// assembled).
    pub fn has_room(&self, len: usize) -> bool {
        match &self.kept {
            Kept::Bytes(bytes) => self.limit > 0 && len <= self.limit.saturating_sub(bytes.len()),
            Kept::Assembling | Kept::Assembled(_) => false,
        }
    }

    /// Keeps what fits of `data`.
    pub fn push(&mut self, data: &[u8]) {
        let Kept::Bytes(bytes) = &mut self.kept else {
            return;
        };
        if self.limit == 0 || data.is_empty() {
            return;
        }
        let room = self.limit - bytes.len();
        if data.len() > room {
            self.truncated = true;
        }
        bytes.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// What was kept (nothing of an answer assembled as it passed).
    pub fn bytes(&self) -> &[u8] {
        match &self.kept {
            Kept::Bytes(bytes) => bytes,
            Kept::Assembling | Kept::Assembled(_) => &[],
        }
    }

    /// What was kept, taken out (the capture is left off).
    pub fn take(&mut self) -> bytes::Bytes {
        match std::mem::take(self).kept {
            Kept::Bytes(bytes) => bytes.freeze(),
            Kept::Assembling | Kept::Assembled(_) => bytes::Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assembled_answer_keeps_no_bytes() {
        let mut c = Capture::off();
        c.start(Some(Wire::OpenAi), true, 100);
        c.assembling();
        c.push(b"data: {}\n\n");
        assert!(c.bytes().is_empty());
        c.assembled(Output {
            truncated: true,
            ..Output::default()
        });
        assert!(c.truncated);
        assert!(c.assembled_output().is_some_and(|o| o.truncated));
        assert!(c.bytes().is_empty());
    }

    #[test]
    fn keeps_up_to_its_limit_and_marks_the_rest() {
        let mut c = Capture::off();
        c.push(b"nothing");
        assert!(c.bytes().is_empty() && !c.truncated);
        c.start(Some(Wire::OpenAi), true, 5);
        c.push(b"abc");
        assert!(!c.truncated);
        c.push(b"defg");
        assert_eq!(c.bytes(), b"abcde");
        assert!(c.truncated);
        c.push(b"h");
        assert_eq!(c.bytes(), b"abcde");
    }

    #[test]
    fn room_is_what_is_left_of_the_limit() {
        let mut c = Capture::off();
        assert!(!c.has_room(0));
        c.start(Some(Wire::OpenAi), false, 5);
        assert!(c.has_room(5) && !c.has_room(6));
        c.push(b"abc");
        assert!(c.has_room(2) && !c.has_room(3));
        c.assembled(Output::default());
        assert!(!c.has_room(0));
    }
}
