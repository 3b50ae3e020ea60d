//! WebSocket frames (RFC 6455) as the relay sees them go by: read only to find the few
//! messages the trace wants (the Realtime API's `response.done`, which holds usage), and
//! written only to close a session in-band.
//!
//! The relay forwards bytes untouched; this reader follows frame boundaries across pieces,
//! skips payloads it does not need without copying them, and keeps at most one wanted text
//! message (bounded) at a time.

/// The first bytes of a text message that say whether it is wanted: the event's `type` is
/// among its first keys.
const PROBE: usize = 128;
/// A wanted message larger than this is let go (a `response.done` is a few KiB).
const MAX_MESSAGE: usize = 1 << 20;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;

/// What happens to the data message being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Its first bytes are being gathered to decide.
    Probe,
    Collect,
    Skip,
}

/// Follows the frames of one direction of a WebSocket connection and hands each wanted text
/// message, whole, to a callback.
#[derive(Debug)]
pub struct FrameReader {
    /// A frame header still incomplete at the end of the last piece.
    head: Vec<u8>,
    /// Payload bytes of the current frame not yet seen.
    left: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes of the current frame already seen (for the mask's position).
    seen: u64,
    /// Whether the current frame belongs to the data message (not a control frame).
    data: bool,
    /// Whether the current frame ends its message.
    fin: bool,
    keep: Keep,
    message: Vec<u8>,
    wanted: &'static [u8],
    /// A close frame went by.
    pub closed: bool,
}

impl FrameReader {
    /// A reader that hands over text messages whose first bytes hold `wanted`.
    pub fn new(wanted: &'static [u8]) -> FrameReader {
        FrameReader {
            head: Vec::with_capacity(14),
            left: 0,
            mask: None,
            seen: 0,
            data: false,
            fin: false,
            keep: Keep::Skip,
            message: Vec::new(),
            wanted,
            closed: false,
        }
    }

    /// Reads a piece of the byte stream, calling `on_message` for each wanted message that
    /// ends in it.
    pub fn feed(&mut self, mut bytes: &[u8], on_message: &mut impl FnMut(&[u8])) {
        while !bytes.is_empty() {
            if self.left == 0 {
                // Between frames: a header (its payload may be empty).
                let Some(used) = self.read_head(bytes) else {
                    return;
                };
                bytes = &bytes[used..];
                if self.left == 0 {
                    self.frame_done(on_message);
                }
                continue;
            }
            let take = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            self.payload(&bytes[..take]);
            self.left -= take as u64;
            bytes = &bytes[take..];
            if self.left == 0 {
                self.frame_done(on_message);
            }
        }
    }

    /// Reads a frame header from the stashed bytes and `bytes`; how many of `bytes` it used,
    /// or `None` when the header goes on in the next piece (all of `bytes` is stashed).
    fn read_head(&mut self, bytes: &[u8]) -> Option<usize> {
        let stashed = self.head.len();
        self.head
            .extend_from_slice(&bytes[..bytes.len().min(14 - stashed)]);
        // Incomplete: every byte given is in the stash (a whole header is at most 14).
        let h = &self.head;
        let (len7, masked) = (*h.get(1)? & 0x7f, h[1] & 0x80 != 0);
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let size = 2 + ext + if masked { 4 } else { 0 };
        if h.len() < size {
            return None;
        }
        let len = match ext {
            0 => u64::from(len7),
            _ => h[2..2 + ext]
                .iter()
                .fold(0u64, |n, b| (n << 8) | u64::from(*b)),
        };
        let opcode = h[0] & 0x0f;
        self.fin = h[0] & 0x80 != 0;
        self.mask = masked.then(|| {
            let m = &h[2 + ext..size];
            [m[0], m[1], m[2], m[3]]
        });
        self.left = len;
        self.seen = 0;
        self.data = opcode < OP_CLOSE;
        // Compressed messages (RSV1, permessage-deflate) cannot be read here: skipped.
        let compressed = h[0] & 0x40 != 0;
        match opcode {
            OP_TEXT if !compressed => {
                self.keep = Keep::Probe;
                self.message.clear();
            }
            OP_CONTINUATION => {}
            OP_CLOSE => self.closed = true,
            _ if self.data => self.keep = Keep::Skip,
            _ => {}
        }
        self.head.clear();
        Some(size - stashed)
    }

