//! `limits.backend: redis`: one count per rule and scope value for every sidecar sharing the
//! Redis, so a fleet as a whole never admits more than a limit.
//!
//! Admission is one round trip: a Lua script reads every matching rule's count and
//! reservations, and either refuses (naming the rule) or counts the request and reserves its
//! estimate on all of them, atomically (Redis runs a script alone). Settlement is one more:
//! the reservation is taken back and the real tokens and cost added. Keys expire with their
//! window: `respan:lim:v1:{rule}:{window}:{scope}:{bucket}` holds a bucket's (or period's)
//! `q` requests, `t` tokens and `c` cost; `...:r` the reservations of requests in flight.

use super::window::{self, SLIDING_BUCKETS};
use super::{Ask, Kind};
use crate::config::limits::{Rule, Window};
use crate::redis_link::{LinkError, RedisLink};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// A slow Redis counts as down for the request.
const CALL_TIMEOUT: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Reservations of a sidecar that died before settling fade after this.
const RESERVED_TTL_SECS: u64 = 3600;

const ADMIT: &str = r#"
local rules = cjson.decode(ARGV[1])
local ask_t = tonumber(ARGV[2])
local ask_c = tonumber(ARGV[3])
local used = {}
for i, r in ipairs(rules) do
  local q, t, c, first = 0, 0, 0, -1
  for b = r.o, r.b do
    local v = redis.call('HMGET', r.k .. ':' .. b, 'q', 't', 'c')
    local bq = tonumber(v[1]) or 0
    if first < 0 and bq > 0 then first = b end
    q = q + bq
    t = t + (tonumber(v[2]) or 0)
    c = c + (tonumber(v[3]) or 0)
  end
  local res = redis.call('HMGET', r.k .. ':r', 't', 'c')
  t = t + (tonumber(res[1]) or 0)
  c = c + (tonumber(res[2]) or 0)
  if first < 0 then first = r.b end
  if r.blk == 1 then
    if r.q >= 0 and q + 1 > r.q then return {0, i, 'requests', first} end
    if r.t >= 0 and t + ask_t > r.t then return {0, i, 'tokens', first} end
    if r.c >= 0 and c + ask_c > r.c then return {0, i, 'cost_usd', first} end
  end
  used[i] = {q + 1, t + ask_t, tostring(c + ask_c), first}
end
local out = {1}
for i, r in ipairs(rules) do
  local key = r.k .. ':' .. r.b
  redis.call('HINCRBY', key, 'q', 1)
  if r.ttl > 0 then redis.call('EXPIRE', key, r.ttl) end
  redis.call('HINCRBY', r.k .. ':r', 't', ask_t)
  redis.call('HINCRBYFLOAT', r.k .. ':r', 'c', ask_c)
  redis.call('EXPIRE', r.k .. ':r', ARGV[4])
  table.insert(out, used[i])
end
return out
"#;

const SETTLE: &str = r#"
local held = cjson.decode(ARGV[1])
for _, h in ipairs(held) do
  redis.call('HINCRBY', h.k .. ':r', 't', -tonumber(ARGV[2]))
  redis.call('HINCRBYFLOAT', h.k .. ':r', 'c', -tonumber(ARGV[3]))
  local key = h.k .. ':' .. h.b
  redis.call('HINCRBY', key, 't', ARGV[4])
  redis.call('HINCRBYFLOAT', key, 'c', ARGV[5])
  if h.ttl > 0 then redis.call('EXPIRE', key, h.ttl) end
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
}

/// A reservation to settle.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    k: String,
    b: i64,
    ttl: u64,
}

/// What the script decided.
pub enum Decision {
    /// Admitted: per rule, its requests, tokens and cost counted with this request, and its
    /// oldest bucket holding anything.
    Admitted(Vec<(u64, u64, f64, i64)>, Vec<Held>),
    /// Refused by rule number `0` of those given, on this kind, oldest bucket `2`.
    Refused(usize, Kind, i64),
}

/// The Redis backend.
pub struct Fleet {
    link: RedisLink,
    admit: redis::Script,
    settle: redis::Script,
}

impl Fleet {
    pub fn new(url: &str) -> Result<Fleet, String> {
        let link = RedisLink::new(url, CONNECT_TIMEOUT, CALL_TIMEOUT)
            .map_err(|e| format!("limits.redis_url: {e}"))?;
        Ok(Fleet {
            link,
            admit: redis::Script::new(ADMIT),
            settle: redis::Script::new(SETTLE),
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
                }
            })
            .collect();
        let json = serde_json::to_string(&rules).map_err(|e| e.to_string())?;
        let mut conn = self.connection().await?;
        let mut call = self.admit.prepare_invoke();
        call.arg(json)
            .arg(ask.tokens)
            .arg(ask.cost_usd)
            .arg(RESERVED_TTL_SECS);
        let reply: redis::Value = tokio::time::timeout(CALL_TIMEOUT, call.invoke_async(&mut conn))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| self.failed(&e))?;
        decode(reply, rules)
    }

    /// Takes a request's reservations back and adds what it used.
    pub async fn settle(
        &self,
        held: &[Held],
        ask: Ask,
        tokens: u64,
        cost_usd: f64,
    ) -> Result<(), String> {
        let json = serde_json::to_string(held).map_err(|e| e.to_string())?;
        let mut conn = self.connection().await?;
        let mut call = self.settle.prepare_invoke();
        call.arg(json)
            .arg(ask.tokens)
            .arg(ask.cost_usd)
            .arg(tokens)
            .arg(cost_usd);
        tokio::time::timeout(CALL_TIMEOUT, call.invoke_async::<()>(&mut conn))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| self.failed(&e))
    }

    /// Why a call failed (the link drops a connection that is gone).
    fn failed(&self, error: &redis::RedisError) -> String {
        self.link.failed(error);
        error.to_string()
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, String> {
        self.link.connection().await.map_err(|e| match e {
            LinkError::Waiting => "unreachable".to_string(),
            LinkError::Failed(why) => why,
        })
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
            for item in &items[1..] {
                let Value::Array(v) = item else {
                    return Err(bad());
                };
                let get = |i: usize| v.get(i).ok_or_else(bad);
                used.push((
                    u64::try_from(int(get(0)?).ok_or_else(bad)?).unwrap_or(0),
                    u64::try_from(int(get(1)?).ok_or_else(bad)?).unwrap_or(0),
                    float(get(2)?).ok_or_else(bad)?,
                    int(get(3)?).ok_or_else(bad)?,
                ));
            }
            let held = rules
                .into_iter()
                .map(|r| Held {
                    k: r.k,
                    b: r.b,
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
        "respan:lim:v1:{}:{}:{scope}",
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
