//! Provider health: a circuit per provider and upstream model, so a failing deployment is
//! skipped at once instead of being asked (and waited on) by every request.
//!
//! `consecutive_failures` failed attempts in a row (connect error, timeout, 429, 5xx, a stream
//! that broke before its content) open a circuit for `cooldown`, or for the upstream's
//! `Retry-After` when it gave one (at most [`MAX_OPEN`]). While open, attempts are skipped
//! without a network call, so the request moves on to its load-balance group's other members
//! and its fallbacks. When the cooldown is over one request goes through (half-open): its
//! success closes the circuit, its failure opens it again. An answer that is the app's fault
//! (another 4xx) says the provider is up.
//!
//! Circuits exist only once something failed (a healthy fleet of models keeps no state), and
//! live for the process: a reload keeps them. Failures count in a row only within
//! [`STALE_FAILURES`] of the last: a closed circuit whose failures are older forgets them,
//! so a model that failed once and was never asked again does not keep every attempt of
//! every provider on the locked path.

use crate::config::HealthConfig;
use crate::telemetry::metrics::metrics;
use crate::telemetry::record::Outcome;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The longest a circuit stays open on an upstream's `Retry-After`.
pub const MAX_OPEN: Duration = Duration::from_secs(300);
/// A closed circuit's failures older than this are forgotten.
pub const STALE_FAILURES: Duration = Duration::from_secs(300);
/// How often, at most, closed circuits are looked over for stale failures.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Whether an attempt may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go.
    Go,
    /// The one attempt after a cooldown: its outcome decides the circuit.
    Probe,
    /// Open (or half-open with its probe under way): skip, until then.
    Skip { until: Instant },
}

/// How an attempt went, for its circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The provider answered (successfully, or with the app's own error).
    Up,
    /// It failed: why, and how long it asked to be left alone.
    Down {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Nothing learned (the app went away).
    Unknown,
}

