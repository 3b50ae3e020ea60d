//! Each customer's Respan budget, from `customer_params`: `period_budget` (USD) over
//! `budget_duration` (`daily`, `weekly`, `monthly`, `yearly`), `total_budget` (USD, for the
//! customer's lifetime) and `rate_limit` (requests per minute). As on Respan, the latest
//! values a request sent for a customer apply to that customer's later requests too.
//!
//! Each becomes a rule of its own, counted per customer like any other (in the configured
//! backend), under a fixed name so metric labels stay few.

use crate::config::limits::{Match, Rule, Scope, Window};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The rule names of customer budgets.
pub const PERIOD: &str = "customer_period_budget";
pub const TOTAL: &str = "customer_total_budget";
pub const RATE: &str = "customer_rate_limit";

/// The budget rules of every customer that has sent some.
#[derive(Default)]
pub struct CustomerBudgets {
    rules: Mutex<HashMap<String, Vec<Rule>>>,
    /// Some customer has sent a budget: read on every model call without taking the lock.
    any: AtomicBool,
}

impl CustomerBudgets {
    /// The rules of `customer`: from `params` when they set a budget (kept for later
    /// requests), else those it sent last.
    pub fn rules_for(&self, customer: &str, params: Option<&Map<String, Value>>) -> Vec<Rule> {
        let mut all = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(params) = params {
            let rules = rules_of(params);
            if !rules.is_empty() {
                all.insert(customer.to_string(), rules.clone());
                self.any.store(true, Ordering::Relaxed);
                return rules;
            }
        }
        all.get(customer).cloned().unwrap_or_default()
    }

    /// Whether any customer has sent a budget.
    pub fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// One of each budget rule some customer has (for `/api/limits`).
    pub fn kinds(&self) -> Vec<Rule> {
        let all = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Rule> = Vec::new();
        for rule in all.values().flatten() {
            if !out
                .iter()
                .any(|r| r.name == rule.name && r.window == rule.window)
            {
                out.push(rule.clone());
            }
        }
        out
    }
}

/// The budget rules `customer_params` sets.
fn rules_of(params: &Map<String, Value>) -> Vec<Rule> {
    let number = |name: &str| {
        params
            .get(name)
            .and_then(Value::as_f64)
            .filter(|v| *v > 0.0)
    };
    let rule = |name: &str, window: Window| Rule {
        name: name.to_string(),
        per: Scope::Customer,
        filter: Match::default(),
        window,
        requests: None,
        tokens: None,
        cost_usd: None,
        alert_at: 0.8,
        block: true,
    };
    let mut out = Vec::new();
    if let Some(budget) = number("period_budget") {
        let window = match params.get("budget_duration").and_then(Value::as_str) {
            Some("daily") => Window::Day,
            Some("weekly") => Window::Week,
            Some("yearly") => Window::Year,
            _ => Window::Month,
        };
        out.push(Rule {
            cost_usd: Some(budget),
            ..rule(PERIOD, window)
        });
    }
    if let Some(total) = number("total_budget") {
        out.push(Rule {
            cost_usd: Some(total),
            ..rule(TOTAL, Window::Lifetime)
        });
    }
    if let Some(rate) = number("rate_limit") {
        out.push(Rule {
            requests: Some(rate.ceil() as u64),
            ..rule(RATE, Window::Minute)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_latest_budget_a_customer_sent_applies() {
        let b = CustomerBudgets::default();
        assert!(b.rules_for("c", None).is_empty());
        let sent = map(
            json!({"period_budget": 5, "budget_duration": "weekly", "total_budget": 100, "rate_limit": 10}),
        );
        let rules = b.rules_for("c", Some(&sent));
        assert_eq!(rules.len(), 3);
        assert_eq!(
            (rules[0].window, rules[0].cost_usd),
            (Window::Week, Some(5.0))
        );
        assert_eq!(
            (rules[1].window, rules[1].cost_usd),
            (Window::Lifetime, Some(100.0))
        );
        assert_eq!(
            (rules[2].window, rules[2].requests),
            (Window::Minute, Some(10))
        );
        // Later requests without budget fields keep them; new values replace them.
        assert_eq!(b.rules_for("c", Some(&map(json!({"name": "x"})))).len(), 3);
        let lower = b.rules_for("c", Some(&map(json!({"rate_limit": 2}))));
        assert_eq!(lower.len(), 1);
        assert_eq!(b.rules_for("c", None)[0].requests, Some(2));
        assert!(b.rules_for("other", None).is_empty());
        assert_eq!(b.kinds().len(), 1);
    }
}
