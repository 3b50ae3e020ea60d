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
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
    /// Keys being answered now by a request that missed, and how its followers hear that
    /// it is over.
    inflight: Mutex<HashMap<Key, watch::Sender<bool>>>,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Arc<Cached>),
    /// The caller asks the provider; its answer goes in the slot.
    Miss(Box<Slot>),
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
        Ok(ResponseCache {
            store,
            inflight: Mutex::default(),
        })
    }

    /// The answer stored under `key`. When there is none but an identical request is being
    /// answered right now, waits (at most `wait`) for its answer instead of asking the
    /// provider again; if that request fails, this one asks for itself. Counted as a hit or
    /// a miss; a backend that fails is a miss.
    pub async fn lookup(self: &Arc<Self>, key: Key, ttl: Duration, wait: Duration) -> Lookup {
        let found = self.find(key, ttl, wait).await;
        let result = match found {
            Lookup::Hit(_) => "hit",
            Lookup::Miss(_) => "miss",
        };
        metrics().cache_lookups.with_label_values(&[result]).inc();
        found
    }

    async fn find(self: &Arc<Self>, key: Key, ttl: Duration, wait: Duration) -> Lookup {
        if let Some(hit) = self.get(&key).await {
            return Lookup::Hit(hit);
        }
        let leader = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&key) {
                Some(answered) => Err(answered.subscribe()),
                None => {
                    let (done, _) = watch::channel(false);
                    inflight.insert(key, done.clone());
                    Ok(done)
                }
            }
        };
        let leader = match leader {
            Ok(done) => Some(done),
            Err(mut answered) => {
                // The leader's sender gone also means it is over.
                let _ = tokio::time::timeout(wait, answered.wait_for(|done| *done)).await;
                if let Some(hit) = self.get(&key).await {
                    return Lookup::Hit(hit);
                }
                None
            }
        };
        Lookup::Miss(Box::new(Slot {
            cache: self.clone(),
            key,
            ttl,
            answer: None,
            leader,
        }))
    }

    async fn get(&self, key: &Key) -> Option<Arc<Cached>> {
        match &self.store {
            Store::Memory(entries) => entries.get(key),
            Store::Redis(redis) => redis.get(key).await.map(Arc::new),
        }
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
/// known to be a complete success. The first of identical requests in flight leads: when its
/// slot is stored or dropped, the others waiting on it go on.
pub struct Slot {
    cache: Arc<ResponseCache>,
    key: Key,
    ttl: Duration,
    answer: Option<Cached>,
    leader: Option<watch::Sender<bool>>,
}

impl Slot {
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
    /// delays an answer), then lets the requests waiting on this one go on.
    pub async fn store(mut self) {
        if let Some(answer) = self.answer.take() {
            self.cache.store(self.key, answer).await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(done) = self.leader.take() {
            let mut inflight = self
                .cache
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            inflight.remove(&self.key);
            let _ = done.send(true);
        }
    }
}