impl Report {
    /// From how an attempt ended: a 4xx other than 429 is the request's fault, not the
    /// provider's.
    pub fn of_outcome(
        outcome: Outcome,
        why: Option<&str>,
        retry_after: Option<Duration>,
    ) -> Report {
        match outcome {
            Outcome::Ok | Outcome::Http4xx => Report::Up,
            Outcome::ClientGone | Outcome::Skipped => Report::Unknown,
            Outcome::Http429
            | Outcome::Http5xx
            | Outcome::ConnectError
            | Outcome::Timeout
            | Outcome::Broken
            | Outcome::StreamError => Report::Down {
                why: why.unwrap_or(outcome.as_str()).chars().take(200).collect(),
                retry_after,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_since: Instant },
}

#[derive(Debug)]
struct Circuit {
    state: State,
    failures: u32,
    /// When the last failure was counted.
    failed_at: Option<Instant>,
    last_failure: Option<(SystemTime, String)>,
    /// When the state last changed, as wall time (for `/api/health`).
    open_until_wall: Option<SystemTime>,
}

/// Every circuit of the process: provider name -> upstream model -> circuit.
#[derive(Default)]
pub struct Circuits {
    map: Mutex<Map>,
    /// Circuits with a failure counted or not closed. While there is none, an attempt is
    /// admitted and a success reported without taking the lock: the usual case, on every
    /// attempt.
    unhealthy: AtomicUsize,
}

#[derive(Default)]
struct Map {
    by_provider: HashMap<String, HashMap<String, Circuit>>,
    /// When closed circuits were last looked over for stale failures.
    swept: Option<Instant>,
}

/// Circuits kept at most: the upstream model can come from a request (`model_name_map`),
/// so a full map first forgets the circuits that hold nothing but history, and past that
/// tracks no new one.
const MAX_CIRCUITS: usize = 1024;

impl Circuit {
    fn healthy(&self) -> bool {
        self.state == State::Closed && self.failures == 0
    }

    /// Closed, with failures older than [`STALE_FAILURES`].
    fn stale(&self, now: Instant) -> bool {
        self.state == State::Closed
            && self.failures > 0
            && self.failed_at.is_some_and(|t| now >= t + STALE_FAILURES)
    }
}

impl Circuits {
    /// Whether an attempt of `model` on `provider` may be made now.
    pub fn admit(&self, provider: &str, model: &str, config: &HealthConfig) -> Admission {
        self.admit_at(provider, model, config, Instant::now())
    }

    fn admit_at(
        &self,
        provider: &str,
        model: &str,
        config: &HealthConfig,
        now: Instant,
    ) -> Admission {
        if self.unhealthy.load(Ordering::Acquire) == 0 {
            return Admission::Go;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.swept.is_none_or(|t| now >= t + SWEEP_EVERY) {
            map.swept = Some(now);
            self.forget_stale(&mut map.by_provider, now);
        }
        let Some(circuit) = map
            .by_provider
            .get_mut(provider)
            .and_then(|m| m.get_mut(model))
        else {
            return Admission::Go;
        };
        match circuit.state {
            State::Closed => Admission::Go,
            State::Open { until } if now < until => Admission::Skip { until },
            State::Open { .. } => {
                circuit.state = State::HalfOpen { probe_since: now };
                gauge(provider, model, 1);
                Admission::Probe
            }
            // A probe that never told how it went (its app went away) gives way to another.
            State::HalfOpen { probe_since } if now >= probe_since + config.cooldown => {
                circuit.state = State::HalfOpen { probe_since: now };
                Admission::Probe
            }
            State::HalfOpen { probe_since } => Admission::Skip {
                until: probe_since + config.cooldown,
            },
        }
    }

    /// Tells an attempt's outcome to its circuit.
    pub fn report(&self, provider: &str, model: &str, report: Report, config: &HealthConfig) {
        self.report_at(provider, model, report, config, Instant::now());
    }

    fn report_at(
        &self,
        provider: &str,
        model: &str,
        report: Report,
        config: &HealthConfig,
        now: Instant,
    ) {
        let up = matches!(report, Report::Up);
        if matches!(report, Report::Unknown) || (up && self.unhealthy.load(Ordering::Acquire) == 0)
        {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match report {
            Report::Unknown => {}
            Report::Up => {
                let Some(circuit) = map
                    .by_provider
                    .get_mut(provider)
                    .and_then(|m| m.get_mut(model))
                else {
                    return;
                };
                if !circuit.healthy() {
                    self.unhealthy.fetch_sub(1, Ordering::AcqRel);
                }
                if circuit.state != State::Closed {
                    tracing::info!(
                        provider,
                        model,
                        "circuit closed: the provider answers again"
                    );
                    gauge(provider, model, 0);
                }
                circuit.state = State::Closed;
                circuit.failures = 0;
                circuit.open_until_wall = None;
            }
            Report::Down { why, retry_after } => {
                let map = &mut map.by_provider;
                let known = map.get(provider).is_some_and(|m| m.contains_key(model));
                if !known && !room_for_one(map) {
                    tracing::debug!(provider, model, "circuit not tracked: {MAX_CIRCUITS} are");
                    return;
                }
                let models = map.entry(provider.to_string()).or_default();
                let circuit = models.entry(model.to_string()).or_insert_with(|| Circuit {
                    state: State::Closed,
                    failures: 0,
                    failed_at: None,
                    last_failure: None,
                    open_until_wall: None,
                });
                if circuit.stale(now) {
                    circuit.failures = 0;
                    self.unhealthy.fetch_sub(1, Ordering::AcqRel);
                }
                if circuit.healthy() {
                    self.unhealthy.fetch_add(1, Ordering::AcqRel);
                }
                circuit.failures = circuit.failures.saturating_add(1);
                circuit.failed_at = Some(now);
                circuit.last_failure = Some((SystemTime::now(), why));
                let probe_failed = matches!(circuit.state, State::HalfOpen { .. });
                if probe_failed || circuit.failures >= config.consecutive_failures {
                    let open_for = retry_after.map_or(config.cooldown, |r| r.min(MAX_OPEN));
                    if !matches!(circuit.state, State::Open { .. }) {
                        tracing::warn!(
                            provider,
                            model,
                            failures = circuit.failures,
                            open_ms = open_for.as_millis() as u64,
                            "circuit opened: attempts are skipped until the cooldown ends"
                        );
                    }
                    circuit.state = State::Open {
                        until: now + open_for,
                    };
                    circuit.open_until_wall = Some(SystemTime::now() + open_for);
                    gauge(provider, model, 2);
                }
            }
        }
    }

    /// Forgets the failures of closed circuits that failed long ago.
    fn forget_stale(&self, map: &mut HashMap<String, HashMap<String, Circuit>>, now: Instant) {
        for circuit in map.values_mut().flat_map(HashMap::values_mut) {
            if circuit.stale(now) {
                circuit.failures = 0;
                self.unhealthy.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Every circuit, as `/api/health` shows it.
    pub fn snapshot(&self) -> Vec<CircuitView> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut out: Vec<CircuitView> = map
            .by_provider
            .iter()
            .flat_map(|(provider, models)| {
                models.iter().map(move |(model, c)| CircuitView {
                    provider: provider.clone(),
                    model: model.clone(),
                    state: match c.state {
                        State::Closed => "closed",
                        State::Open { until } if now < until => "open",
                        // Its cooldown is over: the next attempt is the probe.
                        State::Open { .. } | State::HalfOpen { .. } => "half_open",
                    },
                    consecutive_failures: c.failures,
                    open_until: match c.state {
                        State::Open { until } if now < until => {
                            c.open_until_wall.map(crate::telemetry::trace::rfc3339)
                        }
                        _ => None,
                    },
                    last_failure: c.last_failure.as_ref().map(|(at, why)| LastFailure {
                        at: crate::telemetry::trace::rfc3339(*at),
                        error: why.clone(),
                    }),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        out
    }
}

/// One circuit in `/api/health`.
#[derive(Debug, Serialize)]
pub struct CircuitView {
    pub provider: String,
    pub model: String,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<LastFailure>,
}

#[derive(Debug, Serialize)]
pub struct LastFailure {
    pub at: String,
    pub error: String,
}

/// Whether a new circuit fits: in a full map, after the healthy ones are forgotten.
fn room_for_one(map: &mut HashMap<String, HashMap<String, Circuit>>) -> bool {
    let count = |map: &HashMap<String, HashMap<String, Circuit>>| {
        map.values().map(HashMap::len).sum::<usize>()
    };
    if count(map) < MAX_CIRCUITS {
        return true;
    }
    for models in map.values_mut() {
        models.retain(|_, c| !c.healthy());
    }
    map.retain(|_, models| !models.is_empty());
    count(map) < MAX_CIRCUITS
}

fn gauge(provider: &str, model: &str, state: i64) {
    metrics().circuit_state(provider, model, state);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: HealthConfig = HealthConfig {
        consecutive_failures: 3,
        cooldown: Duration::from_secs(10),
    };

    fn down() -> Report {
        Report::Down {
            why: "503".into(),
            retry_after: None,
        }
    }

    #[test]
    fn failures_in_a_row_open_then_one_probe_decides() {
        let c = Circuits::default();
        let t0 = Instant::now();
        assert_eq!(c.admit_at("p", "m", &CONFIG, t0), Admission::Go);
        c.report_at("p", "m", down(), &CONFIG, t0);
        c.report_at("p", "m", down(), &CONFIG, t0);
        // A success in between starts the count again.
        c.report_at("p", "m", Report::Up, &CONFIG, t0);
        c.report_at("p", "m", down(), &CONFIG, t0);
        c.report_at("p", "m", down(), &CONFIG, t0);
        assert_eq!(c.admit_at("p", "m", &CONFIG, t0), Admission::Go);
        c.report_at("p", "m", down(), &CONFIG, t0);
        let until = t0 + CONFIG.cooldown;
        assert_eq!(c.admit_at("p", "m", &CONFIG, t0), Admission::Skip { until });
        // Another model of the provider is not affected.
        assert_eq!(c.admit_at("p", "other", &CONFIG, t0), Admission::Go);
        // After the cooldown: one probe, the others still skip.
        assert_eq!(c.admit_at("p", "m", &CONFIG, until), Admission::Probe);
        assert!(matches!(
            c.admit_at("p", "m", &CONFIG, until),
            Admission::Skip { .. }
        ));
        assert_eq!(c.snapshot()[0].state, "half_open");
        // The probe fails: open again at once.
        c.report_at("p", "m", down(), &CONFIG, until);
        assert!(matches!(
            c.admit_at("p", "m", &CONFIG, until),
            Admission::Skip { .. }
        ));
        let later = until + CONFIG.cooldown;
        assert_eq!(c.admit_at("p", "m", &CONFIG, later), Admission::Probe);
        c.report_at("p", "m", Report::Up, &CONFIG, later);
        assert_eq!(c.admit_at("p", "m", &CONFIG, later), Admission::Go);
        assert_eq!(c.snapshot()[0].state, "closed");
    }

    #[test]
    fn healthy_circuits_take_no_lock_and_are_forgotten_first() {
        let c = Circuits::default();
        let t0 = Instant::now();
        c.report_at("p", "m", down(), &CONFIG, t0);
        assert_eq!(c.unhealthy.load(Ordering::Acquire), 1);
        c.report_at("p", "m", Report::Up, &CONFIG, t0);
        // Back to the lock-free path; the circuit is still shown.
        assert_eq!(c.unhealthy.load(Ordering::Acquire), 0);
        assert_eq!(c.snapshot().len(), 1);
        // Many models that failed once and recovered: a full map forgets them first.
        for i in 0..MAX_CIRCUITS + 10 {
            let model = format!("m{i}");
            c.report_at("p", &model, down(), &CONFIG, t0);
            c.report_at("p", &model, Report::Up, &CONFIG, t0);
        }
        c.report_at("q", "failing", down(), &CONFIG, t0);
        assert!(c.snapshot().len() <= MAX_CIRCUITS);
        assert_eq!(c.unhealthy.load(Ordering::Acquire), 1);
        assert!(c.snapshot().iter().any(|v| v.provider == "q"));
        // A map full of failing circuits tracks no new one: never more than the bound.
        for i in 0..MAX_CIRCUITS + 10 {
            c.report_at("r", &format!("f{i}"), down(), &CONFIG, t0);
        }
        assert_eq!(c.snapshot().len(), MAX_CIRCUITS);
        assert_eq!(c.unhealthy.load(Ordering::Acquire), MAX_CIRCUITS);
    }

    /// A model that failed once and was never asked again forgets it, and the attempts of
    /// every provider go back to the lock-free path; failures far apart are not in a row.
    #[test]
    fn stale_failures_are_forgotten() {
        let c = Circuits::default();
        let t0 = Instant::now();
        c.report_at("p", "orphan", down(), &CONFIG, t0);
        assert_eq!(c.unhealthy.load(Ordering::Acquire), 1);
        assert_eq!(c.admit_at("p", "other", &CONFIG, t0), Admission::Go);
        assert_eq!(c.unhealthy.load(Ordering::Acquire), 1, "not stale yet");
        let later = t0 + STALE_FAILURES + SWEEP_EVERY;
        assert_eq!(c.admit_at("p", "other", &CONFIG, later), Admission::Go);
        assert_eq!(c.unhealthy.load(Ordering::Acquire), 0);
        // Three failures, each long after the last: never three in a row.
        for n in 0..3u32 {
            c.report_at(
                "p",
                "slow",
                down(),
                &CONFIG,
                later + STALE_FAILURES * (n + 1),
            );
        }
        let at = later + STALE_FAILURES * 3;
        assert_eq!(c.admit_at("p", "slow", &CONFIG, at), Admission::Go);
        assert_eq!(c.unhealthy.load(Ordering::Acquire), 1);
    }

    #[test]
    fn retry_after_sets_the_cooldown_capped_and_lost_probes_give_way() {
        let c = Circuits::default();
        let one = HealthConfig {
            consecutive_failures: 1,
            ..CONFIG
        };
        let t0 = Instant::now();
        let asked = |secs| Report::Down {
            why: "429".into(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        c.report_at("p", "m", asked(2), &one, t0);
        let until = t0 + Duration::from_secs(2);
        assert_eq!(c.admit_at("p", "m", &one, t0), Admission::Skip { until });
        c.report_at("p", "x", asked(3600), &one, t0);
        let capped = t0 + MAX_OPEN;
        assert_eq!(
            c.admit_at("p", "x", &one, t0),
            Admission::Skip { until: capped }
        );
        // A probe whose app went away: after a cooldown, another probe.
        assert_eq!(c.admit_at("p", "m", &one, until), Admission::Probe);
        c.report_at("p", "m", Report::Unknown, &one, until);
        let much_later = until + one.cooldown;
        assert_eq!(c.admit_at("p", "m", &one, much_later), Admission::Probe);
        assert_eq!(Report::of_outcome(Outcome::Http4xx, None, None), Report::Up);
        assert!(matches!(
            Report::of_outcome(Outcome::Timeout, None, None),
            Report::Down { .. }
        ));
    }
}
