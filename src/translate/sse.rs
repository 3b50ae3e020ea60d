//! Server-sent events: an incremental parser for upstream streams and writers for ours.
//!
//! The parser takes bytes as they arrive, in pieces of any size: an event may be split across
//! reads and a read may hold several events. Lines end in `\n`, `\r\n` or `\r`, as the SSE
//! spec allows (Gemini separates events with `\r\n\r\n`).

/// One event: its `event:` name (empty when absent) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub name: String,
    pub data: String,
}

/// Events longer than this are refused: an upstream that never ends an event must not grow
/// the sidecar's memory without bound.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an upstream event is longer than {MAX_EVENT_BYTES} bytes")]
    TooLong,
}

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// A `\r` ended the last line; a `\n` right after it belongs to the same line ending.
    after_cr: bool,
    current: Event,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; calls `on_event` for every event they complete.
    pub fn feed(&mut self, bytes: &[u8], on_event: &mut dyn FnMut(Event)) -> Result<(), SseError> {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(on_event);
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() + self.current.data.len() >= MAX_EVENT_BYTES {
                        return Err(SseError::TooLong);
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// At the end of the stream: an event not followed by a blank line still counts.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(Event)) {
        if !self.line.is_empty() {
            self.end_line(on_event);
        }
        self.dispatch(on_event);
    }

    fn end_line(&mut self, on_event: &mut dyn FnMut(Event)) {
        if self.line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        let line = String::from_utf8_lossy(&self.line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.name = value.to_string(),
            _ => {} // comments (`: ping`), `id`, `retry`: nothing to translate
        }
        self.line.clear();
    }

    fn dispatch(&mut self, on_event: &mut dyn FnMut(Event)) {
        if self.has_data {
            on_event(std::mem::take(&mut self.current));
        }
        self.current = Event::default();
        self.has_data = false;
    }
}

/// Appends `data: {json}\n\n`.
pub fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// Appends `event: {name}\ndata: {json}\n\n`.
pub fn write_event(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    write_data(out, data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<Event> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in input.chunks(piece) {
            parser.feed(chunk, &mut |e| events.push(e)).unwrap();
        }
        parser.finish(&mut |e| events.push(e));
        events
    }

    #[test]
    fn events_split_anywhere_parse_the_same() {
        let input = b"event: message_start\ndata: {\"a\":1}\n\n: ping\n\ndata: x\r\ndata: y\r\n\r\ndata: last";
        let expected = vec![
            Event {
                name: "message_start".into(),
                data: "{\"a\":1}".into(),
            },
            Event {
                name: String::new(),
                data: "x\ny".into(),
            },
            Event {
                name: String::new(),
                data: "last".into(),
            },
        ];
        for piece in 1..input.len() {
            assert_eq!(
                parse_in_pieces(input, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn bare_cr_line_endings() {
        assert_eq!(parse_in_pieces(b"data:a\r\rdata:b\r\r", 3).len(), 2);
    }

    #[test]
    fn events_without_data_are_skipped() {
        assert!(parse_in_pieces(b"event: ping\n\n\n\n", 4).is_empty());
    }

    #[test]
    fn writers() {
        let mut out = Vec::new();
        write_event(&mut out, "ping", b"{}");
        write_data(&mut out, b"[DONE]");
        assert_eq!(out, b"event: ping\ndata: {}\n\ndata: [DONE]\n\n");
    }
}
