//! How hard a model is asked to think, from one provider's terms to another's: Anthropic's
//! `thinking` (`enabled` with `budget_tokens`, or `adaptive`) and `output_config.effort`,
//! OpenAI's `reasoning_effort` (and the Responses API's `reasoning.effort`), Gemini's
//! `thinkingConfig.thinkingBudget`. The chat form carries the effort, and Anthropic's own
//! budget when there is one (the most exact measure, which Gemini can take as it is).

use serde_json::{json, Value};

/// Below this, Anthropic refuses a thinking budget.
const MIN_ANTHROPIC_BUDGET: u64 = 1024;

/// Tokens of thinking each effort stands for (the middle of what each provider documents
/// for its levels).
fn budget(effort: &str) -> Option<u64> {
    match effort {
        "low" => Some(2048),
        "medium" => Some(8192),
        "high" | "max" => Some(24576),
        _ => None, // `minimal`, `none`: no thinking
    }
}

/// The effort of a thinking budget.
fn effort_of_budget(budget: u64) -> &'static str {
    match budget {
        0..=4095 => "low",
        4096..=16383 => "medium",
        _ => "high",
    }
}

/// An Anthropic request's effort: `output_config.effort` if given, else its thinking's
/// (`adaptive` leaves it to the model: medium); none when it does not think.
pub fn effort_of_anthropic(
    thinking: Option<&Value>,
    output_config: Option<&Value>,
) -> Option<String> {
    let kind = thinking.and_then(|t| t.get("type")).and_then(Value::as_str);
    if let Some(effort) = output_config
        .and_then(|c| c.get("effort"))
        .and_then(Value::as_str)
    {
        let effort = if effort == "max" { "high" } else { effort };
        return (kind != Some("disabled")).then(|| effort.to_string());
    }
    match kind? {
        "enabled" => {
            let budget = thinking?.get("budget_tokens").and_then(Value::as_u64)?;
            Some(effort_of_budget(budget).to_string())
        }
        "adaptive" => Some("medium".to_string()),
        _ => None,
    }
}

/// Anthropic's `thinking` for an effort, within an answer of `max_tokens` (the budget must be
/// below it, and at least 1024); none when it does not fit or the effort is none.
pub fn anthropic_thinking(effort: &str, max_tokens: u64) -> Option<Value> {
    let budget = budget(effort)?.min(max_tokens.saturating_sub(1));
    (budget >= MIN_ANTHROPIC_BUDGET).then(|| json!({"type": "enabled", "budget_tokens": budget}))
}

/// Gemini's `thinkingConfig`: Anthropic's own budget when the request had one, else the
/// effort's; thoughts included, so the answer's reasoning comes back as reasoning.
pub fn gemini_thinking(thinking: Option<&Value>, effort: Option<&str>) -> Option<Value> {
    let exact = thinking
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled"))
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    let budget = exact.or_else(|| budget(effort?))?;
    Some(json!({"thinkingBudget": budget, "includeThoughts": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_thinking_and_effort_become_an_effort() {
        let enabled = |b: u64| json!({"type": "enabled", "budget_tokens": b});
        assert_eq!(
            effort_of_anthropic(Some(&enabled(1024)), None).as_deref(),
            Some("low")
        );
        assert_eq!(
            effort_of_anthropic(Some(&enabled(10000)), None).as_deref(),
            Some("medium")
        );
        assert_eq!(
            effort_of_anthropic(Some(&enabled(31999)), None).as_deref(),
            Some("high")
        );
        let adaptive = json!({"type": "adaptive"});
        assert_eq!(
            effort_of_anthropic(Some(&adaptive), None).as_deref(),
            Some("medium")
        );
        let config = json!({"effort": "max"});
        assert_eq!(
            effort_of_anthropic(Some(&adaptive), Some(&config)).as_deref(),
            Some("high")
        );
        assert_eq!(effort_of_anthropic(None, None), None);
        let disabled = json!({"type": "disabled"});
        assert_eq!(effort_of_anthropic(Some(&disabled), Some(&config)), None);
    }

    #[test]
    fn an_effort_becomes_a_budget_that_fits() {
        assert_eq!(
            anthropic_thinking("high", 64000).unwrap()["budget_tokens"],
            24576
        );
        assert_eq!(
            anthropic_thinking("high", 4000).unwrap()["budget_tokens"],
            3999
        );
        assert_eq!(anthropic_thinking("low", 1000), None);
        assert_eq!(anthropic_thinking("minimal", 64000), None);
        let exact = json!({"type": "enabled", "budget_tokens": 5000});
        assert_eq!(
            gemini_thinking(Some(&exact), Some("high")).unwrap()["thinkingBudget"],
            5000
        );
        assert_eq!(
            gemini_thinking(None, Some("low")).unwrap()["thinkingBudget"],
            2048
        );
        assert_eq!(gemini_thinking(None, None), None);
    }
}
