//! The response cache (`cache_enabled`): exact-match answers kept with a TTL per entry, in
//! memory (`memory`, the default, bounded by `cache.max_entries`) or in Redis shared by a
//! fleet of sidecars (`redis`).
//!
//! `key` says what makes two requests the same; this module keeps and finds their answers.
//! Only complete successful answers are stored, as the app got them (so they replay to the
//! same API format, which is part of the key); streams are not cached yet.

pub mod key;
mod redis;

use crate::config::{CacheBackend, CacheConfig};
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
    store: Store,
}

enum Store {
    Memory(Cache<Key, Arc<Cached>>),
    Redis(redis::RedisStore),
}

/// Each entry lives for its own `cache_ttl`.
struct PerEntryTtl;

impl Expiry<Key, Arc<Cached>> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, value: &Arc<Cached>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl ResponseCache {
    /// The configured backend; Redis is not connected until first used.
    pub fn new(config: &CacheConfig) -> Result<ResponseCache, String> {
        let store = match (config.backend, &config.redis_url) {
            (CacheBackend::Redis, Some(url)) => Store::Redis(redis::RedisStore::new(url)?),
            _ => Store::Memory(
                Cache::builder()
                    .max_capacity(config.max_entries)
                    .expire_after(PerEntryTtl)
                    .build(),
            ),
        };
        Ok(ResponseCache { store })
    }

    /// The answer stored under `key`, counted as a hit or a miss (a backend that fails is a
    /// miss).
    pub async fn lookup(&self, key: &Key) -> Option<Arc<Cached>> {
        let found = match &self.store {
            Store::Memory(entries) => entries.get(key),
            Store::Redis(redis) => redis.get(key).await.map(Arc::new),
        };
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics().cache_lookups.with_label_values(&[result]).inc();
        found
    }

    async fn store(&self, key: Key, answer: Cached) {
        match &self.store {
            Store::Memory(entries) => entries.insert(key, Arc::new(answer)),
            Store::Redis(redis) => redis.set(&key, &answer).await,
        }
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

/// A request's place in the cache, taken when it missed: where its answer goes once it is
/// known to be a complete success.
pub struct Slot {
    cache: Arc<ResponseCache>,
    key: Key,
    ttl: Duration,
    answer: Option<Cached>,
}

impl Slot {
    pub fn new(cache: Arc<ResponseCache>, key: Key, ttl: Duration) -> Slot {
        Slot {
            cache,
            key,
            ttl,
            answer: None,
        }
    }

    /// Notes the request's answer, a complete success, to be stored by [`Slot::store`].
    pub fn keep(&mut self, body: Bytes, served: Served, usage: Option<TokenUsage>) {
        self.answer = Some(Cached {
            body,
            served,
            usage,
            ttl: self.ttl,
        });
    }

    /// Stores the kept answer, if there is one (after the app has it: a slow backend never
    /// delays an answer).
    pub async fn store(self) {
        if let Some(answer) = self.answer {
            self.cache.store(self.key, answer).await;
        }
    }
}
