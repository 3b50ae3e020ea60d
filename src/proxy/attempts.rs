//! The attempt loop of a model call: each model of the plan, each with its retries, until an
//! answer is worth relaying.
//!
//! Every model is prepared once (credentials, URL, the body in its provider's format, how to
//! translate the answer back) and sent on each try. A connect error, timeout, 429 or 5xx is
//! retried; any other error answer moves on to the next model. The answer relayed is the
//! first success, or the last failure when nothing succeeded.

use super::ctx::RequestCtx;
use super::model_call::ModelRequest;
use super::relay::Answer;
use super::Gateway;
use crate::body::{raw_string, JsonBody};
use crate::config::{BaseUrl, ProviderConfig, ProviderKind};
use crate::dispatch::{retry_after_hint, retryable_status, Plan};
use crate::endpoint::{Endpoint, Ingress};
use crate::error::GatewayError;
use crate::providers::{self, echo, Credentials, Operation};
use crate::routing::Route;
use crate::state::Snapshot;
use crate::telemetry::metrics::metrics;
use crate::translate::{self, ResponsePlan, TranslateError, Wire};
use crate::upstream::ExchangeError;
use bytes::Bytes;
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use serde_json::value::RawValue;
use std::collections::VecDeque;
use tokio::time::Instant;

/// Error answers of failed tries are kept (to relay the last one) up to this size.
const MAX_ERROR_BODY: usize = 256 * 1024;

/// Runs the attempt plan of one request.
pub struct Attempts<'a> {
    pub gw: &'a Gateway,
    pub snapshot: &'a Snapshot,
    pub request: &'a ModelRequest,
    pub pinned: Option<&'a str>,
}

/// The answer the loop settled on, how to translate it, and its attempt's deadline.
pub struct Settled {
    pub answer: Answer,
    pub plan: ResponsePlan,
    pub deadline: Instant,
}

/// One model's call, prepared once and sent on every try.
struct Prepared {
    target: Target,
    /// The request body in the provider's format.
    body: Bytes,
    plan: ResponsePlan,
}

enum Target {
    /// The echo provider: answered in-process.
    Echo,
    /// Anthropic's count_tokens for a model another provider serves: estimated here.
    Estimate,
    Remote {
        header: Box<RequestHeader>,
        base_url: BaseUrl,
    },
}

/// What the tries so far leave to answer with if none succeeds.
#[derive(Default)]
struct Failures {
    /// The last error answer an upstream gave (relayed, translated, as it was).
    last_answer: Option<(ResponseHeader, Bytes, ResponsePlan)>,
    /// The last failure without an answer (connect error, timeout, a model with no route).
    last_error: Option<GatewayError>,
}

impl Failures {
    fn into_settled(self) -> Result<Settled, GatewayError> {
        match (self.last_answer, self.last_error) {
            (Some((header, body, plan)), _) => Ok(Settled {
                answer: Answer::Buffered(Box::new(header), Some(body)),
                plan,
                deadline: Instant::now() + std::time::Duration::from_secs(1),
            }),
            (None, Some(e)) => Err(e),
            (None, None) => Err(GatewayError::NoUpstream("no attempt was made".into())),
        }
    }
}

