//! The shared backend: answers kept in Redis, so every sidecar of a fleet serves what any
//! of them stored. A value is what the answer's replay records (a small JSON head, with when
//! the entry expires) and the answer's bytes as they are, compressed with LZ4. Redis is never allowed to fail or slow a request: every call has
//! a short timeout, and an error or a timeout is a miss (or a store skipped), counted and
//! logged at most once a minute. While Redis is unreachable, a new connection is tried at
//! most once a second.

use super::{Cached, Key};
use crate::config::ProviderKind;
use crate::redis_link::{CallError, LinkError, RedisLink};
use crate::telemetry::logging::LogLimit;
use crate::telemetry::metrics::metrics;
use crate::telemetry::record::{Served, TokenUsage};
use bytes::Bytes;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest a lookup or a store may wait for Redis.
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Keys are namespaced and versioned: a format change never reads an old value.
pub(super) const KEY_PREFIX: &str = "respan:cache:v2:";

/// A Redis server, connected on first use and again after it was lost.
pub struct RedisStore {
    link: RedisLink,
    log: LogLimit,
}

/// The head of a value (the answer's bytes follow it).
#[derive(Serialize, Deserialize)]
struct Head {
    model_label: String,
    provider: String,
    provider_type: String,
    upstream_model: String,
    usage: Option<TokenUsage>,
    /// When the entry expires (Unix ms): what is left of it when read is how long the near
    /// cache may keep it.
    expires_at_ms: u64,
}

impl RedisStore {
    /// Checks the URL only: the server may come up later.
    pub fn new(url: &str) -> Result<RedisStore, String> {
        let link = RedisLink::new(url, CONNECT_TIMEOUT, CALL_TIMEOUT)
            .map_err(|e| format!("cache.redis_url: {e}"))?;
        Ok(RedisStore {
            link,
            log: LogLimit::once_a_minute(),
        })
    }

    /// Where the server is (for a connection of another kind to it).
    pub fn connection_info(&self) -> &redis::ConnectionInfo {
        self.link.client().get_connection_info()
    }

    /// The answer under `key`: `Ok(None)` when Redis has none, `Err(())` when Redis could
    /// not be asked (counted and logged already).
    pub async fn get(&self, key: &Key) -> Result<Option<Cached>, ()> {
        let value = self.read(&redis_key(key)).await?;
        Ok(value.and_then(|v| decode(&v)))
    }

    /// Stores an answer, on `via` when given (the connection whose own writes Redis does not
    /// report back as invalidations), else on the shared connection.
    pub async fn set(&self, key: &Key, answer: &Cached, via: Option<MultiplexedConnection>) {
        let Some(value) = encode(answer) else {
            return;
        };
        match via {
            Some(mut conn) => {
                let write =
                    conn.pset_ex::<_, _, ()>(redis_key(key), value, millis(answer.ttl).max(1));
                self.finish_write(tokio::time::timeout(CALL_TIMEOUT, write).await);
            }
            None => self.set_bytes(&redis_key(key), value, answer.ttl).await,
        }
    }

    /// The value under a key of this gateway's namespace (a cached answer's, a stored
    /// response's); none on any failure.
    pub async fn get_bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.read(key).await.ok().flatten()
    }

    /// `Err(())` when Redis could not be asked.
    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, ()> {
        let read = |mut conn: ConnectionManager| async move { conn.get(key).await };
        match self.link.call(read).await {
            Ok(value) => Ok(value),
            Err(e) => self.gave_up("get", e).ok_or(()),
        }
    }

    /// Sets a value that expires after `ttl` (at least a millisecond).
    pub async fn set_bytes(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let ms = millis(ttl).max(1);
        let write = |mut conn: ConnectionManager| async move { conn.pset_ex(key, value, ms).await };
        if let Err(e) = self.link.call::<(), _, _>(write).await {
            self.gave_up::<()>("set", e);
        }
    }

    /// Counts and logs a write on the tracking connection that failed or timed out.
    fn finish_write(&self, outcome: Result<redis::RedisResult<()>, tokio::time::error::Elapsed>) {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed::<()>("set", &e.to_string()).unwrap_or(()),
            Err(_) => self.failed::<()>("set", "timed out").unwrap_or(()),
        }
    }

    /// Removes a key; whether it was there.
    pub async fn delete(&self, key: &str) -> bool {
        let remove = |mut conn: ConnectionManager| async move { conn.del::<_, u64>(key).await };
        match self.link.call(remove).await {
            Ok(n) => n > 0,
            Err(e) => self.gave_up("delete", e).unwrap_or(false),
        }
    }

    /// A call that got no answer: counted and logged under `op` (a failed connect under
    /// `connect`), except waiting for the next connect, which is not another failure.
    fn gave_up<T>(&self, op: &str, error: CallError) -> Option<T> {
        match error {
            CallError::Link(LinkError::Waiting) => None,
            CallError::Link(LinkError::Failed(why)) => self.failed("connect", &why),
            other => self.failed(op, &other.to_string()),
        }
    }

    /// Counts a failure and logs it (at most once a minute); the caller goes on without Redis.
    fn failed<T>(&self, op: &str, message: &str) -> Option<T> {
        metrics().cache_errors.with_label_values(&[op]).inc();
        if let Some(quiet) = self.log.permit() {
            tracing::warn!(
                op,
                failures_not_logged = quiet,
                "redis cache unavailable, serving without it: {message}"
            );
        }
        None
    }
}

