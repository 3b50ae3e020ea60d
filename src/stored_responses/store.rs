//! Where kept responses live: in memory, or in Redis (`cache.backend: redis`) so that every
//! sidecar of a deployment can continue a conversation another one started. Values are the
//! kept response's JSON, LZ4-compressed in Redis; Redis never fails a request (see
//! `cache::redis`): an error is a response not found, or not kept.

use crate::cache::redis::RedisStore;
use crate::config::{CacheBackend, CacheConfig};
use bytes::Bytes;
use moka::sync::Cache;
use moka::Expiry;
use std::time::{Duration, Instant};

/// Keys are namespaced apart from cached answers, and versioned.
const KEY_PREFIX: &str = "respan:response:v1:";

/// A value and how long it lives.
#[derive(Clone)]
struct Value {
    json: Bytes,
    ttl: Duration,
}

struct OwnTtl;

impl Expiry<String, Value> for OwnTtl {
    fn expire_after_create(&self, _: &String, value: &Value, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct Store {
    memory: Cache<String, Value>,
    shared: Option<RedisStore>,
}

impl Store {
    /// The cache's backend; memory is bounded by `cache.max_bytes`, as the cache's own is.
    pub fn new(config: &CacheConfig) -> Result<Store, String> {
        let shared = match (config.backend, &config.redis_url) {
            (CacheBackend::Redis, Some(url)) => Some(RedisStore::new(url)?),
            _ => None,
        };
        let memory = Cache::builder()
            .max_capacity(if shared.is_some() {
                0
            } else {
                config.max_bytes
            })
            .weigher(|id: &String, v: &Value| {
                u32::try_from(id.len() + v.json.len()).unwrap_or(u32::MAX)
            })
            .expire_after(OwnTtl)
            .build();
        Ok(Store { memory, shared })
    }

    pub async fn get(&self, id: &str) -> Option<Bytes> {
        match &self.shared {
            Some(redis) => {
                let value = redis.get_bytes(&redis_key(id)).await?;
                lz4_flex::decompress_size_prepended(&value)
                    .ok()
                    .map(Bytes::from)
            }
            None => self.memory.get(id).map(|v| v.json),
        }
    }

    pub async fn put(&self, id: &str, json: Bytes, ttl: Duration) {
        match &self.shared {
            Some(redis) => {
                let value = lz4_flex::compress_prepend_size(&json);
                redis.set_bytes(&redis_key(id), value, ttl).await;
            }
            None => self.memory.insert(id.to_string(), Value { json, ttl }),
        }
    }

    /// Whether it was there.
    pub async fn delete(&self, id: &str) -> bool {
        match &self.shared {
            Some(redis) => redis.delete(&redis_key(id)).await,
            None => self.memory.remove(id).is_some(),
        }
    }
}

fn redis_key(id: &str) -> String {
    format!("{KEY_PREFIX}{id}")
}
