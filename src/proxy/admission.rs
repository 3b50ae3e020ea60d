//! A model call against the `limits:` rules: admitted (counted, its use reserved) once,
//! before its first attempt, and settled when it ends with what it really used.

use super::ctx::RequestCtx;
use crate::catalog;
use crate::dispatch::request::ModelRequest;
use crate::error::GatewayError;
use crate::limits::{customers, Ask, Blocked, Facts, Limits, Ticket};
use crate::routing::Route;
use crate::state::Snapshot;
use crate::telemetry::cost::cost;
use crate::telemetry::record::TokenUsage;
use crate::telemetry::trace::Trace;
use std::time::SystemTime;

/// Output tokens assumed for a request that sets no limit and names no model the catalog
/// knows (Anthropic's documented default).
const DEFAULT_OUTPUT_ESTIMATE: u64 = 4096;

/// Checks the request, going first to `route`, against every rule it matches; a refusal
/// is its answer (429).
pub async fn admit(
    limits: &Limits,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    (request, route): (&ModelRequest<'_>, Option<&Route<'_>>),
    body_len: usize,
) -> Result<(), GatewayError> {
    let config = &snapshot.config.limits;
    let customer_params = request.params.customer_params.as_ref().map(|c| &c.other);
    let sets_budget = customer_params.is_some_and(customers::sets_budget);
    if config.rules.is_empty() && !sets_budget && !limits.has_budgets() {
        return Ok(());
    }
    let model = request.model.as_deref().unwrap_or_default();
    let facts = Facts {
        key: ctx.auth_key.as_deref(),
        customer: ctx.record.subject.customer_identifier.as_deref(),
        model,
        metadata: &ctx.record.subject.metadata,
    };
    let ask = estimate(request, route, model, body_len);
    let now = SystemTime::now();
    let mut ticket = match limits.check(config, facts, customer_params, ask, now).await {
        Ok(ticket) => ticket,
        Err(Blocked::Limit(refusal)) => return Err(GatewayError::LimitReached(refusal)),
        Err(Blocked::Unavailable) => return Err(GatewayError::LimitsUnavailable),
    };
    if ticket.checked.is_empty() {
        // No rule matched: nothing reserved, nothing to settle.
        return Ok(());
    }
    ctx.record.limit_alerts = ticket.alerts.iter().map(|a| a.rule.clone()).collect();
    ctx.record.limit_rules = std::mem::take(&mut ticket.checked);
    ctx.limit_ticket = Some(Box::new(ticket));
    Ok(())
}

/// What a request may use: its input (about 4 bytes a token of its body), plus its output
/// limit (else its route's, else the model's from the catalog), priced as its answer will
/// be: by the pricing of the route it goes to first, else the catalog's price of the model
/// that route sends.
fn estimate(
    request: &ModelRequest<'_>,
    route: Option<&Route<'_>>,
    model: &str,
    body_len: usize,
) -> Ask {
    let upstream = route.map_or(model, |r| r.upstream_model);
    let input = (body_len / 4) as u64;
    let asked = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|name| request.body.get_as::<u64>(name).ok().flatten());
    let output = asked
        .or_else(|| route.and_then(|r| r.max_output_tokens))
        .or_else(|| catalog::max_output_tokens(upstream))
        .unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
    let usage = TokenUsage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: input + output,
        ..TokenUsage::default()
    };
    let price = route
        .and_then(|r| r.pricing)
        .map(Into::into)
        .or_else(|| catalog::price(upstream));
    Ask {
        tokens: usage.total_tokens,
        cost_usd: price.map_or(0.0, |p| cost(&usage, &p)),
    }
}

/// Replaces the request's reservations with its real usage and the cost its trace worked
/// out (nothing for a cache hit, which asked no provider).
pub async fn settle(limits: &Limits, ticket: &mut Ticket, trace: &Trace) {
    let record = &trace.record;
    let tokens = if record.cache_hit() {
        0
    } else {
        record.usage.as_ref().map_or(0, |u| u.total_tokens)
    };
    limits
        .finish(ticket, tokens, trace.cost.unwrap_or(0.0))
        .await;
}