fn redis_key(key: &Key) -> String {
    format!("{KEY_PREFIX}{}", hex::encode(key))
}

/// The cache key of a Redis key, if it is one (the inverse of [`redis_key`]).
pub(super) fn key_of(redis_key: &[u8]) -> Option<Key> {
    let hex_key = redis_key.strip_prefix(KEY_PREFIX.as_bytes())?;
    let mut key = Key::default();
    hex::decode_to_slice(hex_key, &mut key).ok()?;
    Some(key)
}

/// `len(head) as u32 LE | head JSON | answer`, compressed.
fn encode(answer: &Cached) -> Option<Vec<u8>> {
    let s = &answer.served;
    let head = Head {
        model_label: s.model_label.to_string(),
        provider: s.provider.to_string(),
        provider_type: s.provider_type.to_string(),
        upstream_model: s.upstream_model.to_string(),
        usage: answer.usage,
        expires_at_ms: unix_ms().saturating_add(millis(answer.ttl)),
    };
    let head = serde_json::to_vec(&head).ok()?;
    let mut value = Vec::with_capacity(4 + head.len() + answer.body.len());
    value.extend_from_slice(&u32::try_from(head.len()).ok()?.to_le_bytes());
    value.extend_from_slice(&head);
    value.extend_from_slice(&answer.body);
    Some(lz4_flex::compress_prepend_size(&value))
}

/// A value read back; anything unreadable (another format, a corrupt value) or expired is a
/// miss. The answer is a slice of the decompressed value, not a copy.
fn decode(value: &[u8]) -> Option<Cached> {
    let value = Bytes::from(lz4_flex::decompress_size_prepended(value).ok()?);
    let len = u32::from_le_bytes(value.get(..4)?.try_into().ok()?);
    let end = 4 + usize::try_from(len).ok()?;
    let head: Head = serde_json::from_slice(value.get(4..end)?).ok()?;
    let left = head
        .expires_at_ms
        .checked_sub(unix_ms())
        .filter(|ms| *ms > 0)?;
    let provider_type = ProviderKind::parse(&head.provider_type).map_or("", ProviderKind::as_str);
    Some(Cached {
        body: value.slice(end..),
        served: Served {
            model_label: head.model_label.into(),
            provider: head.provider.into(),
            provider_type,
            upstream_model: head.upstream_model.into(),
            attempts: 0,
        },
        usage: head.usage,
        ttl: Duration::from_millis(left),
    })
}

fn unix_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    millis(since)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bad_ones_are_misses() {
        let answer = Cached {
            body: Bytes::from_static(br#"{"id":"x","choices":[]}"#),
            served: Served {
                model_label: "gpt-*".into(),
                provider: "oa".into(),
                provider_type: "openai",
                upstream_model: "gpt-4o".into(),
                attempts: 3,
            },
            usage: Some(TokenUsage {
                prompt_tokens: 3,
                ..TokenUsage::default()
            }),
            ttl: Duration::from_secs(5),
        };
        let back = decode(&encode(&answer).unwrap()).unwrap();
        assert_eq!(back.body, answer.body);
        assert_eq!(back.served.provider_type, "openai");
        assert_eq!(back.served.upstream_model, "gpt-4o");
        assert_eq!(back.usage, answer.usage);
        assert!(back.ttl <= answer.ttl && back.ttl > Duration::from_secs(4));
        assert!(decode(b"not lz4").is_none());
        let expired = Cached {
            ttl: Duration::ZERO,
            ..answer
        };
        assert!(decode(&encode(&expired).unwrap()).is_none());
    }
}
