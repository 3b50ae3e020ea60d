//! Limits and budgets: the `limits:` rules, checked once per request before its first
//! attempt, and settled when its answer ends.
//!
//! Admission counts the request and reserves what it may use (its input tokens estimated
//! from the body, its output limit, priced by the catalog); settlement replaces the
//! reservation with the real usage and cost from the request's record. So concurrent requests
//! cannot overshoot a limit together, and a failed or cached answer costs what it really
//! cost. Counts are kept per rule name, window and scope value, in this process (`memory`):
//! a reload keeps the counts of every rule whose name and window are unchanged.

pub(crate) mod alerts;
pub(crate) mod customers;
pub mod redis;
pub(crate) mod window;

use crate::config::limits::{LimitsConfig, Match, Rule, Scope, Window};
use crate::drain::Drain;
use crate::routing::glob_match;
use crate::telemetry::logging::LogLimit;
use crate::telemetry::metrics::metrics;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Counters kept before the first sweep of those that hold nothing.
const MIN_SWEEP: usize = 4096;

/// What a request is, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The name of the `auth.keys` entry it came with.
    pub key: Option<&'a str>,
    pub customer: Option<&'a str>,
    pub model: &'a str,
    pub metadata: &'a [(String, String)],
}

/// What a request may use, reserved at admission.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ask {
    pub tokens: u64,
    pub cost_usd: f64,
}

/// Amounts counted against a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Amounts {
    pub requests: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

impl Amounts {
    fn add(&mut self, other: Amounts) {
        self.requests += other.requests;
        self.tokens += other.tokens;
        self.cost_usd += other.cost_usd;
    }

    fn sub(&mut self, other: Amounts) {
        self.requests = self.requests.saturating_sub(other.requests);
        self.tokens = self.tokens.saturating_sub(other.tokens);
        self.cost_usd = (self.cost_usd - other.cost_usd).max(0.0);
    }
}

/// Which limit a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
    Cost,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
            Kind::Cost => "cost_usd",
        }
    }
}

/// A request past a `block` rule's limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub rule: String,
    pub kind: Kind,
    pub limit: f64,
    pub window: Window,
    /// When the window frees room (none for `lifetime`).
    pub frees_at: Option<SystemTime>,
}

impl Refusal {
    /// How long until the window frees room (none for `lifetime`).
    pub fn wait(&self) -> Option<Duration> {
        self.frees_at?.duration_since(SystemTime::now()).ok()
    }
}

/// OpenAI's `x-ratelimit-*` figures for the tightest requests and tokens rules.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateHeaders {
    pub requests: Option<Tight>,
    pub tokens: Option<Tight>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tight {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window frees room.
    pub reset: Duration,
}

/// Why a request is not admitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocked {
    Limit(Refusal),
    /// The shared backend cannot be asked, and `on_backend_error: deny`.
    Unavailable,
}

/// An admitted request's reservations, settled when its answer ends.
#[derive(Debug, Default)]
pub struct Ticket {
    held: Vec<(CounterKey, i64)>,
    /// Its reservations in the shared backend, and what they reserved.
    fleet: Vec<redis::Held>,
    ask: Ask,
    pub headers: RateHeaders,
    /// The alert thresholds this request crossed first (in their rule, scope and window).
    pub alerts: Vec<alerts::Alert>,
    /// The rules the request was checked against.
    pub checked: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CounterKey {
    rule: String,
    window: Window,
    scope: String,
}

/// One rule's count for one scope value.
#[derive(Debug, Default)]
struct Counter {
    /// Used amounts per bucket (sliding) or period (calendar): the newest last.
    buckets: Vec<(i64, Amounts)>,
    reserved: Amounts,
}

impl Counter {
    /// Drops what has left the window at bucket `now`.
    fn expire(&mut self, window: Window, now: i64) {
        let oldest = window::oldest_counted(window, now);
        self.buckets.retain(|(b, _)| *b >= oldest);
    }

    fn used(&self) -> Amounts {
        let mut total = Amounts::default();
        for (_, a) in &self.buckets {
            total.add(*a);
        }
        total
    }