    fn payload(&mut self, piece: &[u8]) {
        if !self.data || self.keep == Keep::Skip {
            self.seen += piece.len() as u64;
            return;
        }
        if self.message.len() + piece.len() > MAX_MESSAGE {
            self.keep = Keep::Skip;
            self.message = Vec::new();
            return;
        }
        let start = self.message.len();
        self.message.extend_from_slice(piece);
        if let Some(mask) = self.mask {
            for (i, b) in self.message[start..].iter_mut().enumerate() {
                *b ^= mask[((self.seen + i as u64) % 4) as usize];
            }
        }
        self.seen += piece.len() as u64;
        if self.keep == Keep::Probe && self.message.len() >= PROBE {
            self.decide();
        }
    }

    /// Collects or skips the message, from its first bytes.
    fn decide(&mut self) {
        let probe = &self.message[..self.message.len().min(PROBE)];
        self.keep = if memchr::memmem::find(probe, self.wanted).is_some() {
            Keep::Collect
        } else {
            self.message.clear();
            Keep::Skip
        };
    }

    fn frame_done(&mut self, on_message: &mut impl FnMut(&[u8])) {
        if !(self.data && self.fin) {
            return;
        }
        if self.keep == Keep::Probe {
            self.decide();
        }
        if self.keep == Keep::Collect {
            on_message(&self.message);
        }
        self.keep = Keep::Skip;
        self.message.clear();
    }
}

/// A close frame with status 1001 ("going away"): the sidecar is shutting down. Frames to a
/// server must be masked (RFC 6455 5.3), frames to a client must not be.
pub fn going_away(to_server: bool) -> Vec<u8> {
    let mut payload = 1001u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"sidecar shutting down");
    let mut frame = vec![0x80 | OP_CLOSE];
    // The payload is under 126 bytes, so its length fits the first length byte.
    let len = payload.len() as u8;
    if to_server {
        let mask: [u8; 4] = rand::random();
        frame.push(0x80 | len);
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        frame.push(len);
        frame.extend_from_slice(&payload);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One frame: `fin`, `opcode`, payload, masked with `mask` if given.
    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n < 65536 => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(mask) => {
                f.extend_from_slice(&mask);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    fn read_all(stream: &[u8], split: usize) -> Vec<String> {
        let mut reader = FrameReader::new(b"response.done");
        let mut got = Vec::new();
        for piece in stream.chunks(split.max(1)) {
            reader.feed(piece, &mut |m| {
                got.push(String::from_utf8_lossy(m).into_owned())
            });
        }
        got
    }

    #[test]
    fn wanted_messages_are_found_across_any_split() {
        let done = br#"{"type":"response.done","response":{"usage":{"total_tokens":9}}}"#;
        let audio = format!(
            r#"{{"type":"response.output_audio.delta","delta":"{}"}}"#,
            "A".repeat(70_000)
        );
        let mut stream = Vec::new();
        stream.extend(frame(true, OP_TEXT, audio.as_bytes(), None));
        stream.extend(frame(true, 0x9, b"ping", None));
        // A fragmented response.done with a ping between its fragments.
        stream.extend(frame(false, OP_TEXT, &done[..10], None));
        stream.extend(frame(true, 0xA, b"", None));
        stream.extend(frame(true, OP_CONTINUATION, &done[10..], None));
        stream.extend(frame(true, OP_TEXT, done, Some([1, 2, 3, 4])));
        stream.extend(frame(true, 0x2, b"binary response.done", None));
        for split in [1, 2, 3, 7, 13, 100, 4096, stream.len()] {
            let got = read_all(&stream, split);
            assert_eq!(got.len(), 2, "split {split}");
            assert!(got.iter().all(|m| m.as_bytes() == done), "split {split}");
        }
    }

    #[test]
    fn close_frames_are_seen_and_made() {
        let mut reader = FrameReader::new(b"x");
        reader.feed(&going_away(false), &mut |_| {});
        assert!(reader.closed);
        let to_server = going_away(true);
        assert_eq!(to_server[1] & 0x80, 0x80);
        let mask = &to_server[2..6];
        let code = [to_server[6] ^ mask[0], to_server[7] ^ mask[1]];
        assert_eq!(u16::from_be_bytes(code), 1001);
    }
}
