//! Load-balance groups: the order in which a group's members are tried.
//!
//! `weighted`: members drawn by weight without replacement, so the first pick follows the
//! weights and the others follow as fallbacks. `least_latency`: the power of two choices over
//! a moving average of each member's recent latency (two members drawn at random, the faster
//! one first), which spreads load while steering it away from slow or failing members.

use crate::config::{BalanceStrategy, WeightedModel};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Weight of the newest sample in the moving average.
const ALPHA: f64 = 0.3;

/// Models tracked at most: request-given names must not grow memory without bound.
const MAX_TRACKED: usize = 1024;

/// What a failed attempt counts as, so failing members are avoided like slow ones.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(5);

/// Recent latency per model (seconds, exponentially weighted), shared by all requests.
#[derive(Debug, Default)]
pub struct LatencyTracker {
    ewma: Mutex<HashMap<String, f64>>,
}

impl LatencyTracker {
    pub fn record(&self, model: &str, latency: Duration) {
        let Ok(mut ewma) = self.ewma.lock() else {
            return;
        };
        let sample = latency.as_secs_f64();
        if let Some(avg) = ewma.get_mut(model) {
            *avg += ALPHA * (sample - *avg);
            return;
        }
        if ewma.len() < MAX_TRACKED {
            ewma.insert(model.to_string(), sample);
        }
    }

    /// The average, or `None` for a model not seen yet.
    pub fn get(&self, model: &str) -> Option<f64> {
        self.ewma.lock().ok()?.get(model).copied()
    }
}

/// The group's members in the order to try them.
pub fn order(
    members: &[WeightedModel],
    strategy: BalanceStrategy,
    latency: &LatencyTracker,
    rng: &mut impl Rng,
) -> Vec<String> {
    match strategy {
        BalanceStrategy::Weighted => weighted_order(members, rng),
        BalanceStrategy::LeastLatency => least_latency_order(members, latency, rng),
    }
}

fn weighted_order(members: &[WeightedModel], rng: &mut impl Rng) -> Vec<String> {
    let mut left: Vec<&WeightedModel> = members.iter().collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: f64 = left.iter().map(|m| m.weight).sum();
        let mut point = rng.gen::<f64>() * total;
        let mut pick = left.len() - 1;
        for (i, m) in left.iter().enumerate() {
            if point < m.weight {
                pick = i;
                break;
            }
            point -= m.weight;
        }
        out.push(left.remove(pick).model.clone());
    }
    out
}

fn least_latency_order(
    members: &[WeightedModel],
    latency: &LatencyTracker,
    rng: &mut impl Rng,
) -> Vec<String> {
    // A model never measured counts as fastest: it gets tried and measured.
    let score = |m: &WeightedModel| latency.get(&m.model).unwrap_or(0.0);
    let mut rest: Vec<&WeightedModel> = members.iter().collect();
    let first = match rest.len() {
        0 => return Vec::new(),
        1 => rest.remove(0),
        n => {
            let a = rng.gen_range(0..n);
            let b = (a + rng.gen_range(1..n)) % n;
            let pick = if score(rest[b]) < score(rest[a]) {
                b
            } else {
                a
            };
            rest.remove(pick)
        }
    };
    rest.sort_by(|x, y| score(x).total_cmp(&score(y)));
    std::iter::once(first)
        .chain(rest)
        .map(|m| m.model.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn members(spec: &[(&str, f64)]) -> Vec<WeightedModel> {
        spec.iter()
            .map(|(m, w)| WeightedModel {
                model: m.to_string(),
                weight: *w,
            })
            .collect()
    }

    #[test]
    fn weighted_first_picks_follow_the_weights() {
        let group = members(&[("a", 3.0), ("b", 1.0)]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let tracker = LatencyTracker::default();
        let n = 20_000;
        let firsts = (0..n)
            .filter(|_| order(&group, BalanceStrategy::Weighted, &tracker, &mut rng)[0] == "a")
            .count();
        let share = firsts as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "share of a: {share}");
        let all = order(&group, BalanceStrategy::Weighted, &tracker, &mut rng);
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn least_latency_prefers_the_faster_member() {
        let group = members(&[("slow", 1.0), ("fast", 1.0), ("mid", 1.0)]);
        let tracker = LatencyTracker::default();
        tracker.record("slow", Duration::from_secs(3));
        tracker.record("mid", Duration::from_millis(900));
        tracker.record("fast", Duration::from_millis(100));
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut firsts = HashMap::new();
        for _ in 0..3000 {
            let order = order(&group, BalanceStrategy::LeastLatency, &tracker, &mut rng);
            *firsts.entry(order[0].clone()).or_insert(0) += 1;
        }
        // Two of three drawn: the slowest can never win, the fastest wins whenever drawn.
        assert_eq!(firsts.get("slow"), None);
        assert!(firsts["fast"] > firsts["mid"], "{firsts:?}");
    }

    #[test]
    fn moving_average_and_bound() {
        let tracker = LatencyTracker::default();
        tracker.record("m", Duration::from_secs(1));
        tracker.record("m", Duration::from_secs(2));
        assert!((tracker.get("m").unwrap() - 1.3).abs() < 1e-9);
        for i in 0..MAX_TRACKED + 10 {
            tracker.record(&format!("x{i}"), Duration::from_millis(1));
        }
        assert_eq!(tracker.ewma.lock().unwrap().len(), MAX_TRACKED);
    }
}
