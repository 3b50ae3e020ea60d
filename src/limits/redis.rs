//! `limits.backend: redis`: one count per rule and scope value for every sidecar sharing the
//! Redis, so a fleet as a whole never admits more than a limit.
//!
//! Admission is one round trip: a Lua script reads every matching rule's count and
//! reservations, and either refuses (naming the rule) or counts the request and reserves its
//! estimate on all of them, atomically (Redis runs a script alone). Settlement is one more:
//! the reservation is taken back and the real tokens and cost added. Keys expire with their
//! window: under `respan:lim:v2:{rule}:{window}:{scope}`, `:b` holds each bucket's (or
//! period's) `q` requests, `t` tokens and `c` cost, `:s` their running sum, `:r` the
//! reservations of requests in flight.

use super::window::{self, SLIDING_BUCKETS};
use super::{Ask, Kind};
use crate::config::limits::{Rule, Window};
use crate::drain::{Batching, Deliver, Drain};
use crate::redis_link::RedisLink;
use crate::telemetry::logging::LogLimit;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::{self, error::TrySendError};

/// A slow Redis counts as down for the request.
const CALL_TIMEOUT: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Settlements waiting at most; past this a request settles itself.
const SETTLE_QUEUE: usize = 4096;
/// Settlements sent in one round trip at most.
const SETTLE_BATCH: usize = 256;
/// Reservations of a sidecar that died before settling fade after this.
const RESERVED_TTL_SECS: u64 = 3600;

/// Each rule and scope value keeps, under its prefix `k`: `k:b`, a hash of its buckets'
/// counts (`q<bucket>`, `t<bucket>`, `c<bucket>`); `k:s`, their running sum (`q`, `t`, `c`)
/// from bucket `lo` on; `k:r`, what requests in flight reserved. Admission first takes the
/// buckets that left the window out of the sum (each bucket once, however many requests
/// come), so a sliding minute costs a few commands, not one per bucket. `lo` then moves to
/// the oldest bucket holding anything: the one whose leaving frees room. (Negative amounts
/// are written `0 - x`: Redis refuses the `-0` that `-x` makes of 0.)
const ADMIT: &str = r#"
local rules = cjson.decode(ARGV[1])
local ask_t = tonumber(ARGV[2])
local ask_c = tonumber(ARGV[3])
local used = {}
for i, r in ipairs(rules) do
  local s, bk = r.k .. ':s', r.k .. ':b'
  local lo = tonumber(redis.call('HGET', s, 'lo'))
  while lo and lo < r.b do
    local v = redis.call('HMGET', bk, 'q' .. lo, 't' .. lo, 'c' .. lo)
    if lo >= r.o and tonumber(v[1] or 0) > 0 then break end
    if v[1] or v[2] or v[3] then
      redis.call('HINCRBY', s, 'q', 0 - (tonumber(v[1]) or 0))
      redis.call('HINCRBY', s, 't', 0 - (tonumber(v[2]) or 0))
      redis.call('HINCRBYFLOAT', s, 'c', 0 - (tonumber(v[3]) or 0))
      redis.call('HDEL', bk, 'q' .. lo, 't' .. lo, 'c' .. lo)
    end
    lo = lo + 1
  end
  if lo then redis.call('HSET', s, 'lo', lo) end
  -- A sidecar whose clock is behind counts in the oldest bucket still in the sum, never
  -- in one the sum has already let go (it would never be taken out of it).
  r.at = math.max(r.b, lo or r.b)
  local sum = redis.call('HMGET', s, 'q', 't', 'c')
  local res = redis.call('HMGET', r.k .. ':r', 't', 'c')
  local q = math.max(tonumber(sum[1]) or 0, 0)
  local t = math.max(tonumber(sum[2]) or 0, 0) + math.max(tonumber(res[1]) or 0, 0)
  local c = math.max(tonumber(sum[3]) or 0, 0) + math.max(tonumber(res[2]) or 0, 0)
  local first = lo or r.at
  local uq, ut, uc = q + 1, t + ask_t, c + ask_c
  if r.blk == 1 then
    if r.q >= 0 and uq > r.q then return {0, i, 'requests', first} end
    if r.t >= 0 and ut > r.t then return {0, i, 'tokens', first} end
    if r.c >= 0 and uc > r.c then return {0, i, 'cost_usd', first} end
  end
  local crossed = (r.q >= 0 and uq >= r.q * r.al) or (r.t >= 0 and ut >= r.t * r.al)
    or (r.c >= 0 and uc >= r.c * r.al)
  used[i] = {uq, ut, tostring(uc), first, r.at, crossed and 1 or 0}
