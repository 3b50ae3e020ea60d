//! The response cache (`cache_enabled`): exact-match answers kept with a TTL per entry, in
//! memory (`memory`, the default, bounded by `cache.max_entries` and `cache.max_bytes`) or in
//! Redis shared by a fleet of sidecars (`redis`).
//!
//! `key` says what makes two requests the same; this module keeps and finds their answers.
//! Only complete successful answers are stored, as whole JSON answers in the format the app
//! got them in (the API format is part of the key): a stream is kept gathered into its whole
//! answer, so one entry serves a request that streams and one that does not.

mod coherence;
pub(crate) mod key;
pub(crate) mod redis;
pub(crate) mod tee;

use crate::config::{CacheBackend, CacheConfig};
use crate::dispatch::request::ModelRequest;
use crate::providers::Operation;
use crate::telemetry::metrics::metrics;
use crate::telemetry::record::{Served, TokenUsage};
use crate::translate::collect;
use crate::wire::Wire;
use bytes::Bytes;
use moka::sync::Cache;
use moka::Expiry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use coherence::Coherence;
pub use coherence::CoherenceService;
pub use key::Key;
use tee::{Tee, Telling};

/// Answers larger than this are not stored.
const MAX_ANSWER_BYTES: usize = tee::MAX_STREAM_BYTES;

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
    /// Keys being answered now by a request that missed (its leader).
    inflight: Mutex<HashMap<Key, InFlight>>,
}

/// A request being answered, as identical requests arriving meanwhile find it.
struct InFlight {
    /// Becomes true when it is over (answer stored or not).
    done: watch::Sender<bool>,
    /// Its stream, if it streams.
    tee: Option<Arc<Tee>>,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Arc<Cached>),
    /// An identical streaming request is being answered: the caller relays its stream as it
    /// comes (and asks for itself if that fails before the stream starts).
    Follow(Follower),
    /// The caller asks the provider; its answer goes in the slot.
    Miss(Box<Slot>),
}

/// Where answers are kept: in memory, and in Redis too with the `redis` backend. In front of
/// Redis the memory store is a near cache: a hit found there costs no round trip. It is
/// served only while Redis's invalidations are tracked (`coherence`), so an entry removed
/// from Redis stops serving at once; otherwise Redis alone is asked. Its entries live at
/// most `NEAR_TTL`.
struct Store {
    near: Cache<Key, Arc<Cached>>,
    shared: Option<Shared>,
}

/// Redis, and whether the near cache is coherent with it.
struct Shared {
    redis: redis::RedisStore,
    coherence: Arc<Coherence>,
}

impl Store {
    /// Keeps an answer read from or written to Redis in the near cache, if no invalidation
    /// came since `before` (the generation when the call to Redis began): one that did may
    /// have been this very key's (an operator's `DEL`, a `FLUSHALL`). The generation is read
    /// again after the insert, so an invalidation that lands between the check and the
    /// insert cannot leave the answer behind. Any key's invalidation counts: in a busy fleet
    /// some answers are served from Redis rather than from memory, never stale.
    fn keep_near(&self, coherence: &Coherence, key: Key, answer: Arc<Cached>, before: u64) {
        if !coherence.live() || coherence.generation() != before {
            return;
        }
        self.near.insert(key, answer);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if !coherence.live() || coherence.generation() != before {
            self.near.invalidate(&key);
        }
    }
}

/// The longest an answer read from (or written to) Redis is also served from memory.
const NEAR_TTL: Duration = Duration::from_secs(300);
/// The longest any answer is kept, whatever `cache_ttl` asks.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Each entry lives for its own `cache_ttl`, at most `cap`.
struct PerEntryTtl {
    cap: Duration,
}

impl Expiry<Key, Arc<Cached>> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, value: &Arc<Cached>, _: Instant) -> Option<Duration> {
        Some(value.ttl.min(self.cap))
    }
}

/// The memory store: one bound in bytes that also bounds the entries, as each entry weighs
/// at least `max_bytes / max_entries` (moka has a single weighted capacity).
fn memory_store(config: &CacheConfig, cap: Duration) -> Cache<Key, Arc<Cached>> {
    let floor = config.max_bytes / config.max_entries.max(1);
    let floor = u32::try_from(floor).unwrap_or(u32::MAX);
    Cache::builder()
        .max_capacity(config.max_bytes)
        .weigher(move |_, answer: &Arc<Cached>| {
            let size = u32::try_from(answer.body.len()).unwrap_or(u32::MAX);
            size.max(floor)
        })
        .expire_after(PerEntryTtl { cap })
        .build()
}

