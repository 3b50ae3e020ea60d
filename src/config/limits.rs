//! `limits:`: budgets and rate limits (see `crate::limits`), as written and as validated.
//!
//! A bad rule (unknown scope or window, a negative or zero limit, a duplicate name) is a
//! problem at its YAML path: `check` reports it and a reload is refused.

use super::Problem;
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub backend: Option<String>,
    pub redis_url: Option<String>,
    pub on_backend_error: Option<String>,
    pub alert_webhook: Option<String>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    pub per: String,
    #[serde(default, rename = "match")]
    pub filter: RawMatch,
    pub window: String,
    pub requests: Option<f64>,
    pub tokens: Option<f64>,
    pub cost_usd: Option<f64>,
    pub alert_at: Option<f64>,
    pub action: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub key: Option<String>,
    pub customer: Option<String>,
    pub model: Option<String>,
}

/// The validated `limits:` section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsConfig {
    pub rules: Vec<Rule>,
    /// `backend: redis`: counts shared by every sidecar on this Redis (`limits.redis_url`,
    /// else `cache.redis_url`); `None`: this process's own.
    pub redis_url: Option<String>,
    /// `on_backend_error: deny`: a request the backend cannot check is refused (503).
    pub deny_on_backend_error: bool,
    pub alert_webhook: Option<String>,
}

/// One rule: what it counts, per what, over which window, and what it does past a limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub per: Scope,
    pub filter: Match,
    pub window: Window,
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    pub alert_at: f64,
    /// `action: block` (429 past a limit); `alert` never blocks.
    pub block: bool,
}

/// What a rule counts per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The `auth.keys` entry the request came with (its name, or its index).
    Key,
    Customer,
    Model,
    Global,
    /// A `metadata` value.
    Metadata(String),
}

/// Which requests a rule sees (every given filter must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    pub key: Option<String>,
    pub customer: Option<String>,
    /// A model name or a glob with `*`.
    pub model: Option<String>,
}

/// How long a rule's counts last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// The last 60 s.
    Minute,
    /// The last 3600 s.
    Hour,
    /// UTC calendar day.
    Day,
    /// UTC calendar week, from Monday.
    Week,
    /// UTC calendar month.
    Month,
    /// UTC calendar year (a customer's `budget_duration: yearly`).
    Year,
    Lifetime,
}

impl Window {
    pub fn parse(name: &str) -> Option<Window> {
        Some(match name {
            "minute" => Window::Minute,
            "hour" => Window::Hour,
            "day" => Window::Day,
            "week" => Window::Week,
            "month" => Window::Month,
            "year" => Window::Year,
            "lifetime" => Window::Lifetime,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
            Window::Year => "year",
            Window::Lifetime => "lifetime",
        }
    }
}

/// Validates `limits:`.
pub fn limits(
    raw: RawLimits,
    cache_redis_url: Option<String>,
    problems: &mut Vec<Problem>,
) -> LimitsConfig {
    let redis_url = match raw.backend.as_deref() {
        None | Some("memory") => None,
        Some("redis") => Some(
            raw.redis_url
                .or(cache_redis_url)
                .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string()),
        ),
        Some(other) => {
            problems.push(Problem::new(
                "limits.backend",
                format!("unknown backend `{other}` (expected memory or redis)"),
            ));
            None
        }
    };
    let deny = match raw.on_backend_error.as_deref() {
        None | Some("allow") => false,
        Some("deny") => true,
        Some(other) => {
            problems.push(Problem::new(
                "limits.on_backend_error",
                format!("`{other}` is not allow or deny"),
            ));
            false
        }
    };
    let mut names = BTreeSet::new();
    let rules = raw
        .rules
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let path = format!("limits.rules[{i}]");
            if !names.insert(r.name.clone()) {
                problems.push(Problem::new(
                    format!("{path}.name"),
                    format!("`{}` names another rule too", r.name),
                ));
            }
            rule(&path, r, problems)
        })
        .collect();
    LimitsConfig {
        rules,
        redis_url,
        deny_on_backend_error: deny,
        alert_webhook: webhook(raw.alert_webhook, problems),
    }
}

/// `alert_webhook`: an http or https URL (empty is none).
fn webhook(raw: Option<String>, problems: &mut Vec<Problem>) -> Option<String> {
    let url = raw.filter(|w| !w.is_empty())?;
    match crate::telemetry::export::http::endpoint(&url) {
        Ok(_) => Some(url),
        Err(_) => {
            problems.push(Problem::new(
                "limits.alert_webhook",
                "is not an http or https URL",
            ));
            None
        }
    }
}