    fn add_used(&mut self, bucket: i64, amounts: Amounts) {
        match self.buckets.iter_mut().find(|(b, _)| *b == bucket) {
            Some((_, a)) => a.add(amounts),
            None => {
                self.buckets.push((bucket, amounts));
                self.buckets.sort_by_key(|(b, _)| *b);
            }
        }
    }
}

/// What an admitted request found of one rule: what the window holds with it, when it
/// frees room, and whether this request raises the rule's alert (the first to cross its
/// threshold in the period: in this process, or in the whole fleet with Redis).
struct Seen {
    taken: Amounts,
    frees_at: Option<SystemTime>,
    first_alert: bool,
}

/// One rule's alerts: per scope value, the window and period it last raised one in.
type Raised = HashMap<String, (Window, i64)>;

/// The counts of every rule: in this process, or in Redis for a whole fleet.
#[derive(Default)]
pub struct Limits {
    counters: Mutex<HashMap<CounterKey, Counter>>,
    /// The window and period in which each rule, per scope value, last raised an alert
    /// (nested, so that a lookup borrows the names and only a new entry copies them).
    alerted: Mutex<HashMap<String, Raised>>,
    /// How many alerts there may be before the next drop of past windows' ones.
    alerts_kept: AtomicUsize,
    /// `backend: redis` (bound at start).
    fleet: Option<redis::Fleet>,
    /// Customers' Respan budgets (`customer_params`), as last sent.
    customers: customers::CustomerBudgets,
    /// Alerts waiting for `alert_webhook`.
    outbox: alerts::Outbox,
    /// How many counters there may be before the next sweep of those that hold nothing.
    sweep_at: AtomicUsize,
    log: Option<LogLimit>,
}

impl Limits {
    /// The backend `config` names.
    pub fn new(config: &LimitsConfig) -> Result<Limits, String> {
        let fleet = config
            .redis_url
            .as_deref()
            .map(redis::Fleet::new)
            .transpose()?;
        Ok(Limits {
            fleet,
            log: Some(LogLimit::once_a_minute()),
            ..Limits::default()
        })
    }

    /// Checks a request against the rules it matches, in the configured backend.
    /// `customer_params`: the request's own, whose budget fields (if any) become its
    /// customer's budget from now on.
    pub async fn check(
        &self,
        config: &LimitsConfig,
        facts: Facts<'_>,
        customer_params: Option<&serde_json::Map<String, serde_json::Value>>,
        ask: Ask,
        now: SystemTime,
    ) -> Result<Ticket, Blocked> {
        let budgets = facts
            .customer
            .and_then(|c| self.customers.rules_for(c, customer_params));
        // The configured rules, then the customer's budgets: borrowed, never copied.
        let matched = matched_rules(
            config
                .rules
                .iter()
                .chain(budgets.iter().flat_map(|b| b.iter())),
            facts,
        );
        let Some(fleet) = &self.fleet else {
            let ticket = self
                .admit_matched(&matched, ask, now)
                .map_err(Blocked::Limit)?;
            self.send_alerts(config, &ticket);
            return Ok(ticket);
        };
        if matched.is_empty() {
            return Ok(Ticket::default());
        }
        match fleet.admit(&matched, ask, now).await {
            Ok(redis::Decision::Admitted(used, held)) => {
                let mut ticket = Ticket {
                    fleet: held,
                    ask,
                    ..Ticket::default()
                };
                for ((rule, scope), used) in matched.iter().zip(used) {
                    count(&rule.name, "allowed");
                    ticket.checked.push(rule.name.clone());
                    let taken = Amounts {
                        requests: used.requests,
                        tokens: used.tokens,
                        cost_usd: used.cost_usd,
                    };
                    let frees_at = window::frees_at(rule.window, used.first, now);
                    let seen = Seen {
                        taken,
                        frees_at,
                        first_alert: used.alert,
                    };
                    self.note(&mut ticket, rule, scope, seen, now);
                }
                self.send_alerts(config, &ticket);
                Ok(ticket)
            }
            Ok(redis::Decision::Refused(i, kind, first)) => {
                let (rule, _) = matched.get(i).ok_or(Blocked::Unavailable)?;
                count(&rule.name, "blocked");
                Err(Blocked::Limit(Refusal {
                    rule: rule.name.clone(),
                    kind,
                    limit: limit_of(rule, kind).unwrap_or(0.0),
                    window: rule.window,
                    frees_at: window::frees_at(rule.window, first, now),
                }))
            }
            Err(why) => {
                if let Some(quiet) = self.log.as_ref().and_then(LogLimit::permit) {
                    tracing::warn!(
                        quiet,
                        deny = config.deny_on_backend_error,
                        "limits: Redis cannot be asked: {why}"
                    );
                }
                if config.deny_on_backend_error {
                    Err(Blocked::Unavailable)
                } else {
                    Ok(Ticket::default())
                }
            }
        }
    }

