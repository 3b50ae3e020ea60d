//! The shared backend: answers kept in Redis, so every sidecar of a fleet serves what any
//! of them stored. Values are the answer and what its replay records, as JSON compressed with
//! LZ4 and bounded in size. Redis is never allowed to fail or slow a request: every call has
//! a short timeout, and an error or a timeout is a miss (or a store skipped), counted and
//! logged at most once a minute. While Redis is unreachable, a new connection is tried at
//! most once a second.

use super::{Cached, Key};
use crate::config::ProviderKind;
use crate::telemetry::logging::LogLimit;
use crate::telemetry::metrics::metrics;
use crate::telemetry::record::{Served, TokenUsage};
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The longest a lookup or a store may wait for Redis.
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Time between tries to connect while Redis is unreachable.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Keys are namespaced and versioned: a format change never reads an old value.
const KEY_PREFIX: &str = "respan:cache:v1:";

/// A Redis server, connected on first use and again after it was lost.
pub struct RedisStore {
    client: redis::Client,
    state: tokio::sync::Mutex<Connection>,
    log: LogLimit,
}

#[derive(Default)]
struct Connection {
    manager: Option<ConnectionManager>,
    last_try: Option<Instant>,
}

/// A stored answer as it is written in Redis.
#[derive(Serialize, Deserialize)]
struct Wire {
    body: String,
    model_label: String,
    provider: String,
    provider_type: String,
    upstream_model: String,
    usage: Option<TokenUsage>,
}

impl RedisStore {
    /// Checks the URL only: the server may come up later.
    pub fn new(url: &str) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| format!("cache.redis_url: {e}"))?;
        Ok(RedisStore {
            client,
            state: tokio::sync::Mutex::default(),
            log: LogLimit::once_a_minute(),
        })
    }

    pub async fn get(&self, key: &Key) -> Option<Cached> {
        let mut conn = self.connection().await?;
        let read = conn.get::<_, Option<Vec<u8>>>(redis_key(key));
        match tokio::time::timeout(CALL_TIMEOUT, read).await {
            Ok(Ok(value)) => value.and_then(|v| decode(&v)),
            Ok(Err(e)) => self.failed("get", &e.to_string()),
            Err(_) => self.failed("get", "timed out"),
        }
    }

    pub async fn set(&self, key: &Key, answer: &Cached) {
        let Some(value) = encode(answer) else { return };
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let ttl_ms = u64::try_from(answer.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let write = conn.pset_ex::<_, _, ()>(redis_key(key), value, ttl_ms);
        let why = match tokio::time::timeout(CALL_TIMEOUT, write).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        self.failed::<()>("set", &why);
    }

    /// The connection, made if there is none and the last try is not too recent.
    async fn connection(&self) -> Option<ConnectionManager> {
        let mut state = self.state.lock().await;
        if let Some(manager) = &state.manager {
            return Some(manager.clone());
        }
        if state
            .last_try
            .is_some_and(|t| t.elapsed() < RECONNECT_EVERY)
        {
            return None;
        }
        state.last_try = Some(Instant::now());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(1);
        let connect = ConnectionManager::new_with_config(self.client.clone(), config);
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, connect).await {
            Ok(Ok(manager)) => {
                state.manager = Some(manager.clone());
                Some(manager)
            }
            Ok(Err(e)) => self.failed("connect", &e.to_string()),
            Err(_) => self.failed("connect", "timed out"),
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

fn encode(answer: &Cached) -> Option<Vec<u8>> {
    let s = &answer.served;
    let wire = Wire {
        body: String::from_utf8(answer.body.to_vec()).ok()?,
        model_label: s.model_label.clone(),
        provider: s.provider.clone(),
        provider_type: s.provider_type.to_string(),
        upstream_model: s.upstream_model.clone(),
        usage: answer.usage,
    };
    let json = serde_json::to_vec(&wire).ok()?;
    Some(lz4_flex::compress_prepend_size(&json))
}

/// A value read back; anything unreadable (another format, a corrupt value) is a miss.
fn decode(value: &[u8]) -> Option<Cached> {
    let json = lz4_flex::decompress_size_prepended(value).ok()?;
    let wire: Wire = serde_json::from_slice(&json).ok()?;
    let provider_type = ProviderKind::parse(&wire.provider_type).map_or("", ProviderKind::as_str);
    Some(Cached {
        body: Bytes::from(wire.body),
        served: Served {
            model_label: wire.model_label,
            provider: wire.provider,
            provider_type,
            upstream_model: wire.upstream_model,
            attempts: 0,
        },
        usage: wire.usage,
        ttl: Duration::ZERO,
    })
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
        assert!(decode(b"not lz4").is_none());
    }
}
