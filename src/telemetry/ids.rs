//! W3C trace context: the ids of a request's span, and its parent from the app's
//! `traceparent` header (https://www.w3.org/TR/trace-context/#traceparent-header).

/// A span's ids: its trace (the app's, when it sent one) and its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The app's span, from its `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
}

impl TraceIds {
    /// A new trace with a root span.
    pub fn random() -> TraceIds {
        TraceIds {
            trace_id: nonzero(rand::random::<u128>()).to_be_bytes(),
            span_id: nonzero_u64(rand::random::<u64>()).to_be_bytes(),
            parent_span_id: None,
        }
    }

    /// Joins the trace of a valid `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), keeping
    /// this span's own id. An invalid header is ignored, as the spec says: a new trace starts.
    pub fn join(&mut self, traceparent: &[u8]) {
        if let Some((trace_id, parent)) = parse_traceparent(traceparent) {
            self.trace_id = trace_id;
            self.parent_span_id = Some(parent);
        }
    }
}

fn nonzero(n: u128) -> u128 {
    n.max(1)
}

fn nonzero_u64(n: u64) -> u64 {
    n.max(1)
}

fn parse_traceparent(value: &[u8]) -> Option<([u8; 16], [u8; 8])> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    // Version 00 has exactly four fields; later versions may add more after them.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if flags.len() != 2 || !flags.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let trace_id: [u8; 16] = unhex(trace)?;
    let parent_id: [u8; 8] = unhex(parent)?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some((trace_id, parent_id))
}

/// Lowercase hex only, as the spec requires.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Lowercase hex of an id. Written into a buffer of its length at once: `hex::encode`
/// collects its characters into a `String` one at a time.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = vec![0; bytes.len() * 2];
    // Twice the bytes' length is always room enough: this cannot fail.
    let _ = hex::encode_to_slice(bytes, &mut text);
    // Hex digits only: always UTF-8.
    String::from_utf8(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_makes_the_span_its_child() {
        let mut ids = TraceIds::random();
        let own = ids.span_id;
        ids.join(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(hex(&ids.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ids.parent_span_id.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(ids.span_id, own);
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            &b"garbage"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e47\xff6-00f067aa0ba902b7-01",
        ] {
            let mut ids = TraceIds::random();
            let before = ids;
            ids.join(bad);
            assert_eq!(ids, before, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn random_ids_are_never_zero() {
        let ids = TraceIds::random();
        assert_ne!(ids.trace_id, [0; 16]);
        assert_ne!(ids.span_id, [0; 8]);
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