    /// The service that posts alerts to `alert_webhook` (once).
    pub fn alert_service(&self) -> Option<alerts::AlertService> {
        self.outbox.service()
    }

    /// Offers the ticket's alerts to `alert_webhook`, when one is set.
    fn send_alerts(&self, config: &LimitsConfig, ticket: &Ticket) {
        if let Some(url) = &config.alert_webhook {
            for alert in &ticket.alerts {
                self.outbox.offer(url, alert.clone());
            }
        }
    }

    /// Whether some customer has sent a budget (so requests without rules still check it).
    pub fn has_budgets(&self) -> bool {
        self.customers.any()
    }

    /// Settles a request's reservations with what it really used, in its backend (Redis:
    /// queued, so the request does not wait for the round trip).
    pub async fn finish(&self, ticket: &mut Ticket, tokens: u64, cost_usd: f64) {
        if let (Some(fleet), false) = (&self.fleet, ticket.fleet.is_empty()) {
            let settlement = redis::Settlement {
                held: std::mem::take(&mut ticket.fleet),
                ask: ticket.ask,
                tokens,
                cost_usd,
            };
            fleet.settle_later(settlement).await;
            return;
        }
        self.settle(ticket, tokens, cost_usd);
    }

    /// The service that settles in Redis what requests queued (`backend: redis` only).
    pub fn settle_service(self: &Arc<Self>, drain: Drain) -> Option<redis::SettleService> {
        self.fleet.as_ref()?.settle_service(self.clone(), drain)
    }

    /// Checks a request against every rule it matches; counts and reserves it if no `block`
    /// rule is past a limit.
    pub fn admit(
        &self,
        rules: &[Rule],
        facts: Facts<'_>,
        ask: Ask,
        now: SystemTime,
    ) -> Result<Ticket, Refusal> {
        self.admit_matched(&matched_rules(rules, facts), ask, now)
    }

    /// [`Limits::admit`] of the rules a request matched, each with its scope value.
    fn admit_matched(
        &self,
        matched: &[(&Rule, String)],
        ask: Ask,
        now: SystemTime,
    ) -> Result<Ticket, Refusal> {
        let mut ticket = Ticket::default();
        if matched.is_empty() {
            return Ok(ticket);
        }
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if counters.len() >= self.sweep_at.load(Ordering::Relaxed).max(MIN_SWEEP) {
            self.sweep(&mut counters, now);
        }
        // Check every rule first: a refused request counts and reserves nothing anywhere.
        let mut keys = Vec::with_capacity(matched.len());
        for (rule, scope) in matched {
            let key = counter_key(rule, scope);
            let bucket = window::bucket(rule.window, now);
            if !counters.contains_key(&key) {
                counters.insert(key.clone(), Counter::default());
            }
            let Some(counter) = counters.get_mut(&key) else {
                continue;
            };
            counter.expire(rule.window, bucket);
            let mut would_be = counter.used();
            would_be.add(counter.reserved);
            would_be.add(Amounts {
                requests: 1,
                tokens: ask.tokens,
                cost_usd: ask.cost_usd,
            });
            let oldest = counter.buckets.first().map_or(bucket, |(b, _)| *b);
            if let (true, Some((kind, limit))) = (rule.block, over_limit(rule, would_be)) {
                count(&rule.name, "blocked");
                return Err(Refusal {
                    rule: rule.name.clone(),
                    kind,
                    limit,
                    window: rule.window,
                    frees_at: window::frees_at(rule.window, oldest, now),
                });
            }
            keys.push((key, bucket, would_be, oldest));
        }
        // Admitted: what each window holds with this request is what was checked.
        for ((rule, scope), (key, bucket, taken, oldest)) in matched.iter().zip(keys) {
            let Some(counter) = counters.get_mut(&key) else {
                continue;
            };
            counter.add_used(
                bucket,
                Amounts {
                    requests: 1,
                    ..Amounts::default()
                },
            );
            counter.reserved.add(Amounts {
                requests: 0,
                tokens: ask.tokens,
                cost_usd: ask.cost_usd,
            });
            count(&rule.name, "allowed");
            ticket.checked.push(rule.name.clone());
            let frees_at = window::frees_at(rule.window, oldest, now);
            let first_alert = crossed(rule, taken).is_some() && self.first_alert(rule, scope, now);
            let seen = Seen {
                taken,
                frees_at,
                first_alert,
            };
            self.note(&mut ticket, rule, scope, seen, now);
            ticket.held.push((key, bucket));
        }
        ticket.ask = ask;
        Ok(ticket)
    }

