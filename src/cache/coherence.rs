//! Keeps the near cache in front of Redis coherent with it: an entry deleted from Redis (an
//! operator's `DEL` of a bad answer, a `FLUSHALL`) stops being served by every sidecar within
//! moments, not when its near copy would have expired.
//!
//! Redis's server-assisted client-side caching does the telling: a connection of its own,
//! speaking RESP3, turns on `CLIENT TRACKING ... BCAST PREFIX ... NOLOOP` for the cache's
//! keys, and the server pushes an `invalidate` for every key of that prefix that changes or
//! goes (a null for a flush), but for the writes made on that same connection: the sidecar
//! stores its answers on it. Each removes that near entry (a flush, all of them). The redis crate's own
//! client-side cache is not used: it is experimental, keeps commands rather than decoded
//! answers, and drops a flush's invalidation.
//!
//! While the tracking connection is down, nothing tells the sidecar what changed: the near
//! cache is emptied and not used (lookups ask Redis alone) until tracking is back.

use super::redis::{key_of, RedisStore};
use super::{Cached, Key};
use async_trait::async_trait;
use moka::sync::Cache;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Time between tries to start tracking while Redis is unreachable.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How often the tracking connection is checked: a peer gone silent sends no disconnection.
const PING_EVERY: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether the near cache may serve, and a count of the invalidations seen.
#[derive(Default)]
pub struct Coherence {
    live: AtomicBool,
    /// The tracking connection, for this sidecar's own writes: with `NOLOOP` Redis does not
    /// report them back, so an answer just stored stays in the near cache.
    writer: std::sync::Mutex<Option<MultiplexedConnection>>,
    /// Moves on with every invalidation: an answer read from Redis goes into the near cache
    /// only if none came while it was read (it may be the very value just deleted).
    generation: AtomicU64,
}

impl Coherence {
    /// Whether invalidations are being received, so near entries are current.
    pub fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The connection to store answers on while tracking is live.
    pub fn writer(&self) -> Option<MultiplexedConnection> {
        if !self.live() {
            return None;
        }
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_writer(&self, conn: Option<MultiplexedConnection>) {
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = conn;
    }

    /// Sequentially consistent, as is its move, and each is fenced: a near cache's filler
    /// inserts then reads it while the invalidator moves it then removes (moka's own
    /// atomics are not sequentially consistent), and without the fences each could miss
    /// what the other did.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn moved(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }
}

/// The background service that tracks Redis for one near cache.
pub struct CoherenceService {
    pub(super) coherence: Arc<Coherence>,
    pub(super) near: Cache<Key, Arc<Cached>>,
    pub(super) client: redis::Client,
}

impl CoherenceService {
    /// A tracking client for the store's server (the same address, speaking RESP3).
    pub(super) fn new(
        store: &RedisStore,
        coherence: Arc<Coherence>,
        near: Cache<Key, Arc<Cached>>,
    ) -> Result<CoherenceService, String> {
        let mut info = store.connection_info().clone();
        info.redis.protocol = ProtocolVersion::RESP3;
        let client = redis::Client::open(info).map_err(|e| format!("cache.redis_url: {e}"))?;
        Ok(CoherenceService {
            coherence,
            near,
            client,
        })
    }

    /// Tracks until the connection is lost (or cannot be made); why it ended.
    async fn track(&self) -> String {
        let (tx, mut pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_push_sender(tx);
        let mut conn = match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(e) => return format!("cannot connect: {e}"),
        };
        let tracking = redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(super::redis::KEY_PREFIX)
            .arg("NOLOOP")
            .query_async::<()>(&mut conn)
            .await;
        if let Err(e) = tracking {
            return format!("CLIENT TRACKING refused: {e}");
        }
        // Whatever changed while nobody listened is unknown: start empty.
        self.near.invalidate_all();
        self.coherence.moved();
        self.coherence.set_writer(Some(conn.clone()));
        self.coherence.live.store(true, Ordering::Release);
        tracing::info!("cache: tracking Redis invalidations; the near cache serves");
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                push = pushes.recv() => match push {
                    Some(PushInfo { kind: PushKind::Invalidate, data }) => self.invalidate(&data),
                    Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => {
                        return "disconnected".into();
                    }
                    Some(_) => {}
                },
                _ = ping.tick() => {
                    if let Err(e) = redis::cmd("PING").query_async::<()>(&mut conn).await {
                        return format!("ping failed: {e}");
                    }
                }
            }
        }
    }

    /// One `invalidate` push: its keys (or, for a flush, every key) leave the near cache.
    fn invalidate(&self, data: &[Value]) {
        self.coherence.moved();
        match data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    let key = match key {
                        Value::BulkString(bytes) => key_of(bytes),
                        Value::SimpleString(text) => key_of(text.as_bytes()),
                        _ => None,
                    };
                    match key {
                        Some(key) => self.near.invalidate(&key),
                        // A key of the prefix that is no cache key: be safe.
                        None => self.near.invalidate_all(),
                    }
                }
            }
            _ => {
                tracing::info!("cache: Redis was flushed; the near cache is emptied");
                self.near.invalidate_all();
            }
        }
    }

    fn lost(&self, why: &str) {
        let was_live = self.coherence.live.swap(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.coherence.set_writer(None);
        // Nothing tells what changes from now on: nothing of the near cache is kept.
        self.near.invalidate_all();
        self.coherence.moved();
        if was_live {
            tracing::warn!("cache: Redis invalidations lost ({why}); lookups go to Redis until tracking is back");
        }
    }
}

#[async_trait]
impl BackgroundService for CoherenceService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let why = tokio::select! {
                why = self.track() => why,
                _ = shutdown.changed() => return,
            };
            self.lost(&why);
            tokio::select! {
                _ = tokio::time::sleep(RETRY_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
