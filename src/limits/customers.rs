//! Each customer's Respan budget, from `customer_params`: `period_budget` (USD) over
//! `budget_duration` (`daily`, `weekly`, `monthly`, `yearly`), `total_budget` (USD, for the
//! customer's lifetime) and `rate_limit` (requests per minute). As on Respan, the latest
//! values a request sent for a customer apply to that customer's later requests too.
//!
//! Each becomes a rule of its own, counted per customer like any other (in the configured
//! backend), under a fixed name so metric labels stay few.

use crate::config::limits::{
    Match, Rule, Scope, Window, CUSTOMER_PERIOD_BUDGET, CUSTOMER_RATE_LIMIT, CUSTOMER_TOTAL_BUDGET,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The `customer_params` fields that set a budget.
const BUDGET_FIELDS: [&str; 3] = ["period_budget", "total_budget", "rate_limit"];

/// The budget rules of every customer that has sent some, shared with the requests that
/// are checked against them (never copied per request).
#[derive(Default)]
pub struct CustomerBudgets {
    rules: Mutex<HashMap<String, Arc<[Rule]>>>,
    /// Some customer has sent a budget: read on every model call without taking the lock.
    any: AtomicBool,
}

impl CustomerBudgets {
    /// The rules of `customer`: from `params` when they set a budget (kept for later
    /// requests), else those it sent last. Takes no lock while no customer has a budget.
    pub fn rules_for(
        &self,
        customer: &str,
        params: Option<&Map<String, Value>>,
    ) -> Option<Arc<[Rule]>> {
        let sent = params.map(rules_of).filter(|r| !r.is_empty());
        if sent.is_none() && !self.any() {
            return None;
        }
        let mut all = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sent) = sent else {
            return all.get(customer).cloned();
        };
        // The same budget sent again (SDKs send it with every request) changes nothing.
        if let Some(kept) = all.get(customer).filter(|kept| ***kept == *sent) {
            return Some(kept.clone());
        }
        let sent: Arc<[Rule]> = sent.into();
        all.insert(customer.to_string(), sent.clone());
        self.any.store(true, Ordering::Relaxed);
        Some(sent)
    }

    /// Whether any customer has sent a budget.
    pub fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// Every customer with a budget, and its rules (for `/api/limits`).
    pub fn all(&self) -> Vec<(String, Arc<[Rule]>)> {
        let all = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().map(|(c, r)| (c.clone(), r.clone())).collect()
    }
}

/// Whether `customer_params` set a budget (so the request is checked even with no rules).
pub fn sets_budget(params: &Map<String, Value>) -> bool {
    BUDGET_FIELDS.iter().any(|f| params.contains_key(*f))
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
            ..rule(CUSTOMER_PERIOD_BUDGET, window)
        });
    }
    if let Some(total) = number("total_budget") {
        out.push(Rule {
            cost_usd: Some(total),
            ..rule(CUSTOMER_TOTAL_BUDGET, Window::Lifetime)
        });
    }
    if let Some(rate) = number("rate_limit") {
        out.push(Rule {
            requests: Some(rate.ceil() as u64),
            ..rule(CUSTOMER_RATE_LIMIT, Window::Minute)
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
        assert!(b.rules_for("c", None).is_none());
        let sent = map(
            json!({"period_budget": 5, "budget_duration": "weekly", "total_budget": 100, "rate_limit": 10}),
        );
        let rules = b.rules_for("c", Some(&sent)).unwrap();
        assert_eq!(rules.len(), 3);
        // Sent again: the rules kept are handed out, not made anew.
        let again = b.rules_for("c", Some(&sent)).unwrap();
        assert!(Arc::ptr_eq(&rules, &again));
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
        let named = map(json!({"name": "x"}));
        assert!(!sets_budget(&named) && sets_budget(&sent));
        assert_eq!(b.rules_for("c", Some(&named)).unwrap().len(), 3);
        let lower = b
            .rules_for("c", Some(&map(json!({"rate_limit": 2}))))
            .unwrap();
        assert_eq!(lower.len(), 1);
        assert_eq!(b.rules_for("c", None).unwrap()[0].requests, Some(2));
        assert!(b.rules_for("other", None).is_none());
        assert_eq!(b.all().len(), 1);
    }
}