    /// Replaces a request's reservations with what it really used.
    pub fn settle(&self, ticket: &mut Ticket, tokens: u64, cost_usd: f64) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let ask = ticket.ask;
        for (key, bucket) in ticket.held.drain(..) {
            let Some(counter) = counters.get_mut(&key) else {
                continue;
            };
            counter.reserved.sub(Amounts {
                requests: 0,
                tokens: ask.tokens,
                cost_usd: ask.cost_usd,
            });
            counter.add_used(
                bucket,
                Amounts {
                    requests: 0,
                    tokens,
                    cost_usd,
                },
            );
        }
    }

    /// Drops the counters whose window holds nothing any more (a customer or model seen
    /// once, an hour ago), so that many scope values do not
    /// grow memory without end. Runs when the count of counters has doubled since the last
    /// sweep: amortised, a constant cost per admission.
    fn sweep(&self, counters: &mut HashMap<CounterKey, Counter>, now: SystemTime) {
        counters.retain(|key, counter| {
            counter.expire(key.window, window::bucket(key.window, now));
            !counter.buckets.is_empty() || counter.reserved != Amounts::default()
        });
        self.sweep_at
            .store((counters.len() * 2).max(MIN_SWEEP), Ordering::Relaxed);
    }

    /// What an admitted request tells about one rule: the alert, if this request is the
    /// first in the window to cross the rule's alert threshold, and for a rule that can
    /// refuse, the `x-ratelimit-*` figures. `taken`: what the window holds with this request.
    fn note(&self, ticket: &mut Ticket, rule: &Rule, scope: &str, seen: Seen, now: SystemTime) {
        let Seen {
            taken,
            frees_at,
            first_alert,
        } = seen;
        if let (true, Some((kind, limit, used))) = (first_alert, crossed(rule, taken)) {
            ticket
                .alerts
                .push(raise(rule, scope, kind, limit, used, frees_at));
        }
        if rule.block {
            let reset = frees_at
                .and_then(|t| t.duration_since(now).ok())
                .unwrap_or_default();
            note_headers(&mut ticket.headers, rule, taken, reset);
        }
    }

    /// Whether this is the first alert of `rule` for `scope` in the window now. The
    /// alerts of past windows are dropped whenever their number has doubled, whichever
    /// backend counts (with Redis no counter sweep would ever reach them).
    fn first_alert(&self, rule: &Rule, scope: &str, now: SystemTime) -> bool {
        let now_raised = (rule.window, alert_period(rule.window, now));
        let mut alerted = self.alerted.lock().unwrap_or_else(|e| e.into_inner());
        let of_rule = match alerted.get_mut(rule.name.as_str()) {
            Some(of_rule) => of_rule,
            None => alerted.entry(rule.name.clone()).or_default(),
        };
        match of_rule.get_mut(scope) {
            Some(raised) if *raised == now_raised => return false,
            Some(raised) => *raised = now_raised,
            None => {
                of_rule.insert(scope.to_string(), now_raised);
            }
        }
        let kept: usize = alerted.values().map(Raised::len).sum();
        if kept >= self.alerts_kept.load(Ordering::Relaxed).max(MIN_SWEEP) {
            for of_rule in alerted.values_mut() {
                of_rule.retain(|_, (window, period)| *period == alert_period(*window, now));
            }
            alerted.retain(|_, of_rule| !of_rule.is_empty());
            let kept: usize = alerted.values().map(Raised::len).sum();
            self.alerts_kept.store(kept * 2, Ordering::Relaxed);
        }
        true
    }