end
local out = {1}
for i, r in ipairs(rules) do
  local s, bk = r.k .. ':s', r.k .. ':b'
  redis.call('HINCRBY', bk, 'q' .. r.at, 1)
  redis.call('HINCRBY', s, 'q', 1)
  redis.call('HSETNX', s, 'lo', r.at)
  if r.ttl > 0 then
    redis.call('EXPIRE', bk, r.ttl)
    redis.call('EXPIRE', s, r.ttl)
  end
  -- The alert threshold crossed: raised by the one sidecar that first sees it in its
  -- period, whichever of the fleet that is.
  if used[i][6] == 1 then
    if redis.call('HGET', s, 'ap') == tostring(r.ap) then
      used[i][6] = 0
    else
      redis.call('HSET', s, 'ap', r.ap)
    end
  end
  redis.call('HINCRBY', r.k .. ':r', 't', ask_t)
  redis.call('HINCRBYFLOAT', r.k .. ':r', 'c', ask_c)
  -- Set once: reservations a sidecar never settled (it died, a settlement was lost) fade
  -- an hour after the first, however busy the rule stays. (TTL, not EXPIRE NX: Redis 6
  -- has no NX.)
  if redis.call('TTL', r.k .. ':r') < 0 then redis.call('EXPIRE', r.k .. ':r', ARGV[4]) end
  table.insert(out, used[i])
end
return out
"#;

/// Settlement, of a batch: each reservation is taken back, and what was used is added to
/// the request's bucket and to the sum, unless that bucket has left the window meanwhile (a
/// stream longer than a sliding window).
const SETTLE: &str = r#"
local batch = cjson.decode(ARGV[1])
for _, h in ipairs(batch) do
  -- A reservation made before the key faded is not taken back below nothing: a negative
  -- offset would hide the reservations of later requests until the key faded again.
  local rk = h.k .. ':r'
  if redis.call('HINCRBY', rk, 't', 0 - h.at) < 0 then redis.call('HSET', rk, 't', 0) end
  if tonumber(redis.call('HINCRBYFLOAT', rk, 'c', 0 - h.ac)) < 0 then
    redis.call('HSET', rk, 'c', 0)
  end
  if redis.call('TTL', rk) < 0 then redis.call('EXPIRE', rk, ARGV[2]) end
  local s, bk = h.k .. ':s', h.k .. ':b'
  local lo = tonumber(redis.call('HGET', s, 'lo'))
  if lo and h.b >= lo then
    redis.call('HINCRBY', bk, 't' .. h.b, h.ut)
    redis.call('HINCRBYFLOAT', bk, 'c' .. h.b, h.uc)
    redis.call('HINCRBY', s, 't', h.ut)
    redis.call('HINCRBYFLOAT', s, 'c', h.uc)
    if h.ttl > 0 then
      redis.call('EXPIRE', bk, h.ttl)
      redis.call('EXPIRE', s, h.ttl)
    end
  end
end
return 1
"#;

/// One rule as the admission script reads it.
#[derive(Serialize)]
struct ScriptRule {
    /// The key prefix of its counts for this scope value.
    k: String,
    /// The bucket (or period) now, and the oldest still counted.
    b: i64,
    o: i64,
    ttl: u64,
    /// Its limits, -1 where it has none.
    q: f64,
    t: f64,
    c: f64,
    blk: u8,
    /// Its alert threshold (a fraction of each limit), and the period an alert is raised
    /// once in.
    al: f64,
    ap: i64,
}

/// What one rule counts with an admitted request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Used {
    pub requests: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    /// Its oldest bucket holding anything.
    pub first: i64,
    /// Its alert threshold is crossed, and this request is the first of the whole fleet
    /// to see that in the alert's period.
    pub alert: bool,
}

/// A reservation to settle.
#[derive(Debug, Clone)]
pub struct Held {
    k: String,
    b: i64,
    ttl: u64,
}

/// A request's reservations, what it reserved and what it used.
#[derive(Debug)]
pub struct Settlement {
    pub held: Vec<Held>,
    pub ask: Ask,
    pub tokens: u64,
    pub cost_usd: f64,
}

/// One reservation as the settlement script reads it.
#[derive(Serialize)]
struct SettleEntry<'a> {
    k: &'a str,
    b: i64,
    ttl: u64,
    /// Reserved tokens and cost, taken back.
    at: u64,
    ac: f64,
    /// Used tokens and cost, added.
    ut: u64,
    uc: f64,
}