impl ResponseCache {
    /// The configured backend; Redis is not connected until first used.
    pub fn new(config: &CacheConfig) -> Result<ResponseCache, String> {
        let store = match (config.backend, &config.redis_url) {
            (CacheBackend::Redis, Some(url)) => Store {
                near: memory_store(config, NEAR_TTL),
                shared: Some(Shared {
                    redis: redis::RedisStore::new(url)?,
                    coherence: Arc::default(),
                }),
            },
            _ => Store {
                near: memory_store(config, MAX_TTL),
                shared: None,
            },
        };
        Ok(ResponseCache {
            store,
            inflight: Mutex::default(),
        })
    }

    /// The answer stored under `key`. When there is none but an identical request is being
    /// answered right now, follows its stream if both stream alike, else waits (at most
    /// `wait`) for its answer instead of asking the provider again; if that request fails,
    /// this one asks for itself. Counted as a hit or a miss (a follower once it knows); a
    /// backend that fails is a miss.
    pub async fn lookup(self: &Arc<Self>, entry: Entry, wait: Duration) -> Lookup {
        let found = self.find(entry, wait).await;
        match found {
            Lookup::Hit(_) => count("hit"),
            Lookup::Miss(_) => count("miss"),
            Lookup::Follow(_) => {}
        }
        found
    }

    async fn find(self: &Arc<Self>, entry: Entry, wait: Duration) -> Lookup {
        let key = entry.key;
        if let Some(hit) = self.get(&key).await {
            return Lookup::Hit(hit);
        }
        let tee = entry.stream.map(|telling| Arc::new(Tee::new(telling)));
        let leader = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&key) {
                Some(answered) => Err((answered.done.subscribe(), answered.tee.clone())),
                None => {
                    let (done, _) = watch::channel(false);
                    let tee = tee.clone();
                    inflight.insert(
                        key,
                        InFlight {
                            done: done.clone(),
                            tee,
                        },
                    );
                    Ok(done)
                }
            }
        };
        let leader = match leader {
            Ok(done) => Some(done),
            Err((_, Some(followed)))
                if entry.stream.is_some_and(|t| t.may_follow(followed.telling)) =>
            {
                return Lookup::Follow(Follower {
                    tee: followed,
                    slot: self.slot(entry, tee, None),
                });
            }
            Err((mut answered, _)) => {
                // The leader's sender gone also means it is over.
                let _ = tokio::time::timeout(wait, answered.wait_for(|done| *done)).await;
                if let Some(hit) = self.get(&key).await {
                    return Lookup::Hit(hit);
                }
                None
            }
        };
        Lookup::Miss(self.slot(entry, tee, leader))
    }

    fn slot(
        self: &Arc<Self>,
        entry: Entry,
        tee: Option<Arc<Tee>>,
        leader: Option<watch::Sender<bool>>,
    ) -> Box<Slot> {
        Box::new(Slot {
            cache: self.clone(),
            entry,
            answer: None,
            tee,
            leader,
        })
    }

    async fn get(&self, key: &Key) -> Option<Arc<Cached>> {
        let store = &self.store;
        let Some(Shared { redis, coherence }) = &store.shared else {
            return store.near.get(key);
        };
        if coherence.live() {
            if let Some(hit) = store.near.get(key) {
                return Some(hit);
            }
        }
        let before = coherence.generation();
        match redis.get(key).await {
            Ok(found) => {
                let hit = Arc::new(found?);
                store.keep_near(coherence, *key, hit.clone(), before);
                Some(hit)
            }
            // Redis cannot be asked (a miss): the near cache is not served without
            // tracking, or a partitioned sidecar would serve what was deleted meanwhile.
            Err(()) => None,
        }
    }

    /// The service that keeps the near cache coherent with Redis (for the `redis` backend).
    pub fn coherence_service(&self) -> Result<Option<CoherenceService>, String> {
        let Some(Shared { redis, coherence }) = &self.store.shared else {
            return Ok(None);
        };
        CoherenceService::new(redis, coherence.clone(), self.store.near.clone()).map(Some)
    }

    async fn store(&self, key: Key, answer: Cached) {
        if answer.body.len() > MAX_ANSWER_BYTES {
            return;
        }
        let store = &self.store;
        let answer = Arc::new(answer);
        let Some(Shared { redis, coherence }) = &store.shared else {
            store.near.insert(key, answer);
            return;
        };
        let before = coherence.generation();
        redis.set(&key, &answer, coherence.writer()).await;
        store.keep_near(coherence, key, answer, before);
    }
}

fn count(result: &str) {
    metrics().cache_lookups.with_label_values(&[result]).inc();
}

/// Whether a request may use the cache: it asked to, it asks for an answer, and it brings
/// no credentials of its own (those never share an entry).
pub fn eligible(request: &ModelRequest<'_>) -> bool {
    let p = &request.params;
    p.cache_enabled == Some(true)
        && matches!(request.operation, Operation::Generate { .. })
        && p.customer_credentials.is_none()
        && p.credential_override.is_none()
}

