//! The attempt plan of a model call: which models are tried in which order, how many times
//! each, and how long to wait between tries.
//!
//! `attempts` runs the plan: it prepares each model's request, sends it, retries, falls
//! back, and holds a stream back until its content starts; `proxy` then relays the answer.

pub(crate) mod answer;
pub(crate) mod attempts;
pub(crate) mod balance;
pub(crate) mod caller;
mod prepare;
pub(crate) mod request;
mod retry;
mod shape;

pub use balance::{LatencyTracker, FAILURE_PENALTY};
pub use retry::{retry_after_hint, retryable_status, RetryPolicy};

use crate::config::{BalanceStrategy, Config, WeightedModel};
use crate::error::GatewayError;
use crate::params::{ParamError, RespanParams};
use rand::Rng;

/// The models to try, in order, and the retry policy of each.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub models: Vec<String>,
    pub retry: RetryPolicy,
    /// The models come from a `least_latency` group: their latencies are recorded.
    pub track_latency: bool,
}

impl Plan {
    /// The order: the requested model (or, when the request names none, the member a
    /// `load_balance_group` picks), then the group's other members, then each
    /// `fallback_models` entry, without repeating a model. `disable_fallback` keeps only the
    /// first.
    pub fn new(
        requested: Option<&str>,
        params: &RespanParams,
        config: &Config,
        latency: &LatencyTracker,
        rng: &mut impl Rng,
    ) -> Result<Plan, GatewayError> {
        let requested = requested.filter(|m| !m.is_empty());
        let (mut models, track_latency) = match &params.load_balance_group {
            Some(group) => {
                let (members, strategy) = group_members(group, config)?;
                let mut ordered = balance::order(&members, strategy, latency, rng);
                // A model named in the request wins over the group's pick (it may be the
                // group's own id, which names no model).
                if let Some(model) = requested.filter(|m| *m != group.group_id) {
                    ordered.retain(|m| m != model);
                    ordered.insert(0, model.to_string());
                }
                (ordered, strategy == BalanceStrategy::LeastLatency)
            }
            None => (
                vec![requested.ok_or(GatewayError::MissingModel)?.to_string()],
                false,
            ),
        };
        if params.disable_fallback == Some(true) {
            models.truncate(1);
        } else {
            for fallback in params.fallback_models.iter().flatten() {
                if !models.contains(fallback) {
                    models.push(fallback.clone());
                }
            }
        }
        Ok(Plan {
            models,
            retry: RetryPolicy::new(&config.retry, params)?,
            track_latency,
        })
    }
}

/// A group's members: given inline, or the config group `group_id`.
fn group_members(
    group: &crate::params::LoadBalanceGroupParam,
    config: &Config,
) -> Result<(Vec<WeightedModel>, BalanceStrategy), GatewayError> {
    let (members, strategy) = match &group.models {
        Some(inline) => {
            let members = inline
                .iter()
                .map(|m| WeightedModel {
                    model: m.model.clone(),
                    weight: m.weight,
                })
                .collect();
            (members, BalanceStrategy::Weighted)
        }
        None => {
            let configured = config
                .load_balance_groups
                .get(&group.group_id)
                .ok_or_else(|| GatewayError::UnknownGroup(group.group_id.clone()))?;
            (configured.models.clone(), configured.strategy)
        }
    };
    let valid = !members.is_empty()
        && members
            .iter()
            .all(|m| !m.model.is_empty() && m.weight.is_finite() && m.weight > 0.0);
    if !valid {
        return Err(GatewayError::Param(ParamError {
            param: "load_balance_group.models".into(),
            message: "must list models with weights above 0".into(),
        }));
    }
    Ok((members, strategy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{LoadBalanceGroupParam, WeightedModelParam};
    use rand::SeedableRng;

    fn config() -> Config {
        let yaml = "load_balance_groups:\n  pool:\n    models:\n      - {model: a, weight: 1}\n      - {model: b, weight: 1}\n  fastest:\n    strategy: least_latency\n    models:\n      - {model: x}\n      - {model: y}\n";
        crate::config::parse(yaml, std::path::Path::new("."), &|_| None)
            .unwrap()
            .config
    }

    fn plan(requested: Option<&str>, params: &RespanParams) -> Result<Plan, GatewayError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        Plan::new(
            requested,
            params,
            &config(),
            &LatencyTracker::default(),
            &mut rng,
        )
    }

    fn group(id: &str, inline: Option<Vec<(&str, f64)>>) -> Option<LoadBalanceGroupParam> {
        Some(LoadBalanceGroupParam {
            group_id: id.into(),
            models: inline.map(|v| {
                v.into_iter()
                    .map(|(m, w)| WeightedModelParam {
                        model: m.into(),
                        weight: w,
                    })
                    .collect()
            }),
        })
    }

    #[test]
    fn fallbacks_follow_without_repeats() {
        let params = RespanParams {
            fallback_models: Some(vec!["b".into(), "a".into(), "c".into()]),
            ..Default::default()
        };
        assert_eq!(plan(Some("a"), &params).unwrap().models, ["a", "b", "c"]);
        let off = RespanParams {
            disable_fallback: Some(true),
            ..params
        };
        assert_eq!(plan(Some("a"), &off).unwrap().models, ["a"]);
        assert!(matches!(
            plan(None, &RespanParams::default()),
            Err(GatewayError::MissingModel)
        ));
    }

    #[test]
    fn groups_pick_a_member_then_the_others_then_fallbacks() {
        let params = RespanParams {
            load_balance_group: group("pool", None),
            fallback_models: Some(vec!["z".into()]),
            ..Default::default()
        };
        let p = plan(None, &params).unwrap();
        assert_eq!(p.models.len(), 3);
        assert_eq!(p.models[2], "z");
        assert!(!p.track_latency);
        let named = plan(Some("b"), &params).unwrap();
        assert_eq!(named.models, ["b", "a", "z"]);
        let by_id = plan(Some("pool"), &params).unwrap();
        assert_ne!(by_id.models[0], "pool");
        let fastest = RespanParams {
            load_balance_group: group("fastest", None),
            ..Default::default()
        };
        assert!(plan(None, &fastest).unwrap().track_latency);
    }

    #[test]
    fn inline_groups_and_errors() {
        let inline = RespanParams {
            load_balance_group: group("adhoc", Some(vec![("m1", 2.0)])),
            ..Default::default()
        };
        assert_eq!(plan(None, &inline).unwrap().models, ["m1"]);
        let unknown = RespanParams {
            load_balance_group: group("nope", None),
            ..Default::default()
        };
        assert!(matches!(
            plan(None, &unknown),
            Err(GatewayError::UnknownGroup(g)) if g == "nope"
        ));
        let bad = RespanParams {
            load_balance_group: group("adhoc", Some(vec![("m1", 0.0)])),
            ..Default::default()
        };
        assert!(matches!(plan(None, &bad), Err(GatewayError::Param(_))));
    }
}
