//! The state of one request, carried through Pingora's phases.

use crate::allocator::Busy;
use crate::cache::Slot;
use crate::endpoint::Endpoint;
use crate::state::Snapshot;
use crate::stored_responses::Keeping;
use crate::telemetry::capture::Capture;
use crate::telemetry::metrics::InflightGuard;
use crate::telemetry::record::RequestRecord;
use crate::translate::usage::UsageTail;
use bytes::Bytes;
use std::fmt;
use std::sync::Arc;

/// Per-request state. Created by Pingora for every request (`new_ctx`), filled in by
/// `request_filter`, read by `logging`.
pub struct RequestCtx {
    /// `x-respan-request-id`, unique per request.
    pub request_id: RequestId,
    pub endpoint: Endpoint,
    /// The config this request runs on, from its start to its end.
    pub snapshot: Option<Arc<Snapshot>>,
    /// Everything the request's metrics and trace are made of, filled in as it goes.
    pub record: RequestRecord,
    /// A passthrough answer's end, kept for its usage.
    pub passthrough_tail: Option<UsageTail>,
    /// A passthrough request's JSON body, kept (bounded) for its trace.
    pub passthrough_input: Capture,
    /// Bytes of a passthrough request's body so far (bounded by `max_request_body_bytes`).
    pub passthrough_body_bytes: usize,
    /// A cacheable request that missed: where its answer is to be stored.
    pub cache_slot: Option<Box<Slot>>,
    /// A Responses API answer to keep for `previous_response_id` (`responses.store`).
    pub keeping: Option<Box<Keeping>>,
    /// The name of the `auth.keys` entry the request came with.
    pub auth_key: Option<String>,
    /// What `limits:` reserved for the request, settled when it ends.
    pub limit_ticket: Option<Box<crate::limits::Ticket>>,
    _inflight: InflightGuard,
    /// Keeps the request's thread from counting as idle (`allocator`).
    _busy: Busy,
}

impl RequestCtx {
    pub fn new(busy: Busy) -> RequestCtx {
        RequestCtx {
            request_id: RequestId::random(),
            endpoint: Endpoint::NotFound,
            snapshot: None,
            record: RequestRecord::new(),
            passthrough_tail: None,
            passthrough_input: Capture::off(),
            passthrough_body_bytes: 0,
            cache_slot: None,
            keeping: None,
            auth_key: None,
            limit_ticket: None,
            _inflight: InflightGuard::new(),
            _busy: busy,
        }
    }

    /// Notes a piece of a streamed answer as the app gets it: for its trace, for the cache
    /// when the stream is to be stored, and for a response to be kept.
    pub fn sent(&mut self, piece: &Bytes) {
        self.record.output.push(piece);
        if let Some(slot) = &mut self.cache_slot {
            slot.sent(piece, &self.record.served);
        }
        if let Some(keeping) = &mut self.keeping {
            keeping.sent(piece);
        }
    }
}

/// A request's id: 32 lowercase hex digits of a random 128-bit number, kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; 32]);

impl RequestId {
    pub fn random() -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = rand::random::<u128>();
        let mut digits = [0u8; 32];
        for (i, digit) in digits.iter_mut().enumerate() {
            *digit = HEX[(n >> (124 - 4 * i) & 0xf) as usize];
        }
        RequestId(digits)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits only, always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn request_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (RequestId::random(), RequestId::random());
        assert_eq!(a.as_str().len(), 32);
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