impl Attempts<'_> {
    /// Tries each model of the plan, each with its retries, until one gives an answer to
    /// relay: a success, or an error that is final (not retryable, or the last chance).
    pub async fn run(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        plan: &Plan,
    ) -> Result<Settled, GatewayError> {
        let mut failures = Failures::default();
        for (index, model) in plan.models.iter().enumerate() {
            let last_model = index + 1 == plan.models.len();
            let route = match self.snapshot.router.resolve(model, self.pinned) {
                Ok(route) => route,
                Err(e) => {
                    failures.last_error = Some(e.into());
                    continue;
                }
            };
            let upstream_model = self.upstream_model(model, &route);
            let prepared = match self.prepare(session.req_header(), &route, model, &upstream_model)
            {
                Ok(p) => p,
                Err(e) => {
                    failures.last_error = Some(e);
                    continue;
                }
            };
            let mut hint = None;
            for try_no in 0..=plan.retry.retries {
                if try_no > 0 {
                    let wait = plan.retry.delay(try_no, hint, rand::random::<f64>());
                    tokio::time::sleep(wait).await;
                    metrics()
                        .retries
                        .with_label_values(&[&route.provider.name, route.metric_label])
                        .inc();
                }
                ctx.served.model_label = route.metric_label.to_string();
                ctx.served.provider.clone_from(&route.provider.name);
                ctx.served.upstream_model.clone_from(&upstream_model);
                ctx.served.attempts += 1;
                let deadline = Instant::now() + self.snapshot.config.server.upstream_timeout;
                let result = self
                    .send(&prepared, route.provider, &upstream_model, deadline)
                    .await;
                metrics()
                    .upstream_attempts
                    .with_label_values(&[
                        &route.provider.name,
                        route.metric_label,
                        outcome_label(&result),
                    ])
                    .inc();
                let answer = match result {
                    Ok(answer) => answer,
                    Err(e) => {
                        failures.last_error = Some(exchange_error(e, self.snapshot));
                        continue;
                    }
                };
                let status = answer.status();
                let retry_same = retryable_status(status) && try_no < plan.retry.retries;
                if (200..300).contains(&status) || (!retry_same && last_model) {
                    return Ok(Settled {
                        answer,
                        plan: prepared.plan,
                        deadline,
                    });
                }
                let (header, body) = self.drain(answer, deadline).await;
                hint = header.as_ref().and_then(|h| {
                    retry_after_hint(
                        h.headers.get("retry-after-ms").map(|v| v.as_bytes()),
                        h.headers.get("retry-after").map(|v| v.as_bytes()),
                    )
                });
                if let Some(header) = header {
                    failures.last_answer = Some((header, body, prepared.plan.clone()));
                }
                if !retry_same {
                    break;
                }
            }
        }
        failures.into_settled()
    }

    /// The model name the provider gets: the request's `model_name_map` (by the name the app
    /// used, then the routed name) over the route's `upstream_model`.
    fn upstream_model(&self, model: &str, route: &Route<'_>) -> String {
        let map = self.request.params.model_name_map.as_ref();
        map.and_then(|m| m.get(model).or_else(|| m.get(route.upstream_model)))
            .map_or(route.upstream_model, String::as_str)
            .to_string()
    }

    fn prepare(
        &self,
        downstream: &RequestHeader,
        route: &Route<'_>,
        model: &str,
        upstream_model: &str,
    ) -> Result<Prepared, GatewayError> {
        let provider = route.provider;
        let request = self.request;
        let wire = Wire::of(provider.kind);
        if matches!(request.operation, Operation::CountTokens { .. })
            && request.ingress == Ingress::Anthropic
            && wire != Wire::Anthropic
        {
            return Ok(Prepared {
                target: Target::Estimate,
                body: Bytes::new(),
                plan: ResponsePlan::identity(Ingress::Anthropic, upstream_model),
            });
        }
        let (body, plan) = if wire == Wire::of_ingress(request.ingress) {
            let plan = ResponsePlan::identity(request.ingress, upstream_model);
            (self.encode_body(provider, upstream_model), plan)
        } else {
            let t = translate::request(request.ingress, wire, &request.body, upstream_model)
                .map_err(translate_error)?;
            (Bytes::from(t.body), t.plan)
        };
        if provider.kind == ProviderKind::Echo {
            return Ok(Prepared {
                target: Target::Echo,
                body,
                plan,
            });
        }
        let creds = providers::credentials(
            provider,
            model,
            upstream_model,
            &request.params,
            self.snapshot.config.auth.is_some(),
        )?;
        let path = providers::model_call_path(provider, request.operation, upstream_model, &creds)?;
        let header = upstream_header(downstream, provider, &creds, &path, body.len())?;
        Ok(Prepared {
            target: Target::Remote {
                header: Box::new(header),
                base_url: creds.base_url.into_owned(),
            },
            body,
            plan,
        })
    }

    /// The body for a provider of the app's own format: the app's, minus Respan parameters,
    /// with the upstream model name (Gemini's is in the URL), and `metadata` back only for
    /// stored completions at OpenAI.
    fn encode_body(&self, provider: &ProviderConfig, upstream_model: &str) -> Bytes {
        let request = self.request;
        let model = raw_string(upstream_model);
        let mut overrides: Vec<(&str, &RawValue)> = Vec::with_capacity(2);
        if request.ingress != Ingress::Gemini {
            overrides.push(("model", &model));
        }
        if let (true, ProviderKind::OpenAi, Some(metadata)) = (
            request.store,
            provider.kind,
            request.body_metadata.as_deref(),
        ) {
            overrides.push(("metadata", metadata));
        }
        Bytes::from(request.body.encode(&overrides, &[]))
    }

    async fn send(
        &self,
        prepared: &Prepared,
        provider: &ProviderConfig,
        upstream_model: &str,
        deadline: Instant,
    ) -> Result<Answer, ExchangeError> {
        let request = self.request;
        match &prepared.target {
            Target::Echo => {
                let endpoint = match request.operation {
                    Operation::Embed => Endpoint::Embeddings,
                    _ => Endpoint::ChatCompletions,
                };
                let answer = if request.ingress == Ingress::OpenAi {
                    echo::answer(endpoint, &request.body, upstream_model, request.stream)
                } else {
                    let body = JsonBody::parse(&prepared.body).unwrap_or_default();
                    echo::answer(endpoint, &body, upstream_model, request.stream)
                };
                Ok(Answer::Local(answer))
            }
            Target::Estimate => Ok(Answer::Local(token_estimate(&request.body))),
            Target::Remote { header, base_url } => {
                let upstream = &self.gw.upstream;
                let connect_timeout = self.snapshot.config.server.connect_timeout;
                let peer = upstream.peer(base_url, connect_timeout).await?;
                tracing::debug!(provider = %provider.name, model = upstream_model, "upstream attempt");
                upstream
                    .send(peer, header, &prepared.body, deadline)
                    .await
                    .map(|exchange| Answer::Remote(Box::new(exchange)))
            }
        }
    }

    /// Reads a failed try's answer to keep it (its connection goes back to the pool).
    async fn drain(&self, answer: Answer, deadline: Instant) -> (Option<ResponseHeader>, Bytes) {
        match answer {
            Answer::Remote(mut exchange) => {
                let header = exchange.header().cloned();
                let body = exchange
                    .read_to_end(MAX_ERROR_BODY, deadline)
                    .await
                    .unwrap_or_default();
                self.gw.upstream.finish(*exchange).await;
                (header, body)
            }
            Answer::Local(local) => {
                let header = ResponseHeader::build(local.status, None).ok();
                (
                    header,
                    local
                        .chunks
                        .into_iter()
                        .flatten()
                        .collect::<Vec<u8>>()
                        .into(),
                )
            }
            Answer::Buffered(header, body) => (Some(*header), body.unwrap_or_default()),
        }
    }
}