    /// Every counter, as `/api/limits` shows it: the config's rules, and each customer's
    /// budgets against that customer's own limits.
    pub fn snapshot(&self, rules: &[Rule], now: SystemTime) -> Vec<LimitView> {
        let budgets = self.customers.all();
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for rule in rules {
            for (key, counter) in counters.iter_mut() {
                if key.rule == rule.name && key.window == rule.window {
                    out.push(view(rule, &key.scope, counter, now));
                }
            }
        }
        for (customer, rules) in &budgets {
            for rule in rules.iter() {
                if let Some(counter) = counters.get_mut(&counter_key(rule, customer)) {
                    out.push(view(rule, customer, counter, now));
                }
            }
        }
        out.sort_by(|a, b| (&a.rule, &a.scope).cmp(&(&b.rule, &b.scope)));
        out
    }
}

/// One counter as `/api/limits` shows it, against its rule's limits.
fn view(rule: &Rule, scope: &str, counter: &mut Counter, now: SystemTime) -> LimitView {
    let bucket = window::bucket(rule.window, now);
    counter.expire(rule.window, bucket);
    let oldest = counter.buckets.first().map_or(bucket, |(b, _)| *b);
    LimitView {
        rule: rule.name.clone(),
        window: rule.window.as_str(),
        scope: scope.to_string(),
        used: counter.used(),
        reserved: counter.reserved,
        limits: Amounts {
            requests: rule.requests.unwrap_or(0),
            tokens: rule.tokens.unwrap_or(0),
            cost_usd: rule.cost_usd.unwrap_or(0.0),
        },
        resets_at: window::frees_at(rule.window, oldest, now).map(crate::telemetry::trace::rfc3339),
    }
}

/// One rule and scope value in `/api/limits` (a limit of 0 is none).
#[derive(Debug, Serialize)]
pub struct LimitView {
    pub rule: String,
    pub window: &'static str,
    pub scope: String,
    pub used: Amounts,
    pub reserved: Amounts,
    pub limits: Amounts,
    pub resets_at: Option<String>,
}

/// The rules a request falls under, each with the scope value it is counted under.
fn matched_rules<'r>(
    rules: impl IntoIterator<Item = &'r Rule>,
    facts: Facts<'_>,
) -> Vec<(&'r Rule, String)> {
    rules
        .into_iter()
        .filter(|r| matches(&r.filter, facts))
        .filter_map(|r| Some((r, scope_value(&r.per, facts)?)))
        .collect()
}

/// A rule's limit on `kind`, if it has one.
fn limit_of(rule: &Rule, kind: Kind) -> Option<f64> {
    match kind {
        Kind::Requests => rule.requests.map(|l| l as f64),
        Kind::Tokens => rule.tokens.map(|l| l as f64),
        Kind::Cost => rule.cost_usd,
    }
}

/// Each of a rule's limits with the amount counted against it.
fn against(rule: &Rule, taken: Amounts) -> impl Iterator<Item = (Kind, f64, f64)> + '_ {
    [
        (Kind::Requests, taken.requests as f64),
        (Kind::Tokens, taken.tokens as f64),
        (Kind::Cost, taken.cost_usd),
    ]
    .into_iter()
    .filter_map(move |(kind, used)| Some((kind, limit_of(rule, kind)?, used)))
}

/// The first of a rule's limits that `would_be` goes past, with that limit.
fn over_limit(rule: &Rule, would_be: Amounts) -> Option<(Kind, f64)> {
    against(rule, would_be).find_map(|(kind, limit, used)| (used > limit).then_some((kind, limit)))
}

/// The first of a rule's limits whose alert threshold what it has counted crosses, with
/// that limit and the amount counted.
fn crossed(rule: &Rule, taken: Amounts) -> Option<(Kind, f64, f64)> {
    against(rule, taken).find(|(_, limit, used)| *used >= limit * rule.alert_at)
}

/// The period an alert is raised once in: a sliding window's 60 buckets, or the calendar
/// period.
pub(crate) fn alert_period(window: Window, now: SystemTime) -> i64 {
    let bucket = window::bucket(window, now);
    if window::slides(window) {
        bucket / window::SLIDING_BUCKETS
    } else {
        bucket
    }
}

/// An alert's warning and count, and the alert itself for the trace and the webhook.
fn raise(
    rule: &Rule,
    scope: &str,
    kind: Kind,
    limit: f64,
    used: f64,
    window_reset: Option<SystemTime>,
) -> alerts::Alert {
    tracing::warn!(rule = %rule.name, scope = %scope, kind = kind.as_str(), limit, used, "limit alert: the rule's alert threshold is crossed");
    count(&rule.name, "alert");
    alerts::Alert {
        rule: rule.name.clone(),
        scope: scope.to_string(),
        kind: kind.as_str(),
        limit,
        used,
        window_reset,
    }
}

