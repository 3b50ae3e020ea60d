//! A model call (chat completions, embeddings), start to end, beside Pingora's proxy loop.
//!
//! The body is read whole (the model is in it), the Respan parameters are taken out, and the
//! attempt plan (`dispatch`) is run here on Pingora's pooled connectors: each try sends the
//! rewritten body, reads the answer's header, and either relays the answer or, on a
//! connect error, timeout, 429 or 5xx, moves on to the next try or the next model. One loop
//! owns retries and fallbacks for any body size, which the proxy loop (64 KiB replay limit,
//! no retry once an answer was read) cannot.

use super::ctx::RequestCtx;
use super::relay::{relay, Answer};
use super::respond;
use super::Gateway;
use crate::body::{raw_string, JsonBody};
use crate::config::{ProviderConfig, ProviderKind};
use crate::dispatch::{retry_after_hint, retryable_status, Plan};
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::params::{self, Extracted, RespanParams};
use crate::providers::{self, echo, Credentials};
use crate::routing::Route;
use crate::state::Snapshot;
use crate::telemetry::metrics::metrics;
use crate::upstream::ExchangeError;
use bytes::Bytes;
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use serde_json::value::RawValue;
use tokio::time::Instant;

/// Error answers of failed tries are kept (to relay the last one) up to this size.
const MAX_ERROR_BODY: usize = 256 * 1024;

/// A parsed model call, ready to be sent to any provider.
struct ModelRequest {
    endpoint: Endpoint,
    model: String,
    body: JsonBody,
    params: RespanParams,
    /// The body's own `metadata` (see `params::Extracted::body_metadata`).
    body_metadata: Option<Box<RawValue>>,
    stream: bool,
    store: bool,
}

/// Serves one model call; every failure becomes an answer in the caller's format.
pub async fn serve(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx, snapshot: &Snapshot) {
    if let Err(e) = run(gw, session, ctx, snapshot).await {
        respond::error(session, ctx, &e).await;
    }
}

