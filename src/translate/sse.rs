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
pub(super) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an upstream event is longer than {MAX_EVENT_BYTES} bytes")]
    TooLong,
}

/// Incremental SSE parser: feed it bytes, it calls back with each event they complete.
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
    pub fn feed(&mut self, bytes: &[u8], on_event: &mut dyn FnMut(&Event)) -> Result<(), SseError> {
        self.feed_while(bytes, &mut |e| {
            on_event(e);
            true
        })
    }

    /// Feeds bytes while `on_event` returns true: a reader that has seen what it wanted
    /// does not pay for the framing of the rest (the parser is then of no further use).
    pub fn feed_while(
        &mut self,
        bytes: &[u8],
        on_event: &mut dyn FnMut(&Event) -> bool,
    ) -> Result<(), SseError> {
        let mut rest = bytes;
        while let Some(&first) = rest.first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                rest = &rest[1..];
                continue;
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(end) => {
                    self.after_cr = rest[end] == b'\r';
                    let reading = self.line_ends(&rest[..end], on_event)?;
                    rest = &rest[end + 1..];
                    if !reading {
                        break;
                    }
                }
                None => {
                    self.push(rest)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// A line's last bytes have come. A line whole in one read (most are) is read where it
    /// is; one begun in an earlier read is put together first. False when `on_event` says
    /// to stop.
    fn line_ends(
        &mut self,
        last: &[u8],
        on_event: &mut dyn FnMut(&Event) -> bool,
    ) -> Result<bool, SseError> {
        if self.line.is_empty() {
            self.check(last.len())?;
            return Ok(self.end_line(last, on_event));
        }
        self.push(last)?;
        let line = std::mem::take(&mut self.line);
        let reading = self.end_line(&line, on_event);
        // The buffer is kept for the next line split across reads.
        self.line = line;
        self.line.clear();
        Ok(reading)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        self.check(self.line.len() + bytes.len())?;
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Refuses an event that would grow past [`MAX_EVENT_BYTES`] with a line this long.
    fn check(&self, line: usize) -> Result<(), SseError> {
        if line + self.current.data.len() > MAX_EVENT_BYTES {
            return Err(SseError::TooLong);
        }
        Ok(())
    }

    /// At the end of the stream: an event not followed by a blank line still counts.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(&Event)) {
        let mut on_event = |e: &Event| {
            on_event(e);
            true
        };
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(&line, &mut on_event);
        }
        self.dispatch(&mut on_event);
    }

    /// Reads one line; a blank one hands its event over (false: `on_event` says to stop).
    /// The field is split off and named on the bytes, and only the value is read as text
    /// (invalid UTF-8 replaced): a `:` byte is never part of a longer character, so this
    /// reads what splitting the whole line's text would.
    fn end_line(&mut self, line: &[u8], on_event: &mut dyn FnMut(&Event) -> bool) -> bool {
        if line.is_empty() {
            return self.dispatch(on_event);
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                push_text(&mut self.current.data, value);
                self.has_data = true;
            }
            b"event" => {
                self.current.name.clear();
                push_text(&mut self.current.name, value);
            }
            _ => {} // comments (`: ping`), `id`, `retry`: nothing to translate
        }
        true
    }

    /// Hands the event over by reference: its buffers are reused for the next one, so a
    /// stream costs no allocation per event here.
    fn dispatch(&mut self, on_event: &mut dyn FnMut(&Event) -> bool) -> bool {
        let reading = !self.has_data || on_event(&self.current);
        self.current.name.clear();
        self.current.data.clear();
        self.has_data = false;
        reading
    }
}

/// Appends `bytes` as text, any invalid UTF-8 in them replaced.
fn push_text(into: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => into.push_str(text),
        Err(_) => into.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// Appends `data: {json}\n\n`.
pub fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// `{}`, for a field the gateway always writes empty.
#[derive(serde::Serialize)]
pub struct Empty {}

/// Appends `data: {value as JSON}\n\n`, serialising straight into `out`. If `value` cannot
/// be serialised (it always can: the gateway's own types), nothing is appended.
pub fn write_json(out: &mut Vec<u8>, event: Option<&str>, value: &impl serde::Serialize) {
    write_event(out, event, |out| serde_json::to_writer(out, value));
}

/// Appends one event whose data `write_data` appends straight into `out`; if it fails,
/// nothing is appended (never half an event).
pub fn write_event(
    out: &mut Vec<u8>,
    event: Option<&str>,
    write_data: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) {
    let start = out.len();
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    if write_data(&mut *out).is_err() {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<Event> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in input.chunks(piece) {
            parser.feed(chunk, &mut |e| events.push(e.clone())).unwrap();
        }
        parser.finish(&mut |e| events.push(e.clone()));
        events
    }

    /// A line read as the parser read it before it worked on bytes: the whole line made
    /// text (invalid UTF-8 replaced), then split at its first `:`.
    fn read_as_text(line: &[u8]) -> Option<(bool, String)> {
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => Some((true, value.to_string())),
            "event" => Some((false, value.to_string())),
            _ => None,
        }
    }

    proptest::proptest! {
        /// Any line, of any bytes, is read as the whole line's text split at its `:` is.
        #[test]
        fn a_line_reads_as_its_text_does(
            field in proptest::sample::select(vec![&b"data"[..], b"event", b"id", b"", b"dat\xc3", b"da\xffta"]),
            sep in proptest::sample::select(vec![&b":"[..], b": ", b"", b":  ", b"\xe2:"]),
            value in proptest::collection::vec(proptest::sample::select(
                vec![b'a', b':', b' ', 0xc3, 0xa9, 0xe2, 0x82, 0xff, b'{', b'"']), 0..12),
        ) {
            let mut line = [field, sep].concat();
            line.extend_from_slice(&value);
            // An empty line ends an event: another test's matter.
            proptest::prop_assume!(!line.is_empty());
            let mut parser = SseParser::default();
            let mut events = Vec::new();
            let mut input = b"event: x\n".to_vec();
            input.extend_from_slice(&line);
            input.extend_from_slice(b"\ndata: end\n\n");
            parser.feed(&input, &mut |e| events.push(e.clone())).unwrap();
            let (name, data) = match read_as_text(&line) {
                Some((true, text)) => ("x".to_string(), format!("{text}\nend")),
                Some((false, text)) => (text, "end".to_string()),
                None => ("x".to_string(), "end".to_string()),
            };
            proptest::prop_assert_eq!(events, vec![Event { name, data }]);
        }
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
    fn overlong_events_are_refused() {
        let mut parser = SseParser::default();
        let big = vec![b'x'; MAX_EVENT_BYTES / 2 + 1];
        parser.feed(b"data: ", &mut |_| {}).unwrap();
        parser.feed(&big, &mut |_| {}).unwrap();
        assert_eq!(parser.feed(&big, &mut |_| {}), Err(SseError::TooLong));
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
    fn a_reader_that_has_what_it_wanted_stops_the_framing() {
        let stream = b"data: 1\n\ndata: 2\n\ndata: 3\n\n";
        let mut seen = Vec::new();
        let mut parser = SseParser::default();
        parser
            .feed_while(stream, &mut |e| {
                seen.push(e.data.clone());
                e.data != "2"
            })
            .unwrap();
        assert_eq!(seen, ["1", "2"]);
    }

    #[test]
    fn writers() {
        let mut out = Vec::new();
        write_json(&mut out, Some("ping"), &serde_json::json!({}));
        write_data(&mut out, b"[DONE]");
        assert_eq!(out, b"event: ping\ndata: {}\n\ndata: [DONE]\n\n");
    }
}