/// Keeps a rule's figures for the `x-ratelimit-*` headers where it is the tightest yet (only
/// a rule that can refuse tells the app how much is left).
fn note_headers(headers: &mut RateHeaders, rule: &Rule, taken: Amounts, reset: Duration) {
    let tight = |limit: u64, used: u64| Tight {
        limit,
        remaining: limit.saturating_sub(used),
        reset,
    };
    if let Some(limit) = rule.requests {
        keep_tightest(&mut headers.requests, tight(limit, taken.requests));
    }
    if let Some(limit) = rule.tokens {
        keep_tightest(&mut headers.tokens, tight(limit, taken.tokens));
    }
}

fn keep_tightest(slot: &mut Option<Tight>, t: Tight) {
    if slot.is_none_or(|s| t.remaining < s.remaining) {
        *slot = Some(t);
    }
}

fn counter_key(rule: &Rule, scope: &str) -> CounterKey {
    CounterKey {
        rule: rule.name.clone(),
        window: rule.window,
        scope: scope.to_string(),
    }
}

fn matches(filter: &Match, facts: Facts<'_>) -> bool {
    filter.key.as_deref().is_none_or(|k| facts.key == Some(k))
        && filter
            .customer
            .as_deref()
            .is_none_or(|c| facts.customer == Some(c))
        && filter
            .model
            .as_deref()
            .is_none_or(|m| glob_match(m, facts.model))
}

/// The value a rule counts this request under; none when the request has no such value
/// (no key, no customer, no such metadata), and the rule does not apply.
fn scope_value(scope: &Scope, facts: Facts<'_>) -> Option<String> {
    match scope {
        Scope::Key => facts.key.map(str::to_string),
        Scope::Customer => facts.customer.map(str::to_string),
        Scope::Model => Some(facts.model.to_string()),
        Scope::Global => Some(String::new()),
        Scope::Metadata(k) => facts
            .metadata
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone()),
    }
}

