//! The response cache (`cache_enabled`): exact-match answers kept in memory, with a TTL per
//! entry, bounded by `cache.max_entries`.
//!
//! `key` says what makes two requests the same; this module keeps and finds their answers.
//! Only complete successful answers are stored, as the app got them (so they replay to the
//! same API format, which is part of the key); streams are not cached yet.

pub mod key;

use crate::dispatch::request::ModelRequest;
use crate::providers::Operation;
use crate::telemetry::metrics::metrics;
use crate::telemetry::record::{Served, TokenUsage};
use bytes::Bytes;
use moka::sync::Cache;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use key::Key;

/// A stored answer, and what its replay puts on the record.
#[derive(Debug)]
pub struct Cached {
    /// A JSON answer in the format of the API it was asked on.
    pub body: Bytes,
    /// Who answered it first (the replay makes no upstream call).
    pub served: Served,
    pub usage: Option<TokenUsage>,
    ttl: Duration,
}

/// The process's cache, shared by every request (and kept across reloads).
pub struct ResponseCache {
    entries: Cache<Key, Arc<Cached>>,
}

/// Each entry lives for its own `cache_ttl`.
struct PerEntryTtl;

impl Expiry<Key, Arc<Cached>> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, value: &Arc<Cached>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl ResponseCache {
    pub fn new(max_entries: u64) -> ResponseCache {
        ResponseCache {
            entries: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    /// The answer stored under `key`, counted as a hit or a miss.
    pub fn lookup(&self, key: &Key) -> Option<Arc<Cached>> {
        let found = self.entries.get(key);
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics().cache_lookups.with_label_values(&[result]).inc();
        found
    }

    fn store(&self, key: Key, answer: Cached) {
        self.entries.insert(key, Arc::new(answer));
    }
}

/// Whether a request may use the cache: it asked to, it is a whole (not streamed) answer,
/// and it brings no credentials of its own (those never share an entry).
pub fn eligible(request: &ModelRequest<'_>) -> bool {
    let p = &request.params;
    p.cache_enabled == Some(true)
        && !request.stream
        && matches!(request.operation, Operation::Generate { .. })
        && p.customer_credentials.is_none()
        && p.credential_override.is_none()
}

/// A request's place in the cache, taken when it missed: where its answer goes.
pub struct Slot {
    pub cache: Arc<ResponseCache>,
    pub key: Key,
    pub ttl: Duration,
}

impl Slot {
    /// Stores the request's answer (a complete success).
    pub fn fill(self, body: Bytes, served: Served, usage: Option<TokenUsage>) {
        let answer = Cached {
            body,
            served,
            usage,
            ttl: self.ttl,
        };
        self.cache.store(self.key, answer);
    }
}