/// What the script decided.
pub enum Decision {
    /// Admitted: per rule, what it counts with this request.
    Admitted(Vec<Used>, Vec<Held>),
    /// Refused by rule number `0` of those given, on this kind, oldest bucket `2`.
    Refused(usize, Kind, i64),
}

/// The Redis backend.
pub struct Fleet {
    link: RedisLink,
    admit: redis::Script,
    settle: redis::Script,
    /// Settlements waiting for the settling service.
    queue: mpsc::Sender<Settlement>,
    receiver: Mutex<Option<mpsc::Receiver<Settlement>>>,
    log: LogLimit,
}

impl Fleet {
    pub fn new(url: &str) -> Result<Fleet, String> {
        let link = RedisLink::new(url, CONNECT_TIMEOUT, CALL_TIMEOUT)
            .map_err(|e| format!("limits.redis_url: {e}"))?;
        let (queue, receiver) = mpsc::channel(SETTLE_QUEUE);
        Ok(Fleet {
            link,
            admit: redis::Script::new(ADMIT),
            settle: redis::Script::new(SETTLE),
            queue,
            receiver: Mutex::new(Some(receiver)),
            log: LogLimit::once_a_minute(),
        })
    }

    /// Checks and reserves on every matched rule in one round trip; why Redis could not.
    pub async fn admit(
        &self,
        matched: &[(&Rule, String)],
        ask: Ask,
        now: SystemTime,
    ) -> Result<Decision, String> {
        let rules: Vec<ScriptRule> = matched
            .iter()
            .map(|(rule, scope)| {
                let b = window::bucket(rule.window, now);
                ScriptRule {
                    k: prefix(rule, scope),
                    b,
                    o: window::oldest_counted(rule.window, b),
                    ttl: ttl(rule.window, now),
                    q: rule.requests.map_or(-1.0, |l| l as f64),
                    t: rule.tokens.map_or(-1.0, |l| l as f64),
                    c: rule.cost_usd.unwrap_or(-1.0),
                    blk: u8::from(rule.block),
                    al: rule.alert_at,
                    ap: super::alert_period(rule.window, now),
                }
            })
            .collect();
        let json = serde_json::to_string(&rules).map_err(|e| e.to_string())?;
        let mut call = self.admit.prepare_invoke();
        call.arg(json)
            .arg(ask.tokens)
            .arg(ask.cost_usd)
            .arg(RESERVED_TTL_SECS);
        let reply: redis::Value = self
            .link
            .call(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await
            .map_err(|e| e.to_string())?;
        decode(reply, rules)
    }

    /// Takes a request's reservations back and adds what it used, later: the request does
    /// not wait for it (a settlement that waits a few milliseconds only holds its reservation
    /// a little longer). When the queue is full (Redis slow or away) it settles now.
    pub async fn settle_later(&self, settlement: Settlement) {
        if let Err(TrySendError::Full(settlement)) = self.queue.try_send(settlement) {
            if let Err(why) = self.settle(std::slice::from_ref(&settlement)).await {
                self.lost(&why);
            }
        }
    }

    /// Settles a batch in one round trip.
    pub async fn settle(&self, batch: &[Settlement]) -> Result<(), String> {
        let entries: Vec<SettleEntry<'_>> = batch
            .iter()
            .flat_map(|s| {
                s.held.iter().map(|h| SettleEntry {
                    k: &h.k,
                    b: h.b,
                    ttl: h.ttl,
                    at: s.ask.tokens,
                    ac: s.ask.cost_usd,
                    ut: s.tokens,
                    uc: s.cost_usd,
                })
            })
            .collect();
        let json = serde_json::to_string(&entries).map_err(|e| e.to_string())?;
        let mut call = self.settle.prepare_invoke();
        call.arg(json).arg(RESERVED_TTL_SECS);
        self.link
            .call(|mut conn| async move { call.invoke_async::<()>(&mut conn).await })
            .await
            .map_err(|e| e.to_string())
    }

    /// The service that settles what is queued (once: the queue has one reader).
    pub fn settle_service(
        &self,
        limits: Arc<super::Limits>,
        drain: Drain,
    ) -> Option<SettleService> {
        let receiver = self.receiver.lock().ok()?.take()?;
        Some(SettleService {
            limits,
            drain,
            receiver: Mutex::new(Some(receiver)),
        })
    }

    /// A settlement that could not be made, logged at most once a minute.
    fn lost(&self, why: &str) {
        if let Some(quiet) = self.log.permit() {
            tracing::warn!(
                quiet,
                "limits: a settlement was lost (Redis cannot be asked): {why}"
            );
        }
    }
}

/// The script's reply: `{1, {q, t, c, first}...}` or `{0, rule, kind, first}`.
fn decode(reply: redis::Value, rules: Vec<ScriptRule>) -> Result<Decision, String> {
    use redis::Value;
    let bad = || "unexpected reply from the limits script".to_string();
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    };
    let float = |v: &Value| match v {
        Value::Int(n) => Some(*n as f64),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    };
    match items.first().and_then(int) {
        Some(0) => {
            let rule = items.get(1).and_then(int).ok_or_else(bad)?;
            let kind = match items.get(2) {
                Some(Value::BulkString(b)) if b.as_slice() == b"tokens" => Kind::Tokens,
                Some(Value::BulkString(b)) if b.as_slice() == b"cost_usd" => Kind::Cost,
                _ => Kind::Requests,
            };
            let first = items.get(3).and_then(int).unwrap_or(0);
            // Lua counts from 1.
            Ok(Decision::Refused(
                usize::try_from(rule - 1).map_err(|_| bad())?,
                kind,
                first,
            ))
        }
        Some(1) => {
            let mut used = Vec::with_capacity(rules.len());
            let mut counted_at = Vec::with_capacity(rules.len());
            for item in &items[1..] {
                let Value::Array(v) = item else {
                    return Err(bad());
                };
                let get = |i: usize| v.get(i).ok_or_else(bad);
                used.push(Used {
                    requests: u64::try_from(int(get(0)?).ok_or_else(bad)?).unwrap_or(0),
                    tokens: u64::try_from(int(get(1)?).ok_or_else(bad)?).unwrap_or(0),
                    cost_usd: float(get(2)?).ok_or_else(bad)?,
                    first: int(get(3)?).ok_or_else(bad)?,
                    alert: int(get(5)?) == Some(1),
                });
                counted_at.push(int(get(4)?).ok_or_else(bad)?);
            }
            // Settled in the bucket the request was counted in.
            let held = rules
                .into_iter()
                .zip(counted_at)
                .map(|(r, b)| Held {
                    k: r.k,
                    b,
                    ttl: r.ttl,
                })
                .collect();
            Ok(Decision::Admitted(used, held))
        }
        _ => Err(bad()),
    }
}