fn count(rule: &str, result: &str) {
    metrics().limit_decision(rule, result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::limits::{limits, RawLimits};

    fn rules(yaml: &str) -> Vec<Rule> {
        let raw: RawLimits = serde_yaml::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let config = limits(raw, None, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        config.rules
    }

    fn facts<'a>(customer: &'a str) -> Facts<'a> {
        Facts {
            key: Some("team-a"),
            customer: Some(customer),
            model: "gpt-4o",
            metadata: &[],
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000 + secs)
    }

    #[test]
    fn counters_that_hold_nothing_are_swept() {
        let l = Limits::default();
        let r = rules("rules:\n  - {name: per-customer, per: customer, window: minute, requests: 5, alert_at: 0.1}\n  - {name: all, per: global, window: lifetime, requests: 1000000}\n");
        let ask = Ask::default();
        // Many customers once each: a counter (and an alert) each.
        for i in 1..MIN_SWEEP {
            let mut t = l.admit(&r, facts(&format!("c{i}")), ask, at(0)).unwrap();
            l.settle(&mut t, 0, 0.0);
        }
        assert_eq!(l.counters.lock().unwrap().len(), MIN_SWEEP);
        // Two minutes later their window is empty: the next admission sweeps them, and
        // their alerts; the lifetime count and the new customer's stay.
        let _held = l.admit(&r, facts("late"), ask, at(120)).unwrap();
        let counters = l.counters.lock().unwrap();
        let mut left: Vec<&str> = counters.keys().map(|k| k.scope.as_str()).collect();
        left.sort_unstable();
        assert!(left == ["", "late"], "{} counters left", left.len());
        assert_eq!(l.alerted.lock().unwrap().len(), 1);
        assert_eq!(l.sweep_at.load(Ordering::Relaxed), MIN_SWEEP);
    }

    #[test]
    fn requests_are_counted_per_scope_and_refused_past_the_limit() {
        let r = rules("rules:\n  - {name: r, per: customer, window: minute, requests: 2}\n");
        let l = Limits::default();
        let ask = Ask::default();
        assert!(l.admit(&r, facts("a"), ask, at(0)).is_ok());
        assert!(l.admit(&r, facts("a"), ask, at(1)).is_ok());
        let refused = l.admit(&r, facts("a"), ask, at(2)).unwrap_err();
        assert_eq!((refused.rule.as_str(), refused.kind), ("r", Kind::Requests));
        // Another customer has its own count; the window slides.
        assert!(l.admit(&r, facts("b"), ask, at(2)).is_ok());
        assert!(l.admit(&r, facts("a"), ask, at(60)).is_ok());
    }

    #[test]
    fn reservations_hold_concurrent_requests_and_settle_to_what_was_used() {
        let r = rules("rules:\n  - {name: b, per: global, window: day, cost_usd: 1.0}\n");
        let l = Limits::default();
        let ask = Ask {
            tokens: 100,
            cost_usd: 0.4,
        };
        let mut one = l.admit(&r, facts("a"), ask, at(0)).unwrap();
        let mut two = l.admit(&r, facts("a"), ask, at(0)).unwrap();
        // Two in flight reserve 0.8: a third would overshoot together.
        assert_eq!(
            l.admit(&r, facts("a"), ask, at(0)).unwrap_err().kind,
            Kind::Cost
        );
        // They cost less than reserved: room again.
        l.settle(&mut one, 10, 0.1);
        l.settle(&mut two, 10, 0.1);
        let mut three = l.admit(&r, facts("a"), ask, at(0)).unwrap();
        l.settle(&mut three, 10, 0.1);
        let view = &l.snapshot(&r, at(0))[0];
        assert!((view.used.cost_usd - 0.3).abs() < 1e-9);
        assert_eq!(view.reserved, Amounts::default());
        assert_eq!(view.used.requests, 3);
    }

    #[test]
    fn an_alert_is_not_lost_to_a_request_another_rule_refuses() {
        let r = rules("rules:\n  - {name: a, per: global, window: day, requests: 10, alert_at: 0.2}\n  - {name: b, per: customer, window: day, requests: 1}\n");
        let l = Limits::default();
        let ask = Ask::default();
        let alerted = |t: Ticket| -> Vec<String> { t.alerts.into_iter().map(|a| a.rule).collect() };
        // b alerts at once (1 of 1); a not yet (1 of 10).
        assert_eq!(alerted(l.admit(&r, facts("x"), ask, at(0)).unwrap()), ["b"]);
        // Would cross a's 20%, but b refuses it: it counts nothing, and alerts nothing.
        assert!(l.admit(&r, facts("x"), ask, at(1)).is_err());
        // The request that does cross it raises the alert.
        assert_eq!(
            alerted(l.admit(&r, facts("y"), ask, at(2)).unwrap()),
            ["a", "b"]
        );
    }

    #[test]
    fn filters_alerts_and_headers() {
        let r = rules(
            "rules:\n  - {name: gpt, per: key, match: {model: \"gpt-*\"}, window: hour, requests: 10, tokens: 1000, alert_at: 0.2}\n  - {name: claude, per: key, match: {model: \"claude-*\"}, window: hour, requests: 1}\n  - {name: watch, per: global, window: day, requests: 1, action: alert}\n",
        );
        let l = Limits::default();
        let ask = Ask {
            tokens: 100,
            cost_usd: 0.0,
        };
        let ticket = l.admit(&r, facts("a"), ask, at(0)).unwrap();
        assert_eq!(ticket.checked, ["gpt", "watch"]);
        let requests = ticket.headers.requests.unwrap();
        // The tightest requests rule that can refuse (`watch` only alerts).
        assert_eq!((requests.limit, requests.remaining), (10, 9));
        let tokens = ticket.headers.tokens.unwrap();
        assert_eq!((tokens.limit, tokens.remaining), (1000, 900));
        // `watch` is over but only alerts; the second request crosses gpt's 20%.
        let ticket = l.admit(&r, facts("a"), ask, at(1)).unwrap();
        let gpt = ticket.alerts.iter().find(|a| a.rule == "gpt");
        let gpt = gpt.unwrap_or_else(|| panic!("{:?}", ticket.alerts));
        // 2 requests of 10, the first limit listed, reach 20%.
        assert_eq!((gpt.kind, gpt.limit, gpt.used), ("requests", 10.0, 2.0));
        assert_eq!(gpt.scope, "team-a");
        assert!(gpt.window_reset.is_some());
    }
}