async fn run(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    snapshot: &Snapshot,
) -> Result<(), GatewayError> {
    let bytes = read_body(session, snapshot.config.server.max_request_body_bytes).await?;
    let request = parse(ctx.endpoint, &bytes, session.req_header())?;
    let plan = Plan::new(&request.model, &request.params, &snapshot.config.retry)?;
    let pinned = pinned_provider(session.req_header())?;
    // An unknown model is answered before anything is sent anywhere.
    snapshot.router.resolve(&request.model, pinned.as_deref())?;
    let attempts = Attempts {
        gw,
        snapshot,
        request: &request,
        pinned: pinned.as_deref(),
        gateway_auth: snapshot.config.auth.is_some(),
    };
    match attempts.run(session, ctx, &plan).await {
        Ok((answer, deadline)) => {
            relay(session, ctx, answer, &gw.upstream, deadline).await;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Reads the whole request body, refusing it (413) as soon as it is over `limit`.
async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // Without this, clients such as curl wait about a second before sending the body.
        // The 100 is not "the answer", so it must not mark the connection for closing.
        session.set_close_on_response_before_downstream_finish(false);
        let sent = session.write_continue_response().await;
        session.set_close_on_response_before_downstream_finish(true);
        sent.map_err(|e| GatewayError::ClientRead(e.to_string()))?;
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| GatewayError::ClientRead(e.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(GatewayError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

fn parse(
    endpoint: Endpoint,
    bytes: &[u8],
    req: &RequestHeader,
) -> Result<ModelRequest, GatewayError> {
    let mut body = JsonBody::parse(bytes)?;
    let header = |name: &str| req.headers.get(name).map(|v| v.as_bytes());
    let Extracted {
        params,
        body_metadata,
    } = params::extract(
        &mut body,
        [
            ("X-Data-Respan-Params", header("x-data-respan-params")),
            (
                "X-Data-Keywordsai-Params",
                header("x-data-keywordsai-params"),
            ),
        ],
    )?;
    let model = body
        .get_as::<String>("model")
        .map_err(|e| GatewayError::invalid_field("model", e))?
        .filter(|m| !m.is_empty())
        .ok_or(GatewayError::MissingModel)?;
    let flag = |name: &str| {
        body.get_as::<Option<bool>>(name)
            .map(|v| v.flatten().unwrap_or(false))
            .map_err(|e| GatewayError::invalid_field(name, e))
    };
    let stream = flag("stream")?;
    let store = flag("store")?;
    Ok(ModelRequest {
        endpoint,
        model,
        body,
        params,
        body_metadata,
        stream,
        store,
    })
}

/// `X-Respan-Route-Provider`, if given.
fn pinned_provider(req: &RequestHeader) -> Result<Option<String>, GatewayError> {
    req.headers
        .get("x-respan-route-provider")
        .map(|v| {
            v.to_str().map(str::to_string).map_err(|_| {
                GatewayError::invalid_field("X-Respan-Route-Provider", "is not valid text")
            })
        })
        .transpose()
}

/// Runs the attempt plan of one request.
struct Attempts<'a> {
    gw: &'a Gateway,
    snapshot: &'a Snapshot,
    request: &'a ModelRequest,
    pinned: Option<&'a str>,
    gateway_auth: bool,
}

/// One model's call, prepared once and sent on every try.
enum Prepared {
    /// The echo provider: answered in-process.
    Local,
    Remote {
        header: Box<RequestHeader>,
        body: Bytes,
        base_url: crate::config::BaseUrl,
    },
}

/// What the tries so far have left to answer with if none succeeds.
#[derive(Default)]
struct Failures {
    /// The last error answer an upstream gave (status and body are relayed as they were).
    last_answer: Option<(ResponseHeader, Bytes)>,
    /// The last failure without an answer (connect error, timeout, a model with no route).
    last_error: Option<GatewayError>,
}

impl Failures {
    fn into_result(self) -> Result<(Answer, Instant), GatewayError> {
        match (self.last_answer, self.last_error) {
            (Some((header, body)), _) => Ok((
                Answer::Buffered(Box::new(header), Some(body)),
                Instant::now(),
            )),
            (None, Some(e)) => Err(e),
            (None, None) => Err(GatewayError::NoUpstream("no attempt was made".into())),
        }
    }
}

impl Attempts<'_> {
    /// Tries each model of the plan, each with its retries, until one gives an answer to
    /// relay: a success, or an error that is final (not retryable, or the last chance).
    /// Returns it with the deadline of its attempt.
    async fn run(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        plan: &Plan,
    ) -> Result<(Answer, Instant), GatewayError> {
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
                let outcome = outcome_label(&result);
                metrics()
                    .upstream_attempts
                    .with_label_values(&[&route.provider.name, route.metric_label, outcome])
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
                    return Ok((answer, deadline));
                }
                let (header, body) = self.drain(answer, deadline).await;
                hint = header.as_ref().and_then(|h| {
                    retry_after_hint(
                        h.headers.get("retry-after-ms").map(|v| v.as_bytes()),
                        h.headers.get("retry-after").map(|v| v.as_bytes()),
                    )
                });
                if let Some(header) = header {
                    failures.last_answer = Some((header, body));
                }
                if !retry_same {
                    break;
                }
            }
        }
        failures.into_result()
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
        if provider.kind == ProviderKind::Echo {
            return Ok(Prepared::Local);
        }
        let request = self.request;
        let creds = providers::credentials(
            provider,
            model,
            upstream_model,
            &request.params,
            self.gateway_auth,
        )?;
        let path = providers::model_call_path(provider, request.endpoint, upstream_model, &creds)?;
        let body = self.encode_body(provider, upstream_model);
        let header = upstream_header(downstream, provider, &creds, &path, body.len())?;
        Ok(Prepared::Remote {
            header: Box::new(header),
            body,
            base_url: creds.base_url.into_owned(),
        })
    }

    /// The body for an OpenAI-shaped provider: the app's, minus Respan parameters, with the
    /// upstream model name, and `metadata` back only for stored completions at OpenAI.
    fn encode_body(&self, provider: &ProviderConfig, upstream_model: &str) -> Bytes {
        let request = self.request;
        let model = raw_string(upstream_model);
        let mut overrides: Vec<(&str, &RawValue)> = vec![("model", &model)];
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
        match prepared {
            Prepared::Local => Ok(Answer::Local(echo::answer(
                request.endpoint,
                &request.body,
                upstream_model,
                request.stream,
            ))),
            Prepared::Remote {
                header,
                body,
                base_url,
            } => {
                let upstream = &self.gw.upstream;
                let connect_timeout = self.snapshot.config.server.connect_timeout;
                let peer = upstream.peer(base_url, connect_timeout).await?;
                tracing::debug!(provider = %provider.name, model = upstream_model, "upstream attempt");
                upstream
                    .send(peer, header, body, deadline)
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