/// What a request looks up, and how its answer would be kept.
pub struct Entry {
    pub key: Key,
    pub ttl: Duration,
    /// The format of the answer (streams are gathered in it).
    pub ingress: Wire,
    /// How the request's stream is told, if it streams (and may share a stream in flight).
    pub stream: Option<Telling>,
}

/// A request following an identical one's stream.
pub struct Follower {
    pub tee: Arc<Tee>,
    /// Its own place in the cache, should it have to ask for itself.
    slot: Box<Slot>,
}

impl Follower {
    /// It was sent the whole stream: a hit.
    pub fn followed(self) {
        count("hit");
    }

    /// The stream it followed failed before it started: it asks for itself, a miss.
    pub fn ask_for_itself(self) -> Box<Slot> {
        count("miss");
        self.slot
    }
}

/// A request's place in the cache, taken when it missed: where its answer goes once it is
/// known to be a complete success. The first of identical requests in flight leads: when its
/// slot is stored or dropped, the others waiting on it go on.
pub struct Slot {
    cache: Arc<ResponseCache>,
    entry: Entry,
    answer: Option<Cached>,
    /// The request's stream as its app gets it (shared with its followers if it leads).
    tee: Option<Arc<Tee>>,
    leader: Option<watch::Sender<bool>>,
}

impl Slot {
    /// Notes the request's answer, a complete success, to be stored by [`Slot::store`].
    pub fn keep(&mut self, body: Bytes, served: Served, usage: Option<TokenUsage>) {
        self.answer = Some(Cached {
            body,
            served,
            usage,
            ttl: self.entry.ttl,
        });
    }

    /// Notes a piece of a stream as the app gets it (shared, not copied), `served` by what
    /// answers it.
    pub fn sent(&mut self, piece: &Bytes, served: &Served) {
        if let Some(tee) = &self.tee {
            tee.push(piece, served);
        }
    }

    /// The stream ended as a complete success: its followers end theirs, and the whole
    /// answer it tells is kept, if it is one (it ends as its format says, with no error).
    pub fn keep_stream(&mut self, served: &Served, usage: Option<TokenUsage>) {
        let Some(tee) = &self.tee else {
            return;
        };
        tee.end(tee::End::Complete(usage));
        let Some(pieces) = tee.complete_pieces() else {
            return;
        };
        if let Some(whole) = collect::whole(self.entry.ingress, &pieces, usage.as_ref()) {
            self.keep(whole.into(), served.clone(), usage);
        }
    }

    /// Stores the kept answer, if there is one (after the app has it: a slow backend never
    /// delays an answer), then lets the requests waiting on this one go on.
    pub async fn store(mut self) {
        if let Some(answer) = self.answer.take() {
            self.cache.store(self.entry.key, answer).await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(tee) = &self.tee {
            tee.end(tee::End::Failed);
        }
        if let Some(done) = self.leader.take() {
            let mut inflight = self
                .cache
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            inflight.remove(&self.entry.key);
            let _ = done.send(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(max_entries: u64, max_bytes: u64) -> ResponseCache {
        let config = CacheConfig {
            backend: CacheBackend::Memory,
            redis_url: None,
            max_entries,
            max_bytes,
            default_ttl: Duration::from_secs(60),
        };
        ResponseCache::new(&config).unwrap()
    }

    /// Stores `n` answers of `size` bytes; how many are kept, and their bytes.
    async fn fill(cache: &ResponseCache, n: u8, size: usize) -> (u64, u64) {
        for i in 0..n {
            let answer = Cached {
                body: Bytes::from(vec![b'x'; size]),
                served: Served::default(),
                usage: None,
                ttl: Duration::from_secs(60),
            };
            cache.store([i; 32], answer).await;
        }
        let entries = &cache.store.near;
        entries.run_pending_tasks();
        (entries.entry_count(), entries.weighted_size())
    }

    #[tokio::test]
    async fn the_memory_cache_is_bounded_by_bytes_and_by_entries() {
        let (kept, bytes) = fill(&memory(1000, 10_000), 50, 1000).await;
        assert!(
            kept <= 10 && bytes <= 10_000,
            "{kept} answers, {bytes} bytes"
        );
        let (kept, _) = fill(&memory(5, 10_000), 50, 10).await;
        assert!(kept <= 5, "{kept} answers");
        let (kept, _) = fill(&memory(5, 10_000_000), 1, MAX_ANSWER_BYTES + 1).await;
        assert_eq!(kept, 0, "an answer too large for an entry is not kept");
    }
}