/// The key prefix of a rule's counts for one scope value. A window change is a new count.
fn prefix(rule: &Rule, scope: &str) -> String {
    format!(
        "respan:lim:v2:{}:{}:{scope}",
        rule.name,
        rule.window.as_str()
    )
}

/// How long a bucket's key must live: past its window (sliding), or to the end of its period
/// with an hour's margin; forever for `lifetime`.
fn ttl(window: Window, now: SystemTime) -> u64 {
    match window {
        Window::Minute => 2 * SLIDING_BUCKETS as u64,
        Window::Hour => 2 * 60 * SLIDING_BUCKETS as u64,
        Window::Lifetime => 0,
        _ => window::frees_at(window, 0, now)
            .and_then(|t| t.duration_since(now).ok())
            .map_or(0, |d| d.as_secs() + 3600),
    }
}

/// Settles queued settlements in batches, one round trip each (a Pingora background service
/// on its own thread); once the process is quiet it settles what is left and stops.
pub struct SettleService {
    limits: Arc<super::Limits>,
    drain: Drain,
    receiver: Mutex<Option<mpsc::Receiver<Settlement>>>,
}

/// How settlements are taken: each batch at once (a settlement waits for nothing), and for
/// at most 2 s once no request is left to settle.
const SETTLING: Batching = Batching {
    max: SETTLE_BATCH,
    gather: None,
    flush_limit: Duration::from_secs(2),
};

#[async_trait]
impl BackgroundService for SettleService {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let taken = self.receiver.lock().ok().and_then(|mut r| r.take());
        let (Some(mut receiver), Some(fleet)) = (taken, self.limits.fleet.as_ref()) else {
            return;
        };
        self.drain
            .serve_queue(&mut receiver, &SETTLING, &mut Settling(fleet))
            .await;
    }
}

/// Settles a batch in one round trip (bounded by its own call timeout).
struct Settling<'a>(&'a Fleet);

impl Deliver<Settlement> for Settling<'_> {
    async fn deliver(&mut self, batch: &[Settlement], _deadline: Option<Instant>) {
        if let Err(why) = self.0.settle(batch).await {
            self.0.lost(&why);
        }
    }
}
