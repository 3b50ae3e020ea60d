//! The last hour, minute by minute: requests, errors, latency (p50, p95), tokens and cost,
//! for the Logs page's charts (`/api/stats`).
//!
//! Kept in the process as a ring of 60 minutes, fed by every request's trace as it ends, so
//! the charts count every request, not only those the recent-trace ring still holds, in a
//! few KiB whatever the traffic. Latency is a histogram per minute (buckets 25% apart), so
//! a percentile is within a quarter of the true value.

use super::trace::{rfc3339, Trace};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Minutes kept: the last hour.
const MINUTES: usize = 60;
/// Latency buckets: the first ends at [`FIRST_BOUND_MS`], each next one 25% later; the
/// last (about 75 minutes: long streams and realtime sessions) also takes everything slower.
const BUCKETS: usize = 80;
const FIRST_BOUND_MS: f64 = 0.1;
const GROWTH: f64 = 1.25;

/// One minute's sums.
#[derive(Clone, Copy)]
struct Minute {
    /// Minutes since the Unix epoch; 0 for a slot not used yet.
    index: u64,
    requests: u64,
    errors: u64,
    tokens: u64,
    cost_usd: f64,
    latency: [u32; BUCKETS],
}

impl Minute {
    const EMPTY: Minute = Minute {
        index: 0,
        requests: 0,
        errors: 0,
        tokens: 0,
        cost_usd: 0.0,
        latency: [0; BUCKETS],
    };

    /// The latency under which a share `q` of this minute's requests ended, in ms.
    fn percentile(&self, q: f64) -> Option<f64> {
        let rank = (self.requests as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return Some(bound_ms(i));
            }
        }
        None
    }
}

/// The ring of the last hour's minutes.
pub struct Minutes {
    ring: Mutex<[Minute; MINUTES]>,
}

impl Default for Minutes {
    fn default() -> Minutes {
        Minutes {
            ring: Mutex::new([Minute::EMPTY; MINUTES]),
        }
    }
}

/// One minute as `/api/stats` shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct MinuteView {
    pub start: String,
    pub requests: u64,
    pub errors: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub tokens: u64,
    pub cost_usd: f64,
}

impl Minutes {
    /// Counts a request that ended.
    pub fn observe(&self, trace: &Trace) {
        let r = &trace.record;
        let tokens = r.usage.as_ref().map_or(0, |u| u.total_tokens);
        let cost = trace.cost.unwrap_or(0.0);
        self.add(trace.ended_at, trace.latency, r.failed(), tokens, cost);
    }

    fn add(&self, at: SystemTime, latency: Duration, failed: bool, tokens: u64, cost: f64) {
        let index = minute_of(at);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut ring[(index % MINUTES as u64) as usize];
        if slot.index != index {
            *slot = Minute {
                index,
                ..Minute::EMPTY
            };
        }
        slot.requests += 1;
        slot.errors += u64::from(failed);
        slot.tokens += tokens;
        slot.cost_usd += cost;
        slot.latency[bucket(latency)] += 1;
    }

    /// The 60 minutes up to the one `now` is in, oldest first (a minute without requests
    /// shows zeros).
    pub fn last_hour(&self, now: SystemTime) -> Vec<MinuteView> {
        let newest = minute_of(now);
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        (newest.saturating_sub(MINUTES as u64 - 1)..=newest)
            .map(|index| {
                let slot = &ring[(index % MINUTES as u64) as usize];
                let minute = if slot.index == index {
                    *slot
                } else {
                    Minute::EMPTY
                };
                MinuteView {
                    start: rfc3339(UNIX_EPOCH + Duration::from_secs(index * 60)),
                    requests: minute.requests,
                    errors: minute.errors,
                    latency_p50_ms: minute.percentile(0.5),
                    latency_p95_ms: minute.percentile(0.95),
                    tokens: minute.tokens,
                    cost_usd: minute.cost_usd,
                }
            })
            .collect()
    }
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

/// The bucket a latency falls in.
fn bucket(latency: Duration) -> usize {
    let ms = latency.as_secs_f64() * 1000.0;
    if ms <= FIRST_BOUND_MS {
        return 0;
    }
    let i = ((ms / FIRST_BOUND_MS).ln() / GROWTH.ln()).ceil();
    (i as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `i`, in ms (rounded to 3 significant digits for display).
fn bound_ms(i: usize) -> f64 {
    let bound = FIRST_BOUND_MS * GROWTH.powi(i as i32);
    let scale = 10f64.powi(2 - bound.log10().floor() as i32);
    (bound * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_765_000_020 + secs)
    }

    #[test]
    fn minutes_sum_their_requests_and_estimate_percentiles() {
        let m = Minutes::default();
        // 100 requests in one minute: 1..=100 ms, every tenth failed.
        for i in 1..=100u64 {
            let latency = Duration::from_millis(i);
            m.add(at(i % 30), latency, i % 10 == 0, 10, 0.001);
        }
        m.add(at(60), Duration::from_millis(5), false, 1, 0.5);
        let hour = m.last_hour(at(60));
        assert_eq!(hour.len(), 60);
        let (before, last) = (&hour[58], &hour[59]);
        assert_eq!(
            (before.requests, before.errors, before.tokens),
            (100, 10, 1000)
        );
        assert!((before.cost_usd - 0.1).abs() < 1e-9);
        // Within a bucket (25%) of the true 50 and 95 ms.
        let p50 = before.latency_p50_ms.unwrap();
        let p95 = before.latency_p95_ms.unwrap();
        assert!((50.0..=62.5).contains(&p50), "{p50}");
        assert!((95.0..=118.75).contains(&p95), "{p95}");
        assert_eq!(last.requests, 1);
        assert!(last.start.ends_with(":00.000000Z"), "{}", last.start);
        // Empty minutes show zeros and no latency.
        assert_eq!((hour[0].requests, hour[0].latency_p50_ms), (0, None));
        // An hour later the ring slot is reused, not added to.
        m.add(at(60 + 3600), Duration::from_millis(1), false, 0, 0.0);
        let later = m.last_hour(at(60 + 3600));
        assert_eq!(later[59].requests, 1);
        assert_eq!(later.iter().map(|v| v.requests).sum::<u64>(), 1);
    }

    /// A realtime session (101) is no error; an answer broken off after its 200 head is.
    #[test]
    fn errors_are_the_records_failures() {
        let m = Minutes::default();
        let trace = |status: u16, error: Option<&str>| {
            let mut r = crate::telemetry::record::RequestRecord::new();
            r.status = status;
            r.error = error.map(Into::into);
            Trace::finish("r".into(), r)
        };
        for (status, error) in [
            (101, None),
            (200, None),
            (200, Some("cut")),
            (0, None),
            (429, None),
        ] {
            m.observe(&trace(status, error));
        }
        let hour = m.last_hour(SystemTime::now());
        let sum = |f: fn(&MinuteView) -> u64| hour.iter().map(f).sum::<u64>();
        assert_eq!((sum(|v| v.requests), sum(|v| v.errors)), (5, 3));
    }

    #[test]
    fn latency_buckets_cover_microseconds_to_an_hour() {
        assert_eq!(bucket(Duration::ZERO), 0);
        assert_eq!(bucket(Duration::from_secs(24 * 3600)), BUCKETS - 1);
        for ms in [0.3, 1.0, 7.0, 250.0, 9000.0, 600_000.0, 3_600_000.0] {
            let i = bucket(Duration::from_secs_f64(ms / 1000.0));
            assert!(
                bound_ms(i) >= ms * 0.999 && bound_ms(i) <= ms * 1.26,
                "{ms}"
            );
        }
    }
}