/// Anthropic's `count_tokens` answer for a model without a tokenizer here: about four
/// characters a token over the conversation, tools and system prompt.
fn token_estimate(body: &JsonBody) -> echo::LocalAnswer {
    let chars: usize = ["system", "messages", "tools"]
        .iter()
        .filter_map(|key| body.get(key))
        .map(|raw| raw.get().len())
        .sum();
    let tokens = (chars / 4).max(1);
    echo::LocalAnswer {
        status: 200,
        content_type: "application/json",
        chunks: VecDeque::from([Bytes::from(format!("{{\"input_tokens\":{tokens}}}"))]),
    }
}

fn translate_error(e: TranslateError) -> GatewayError {
    match e {
        TranslateError::Invalid { param, message } => GatewayError::InvalidField { param, message },
        TranslateError::Upstream(message) => GatewayError::Unsupported(message),
    }
}

/// The upstream request header: the app's, cleaned, pointed at `path` and framed for a body of
/// `length` bytes. Compression is not asked for: the gateway reads what comes back.
fn upstream_header(
    downstream: &RequestHeader,
    provider: &ProviderConfig,
    creds: &Credentials<'_>,
    path: &str,
    length: usize,
) -> Result<RequestHeader, GatewayError> {
    let mut header = downstream.clone();
    header.set_method(Method::POST);
    header.set_version(http::Version::HTTP_11);
    let uri = path
        .parse::<http::Uri>()
        .map_err(|e| GatewayError::Unsupported(format!("bad upstream path: {e}")))?;
    header.set_uri(uri);
    for name in [
        "content-length",
        "transfer-encoding",
        "expect",
        "accept-encoding",
    ] {
        header.remove_header(name);
    }
    providers::prepare_upstream_header(&mut header, provider, creds)?;
    let set = |header: &mut RequestHeader, name: &'static str, value: String| {
        header
            .insert_header(name, value)
            .map_err(|e| GatewayError::Unsupported(e.to_string()))
    };
    set(&mut header, "content-type", "application/json".into())?;
    set(&mut header, "content-length", length.to_string())?;
    set(&mut header, "accept-encoding", "identity".into())?;
    Ok(header)
}

/// The `outcome` label of `respan_upstream_attempts_total`.
fn outcome_label(result: &Result<Answer, ExchangeError>) -> &'static str {
    match result {
        Ok(answer) => match answer.status() {
            200..=299 => "ok",
            429 => "http_429",
            400..=499 => "http_4xx",
            _ => "http_5xx",
        },
        Err(ExchangeError::Connect(_)) => "connect_error",
        Err(ExchangeError::Timeout) => "timeout",
        Err(ExchangeError::Broken(_)) => "broken",
    }
}

fn exchange_error(e: ExchangeError, snapshot: &Snapshot) -> GatewayError {
    match e {
        ExchangeError::Timeout => {
            GatewayError::UpstreamTimeout(snapshot.config.server.upstream_timeout)
        }
        other => GatewayError::NoUpstream(other.to_string()),
    }
}