/// The rules a customer's Respan budget (`customer_params`) becomes, by these fixed names:
/// no configured rule may take them (its counts would be the budget's).
pub const CUSTOMER_PERIOD_BUDGET: &str = "customer_period_budget";
pub const CUSTOMER_TOTAL_BUDGET: &str = "customer_total_budget";
pub const CUSTOMER_RATE_LIMIT: &str = "customer_rate_limit";
pub const CUSTOMER_BUDGETS: [&str; 3] = [
    CUSTOMER_PERIOD_BUDGET,
    CUSTOMER_TOTAL_BUDGET,
    CUSTOMER_RATE_LIMIT,
];

fn rule(path: &str, raw: RawRule, problems: &mut Vec<Problem>) -> Option<Rule> {
    let before = problems.len();
    if raw.name.is_empty() {
        problems.push(Problem::new(format!("{path}.name"), "is empty"));
    }
    if CUSTOMER_BUDGETS.contains(&raw.name.as_str()) {
        problems.push(Problem::new(
            format!("{path}.name"),
            format!("`{}` is the name of a customer's budget", raw.name),
        ));
    }
    let per = match raw.per.as_str() {
        "key" => Some(Scope::Key),
        "customer" => Some(Scope::Customer),
        "model" => Some(Scope::Model),
        "global" => Some(Scope::Global),
        other => match other.strip_prefix("metadata.") {
            Some(k) if !k.is_empty() => Some(Scope::Metadata(k.to_string())),
            _ => None,
        },
    };
    if per.is_none() {
        problems.push(Problem::new(
            format!("{path}.per"),
            format!(
                "unknown scope `{}` (expected key, customer, model, global or metadata.<key>)",
                raw.per
            ),
        ));
    }
    let window = Window::parse(&raw.window);
    if window.is_none() {
        problems.push(Problem::new(
            format!("{path}.window"),
            format!(
                "unknown window `{}` (expected minute, hour, day, week, month, year or lifetime)",
                raw.window
            ),
        ));
    }
    let mut limit = |name: &str, value: Option<f64>| -> Option<f64> {
        let v = value?;
        if !(v.is_finite() && v > 0.0) {
            problems.push(Problem::new(
                format!("{path}.{name}"),
                "must be a number above 0",
            ));
            return None;
        }
        Some(v)
    };
    let requests = limit("requests", raw.requests).map(|v| v.ceil() as u64);
    let tokens = limit("tokens", raw.tokens).map(|v| v.ceil() as u64);
    let cost_usd = limit("cost_usd", raw.cost_usd);
    if requests.is_none() && tokens.is_none() && cost_usd.is_none() && problems.len() == before {
        problems.push(Problem::new(
            path,
            "sets no limit: give requests, tokens or cost_usd",
        ));
    }
    let alert_at = raw.alert_at.unwrap_or(0.8);
    if !(alert_at > 0.0 && alert_at <= 1.0) {
        problems.push(Problem::new(
            format!("{path}.alert_at"),
            "must be above 0 and at most 1",
        ));
    }
    let block = match raw.action.as_deref() {
        None | Some("block") => true,
        Some("alert") => false,
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.action"),
                format!("`{other}` is not block or alert"),
            ));
            true
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(Rule {
        name: raw.name,
        per: per?,
        filter: Match {
            key: raw.filter.key,
            customer: raw.filter.customer,
            model: raw.filter.model,
        },
        window: window?,
        requests,
        tokens,
        cost_usd,
        alert_at,
        block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let raw: RawLimits = serde_yaml::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        limits(raw, None, &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn bad_rules_are_problems_at_their_path() {
        let p = problems(
            "rules:\n  - {name: a, per: team, window: day, requests: 1}\n  - {name: a, per: key, window: fortnight, tokens: -5}\n  - {name: c, per: metadata., window: day}\n  - {name: d, per: global, window: day, cost_usd: 1, alert_at: 2, action: shout}\nalert_webhook: \"ftp://x\"\n",
        );
        let has = |prefix: &str| p.iter().any(|x| x.starts_with(prefix));
        assert!(has("limits.rules[0].per: unknown scope `team`"), "{p:?}");
        let taken = problems(
            "rules:\n  - {name: customer_rate_limit, per: customer, window: minute, requests: 1}\n",
        );
        assert_eq!(
            taken,
            ["limits.rules[0].name: `customer_rate_limit` is the name of a customer's budget"]
        );
        assert!(
            has("limits.rules[1].name: `a` names another rule too"),
            "{p:?}"
        );
        assert!(has("limits.rules[1].window"), "{p:?}");
        assert!(
            has("limits.rules[1].tokens: must be a number above 0"),
            "{p:?}"
        );
        assert!(has("limits.rules[2].per"), "{p:?}");
        assert!(has("limits.rules[3].alert_at"), "{p:?}");
        assert!(has("limits.alert_webhook"), "{p:?}");
        assert!(has("limits.rules[3].action"), "{p:?}");
        assert!(problems("backend: memory\nrules:\n  - {name: ok, per: metadata.team, window: lifetime, requests: 5}\n").is_empty());
        assert!(!problems("on_backend_error: maybe\n").is_empty());
    }
}
