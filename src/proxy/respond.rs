//! Answers the gateway writes itself: errors, the models list, and the `x-respan-*` headers
//! every answer carries.

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::head::{frame, head, number, seconds};
use crate::state::Snapshot;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::response::Parts;
use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::json;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-respan-request-id");
const MODEL: HeaderName = HeaderName::from_static("x-respan-model");
const PROVIDER: HeaderName = HeaderName::from_static("x-respan-provider");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-respan-attempts");
const CACHE: HeaderName = HeaderName::from_static("x-respan-cache");

/// `x-respan-request-id` and, once something served the request, `x-respan-model`,
/// `x-respan-provider` and `x-respan-attempts`; `x-respan-cache` when it used the cache.
pub fn respan_headers(ctx: &RequestCtx) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
    // Values are hex ids, config names and model names the gateway already validated as
    // header-safe, so conversion failures cannot happen; they are skipped rather than fatal.
    let text = |on: bool, name: HeaderName, text: &str| {
        on.then(|| HeaderValue::from_str(text).ok().map(|v| (name, v)))
            .flatten()
    };
    let served = &ctx.record.served;
    let served_by = served.attempts > 0;
    [
        text(true, REQUEST_ID, ctx.request_id.as_str()),
        text(
            served_by && !served.upstream_model.is_empty(),
            MODEL,
            &served.upstream_model,
        ),
        text(served_by, PROVIDER, &served.provider),
        served_by.then(|| (ATTEMPTS, number(served.attempts as usize))),
        ctx.record
            .cache
            .header()
            .map(|s| (CACHE, HeaderValue::from_static(s))),
    ]
    .into_iter()
    .flatten()
}

/// Adds the `x-respan-*` headers to a head (replacing any an upstream sent), and OpenAI's
/// `x-ratelimit-*` ones when a `requests` or `tokens` limit covers the request.
pub fn add_respan_headers(head: &mut Parts, ctx: &RequestCtx) {
    for (name, value) in respan_headers(ctx) {
        head.headers.insert(name, value);
    }
    if let Some(ticket) = &ctx.limit_ticket {
        let h = &ticket.headers;
        for (names, tight) in [(&REQUESTS_HEADERS, h.requests), (&TOKENS_HEADERS, h.tokens)] {
            if let Some(t) = tight {
                rate_limit_headers(&mut head.headers, names, t.limit, t.remaining, t.reset);
            }
        }
    }
}

/// OpenAI's `x-ratelimit-limit-*`, `-remaining-*` and `-reset-*` names, per kind of limit.
const REQUESTS_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];
const TOKENS_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

/// A limit, what is left of it and when it resets (a duration, as OpenAI writes it:
/// `12s`), so the SDKs' own backoff works.
fn rate_limit_headers(
    headers: &mut http::HeaderMap,
    [limit_name, remaining_name, reset_name]: &[HeaderName; 3],
    limit: u64,
    remaining: u64,
    reset: std::time::Duration,
) {
    let reset_secs = reset.as_secs_f64().ceil() as u64;
    headers.insert(limit_name.clone(), number(limit as usize));
    headers.insert(remaining_name.clone(), number(remaining as usize));
    headers.insert(reset_name.clone(), seconds(reset_secs));
}

/// The headers an error answer carries beside its body: when to come back, and for a
/// request refused by a requests or tokens limit, that none of it is left.
fn error_headers(e: &GatewayError) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if let Some(secs) = e.retry_after() {
        headers.insert(http::header::RETRY_AFTER, number(secs as usize));
    }
    if let GatewayError::LimitReached(r) = e {
        let names = match r.kind {
            crate::limits::Kind::Requests => &REQUESTS_HEADERS,
            crate::limits::Kind::Tokens => &TOKENS_HEADERS,
            crate::limits::Kind::Cost => return headers,
        };
        let reset = r.wait().unwrap_or_default();
        rate_limit_headers(&mut headers, names, r.limit as u64, 0, reset);
    }
    headers
}

/// The content type of SSE streams.
pub const EVENT_STREAM: &str = "text/event-stream";

/// Writes a complete JSON answer.
pub async fn json(session: &mut Session, ctx: &RequestCtx, status: u16, body: impl Into<Bytes>) {
    whole(session, ctx, status, "application/json", body).await;
}

/// Writes a complete answer of the gateway's own, of `content_type` (a stream replayed from
/// the cache is one too: all its events are known).
pub async fn whole(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    content_type: &'static str,
    body: impl Into<Bytes>,
) {
    whole_with(
        session,
        ctx,
        status,
        content_type,
        body,
        http::HeaderMap::new(),
    )
    .await;
}

/// [`whole`], with more headers (an error's `Retry-After` and rate limits).
async fn whole_with(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    content_type: &'static str,
    body: impl Into<Bytes>,
    extra: http::HeaderMap,
) {
    let Ok(status) = StatusCode::from_u16(status) else {
        return;
    };
    let body = body.into();
    let mut head = head(status);
    let headers = &mut head.headers;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.extend(extra);
    frame(&mut head, Some(body.len()));
    add_respan_headers(&mut head, ctx);
    // An answer before the request body was read to its end (401, 413, ...) closes the
    // connection (Pingora's `close_on_response_before_downstream_finish`, on by default):
    // draining an unwanted body, or waiting for one held back behind `Expect: 100-continue`,
    // is not worth a kept-alive connection.
    if let Err(e) = write_whole(session, head, body).await {
        tracing::debug!(request_id = %ctx.request_id, "client went away before the answer: {e}");
    }
}

/// Writes a complete answer: its head, then its whole body.
pub async fn write_whole(session: &mut Session, head: Parts, body: Bytes) -> pingora::Result<()> {
    write_head(session, head).await?;
    session.write_response_body(Some(body), true).await
}

/// Writes the head of one of the gateway's own answers (its body follows): every head the
/// gateway writes goes through here, so each says `Connection: close` during a drain.
pub async fn write_head(session: &mut Session, head: Parts) -> pingora::Result<()> {
    close_if_draining(session);
    session
        .write_response_header(Box::new(ResponseHeader::from(head)), false)
        .await
}

/// During a shutdown's drain, an answer says `Connection: close` (Pingora writes it when
/// keep-alive is off), so a pooling client does not send its next request to a connection
/// that is about to close. (Passthrough heads are Pingora's: `response_filter` calls this.)
pub fn close_if_draining(session: &mut Session) {
    if session.is_process_shutting_down() {
        session.set_keepalive(None);
    }
}

/// Answers with an error in the caller's format (and notes it on the request's record).
pub async fn error(session: &mut Session, ctx: &mut RequestCtx, e: &GatewayError) {
    tracing::debug!(request_id = %ctx.request_id, status = e.status(), "{e}");
    if let Some(reason) = e.rejection() {
        crate::telemetry::metrics::metrics().rejected(reason);
    }
    ctx.record.error = Some(e.to_string());
    let body = e.body(ctx.endpoint.ingress());
    let extra = error_headers(e);
    whole_with(session, ctx, e.status(), "application/json", body, extra).await;
}

/// `GET /v1/models`: what this config can route by name (routes with exact names, load
/// balance group members, prompt models), in OpenAI's list format.
pub fn models_list(snapshot: &Snapshot) -> Vec<u8> {
    let config = &snapshot.config;
    let mut models: Vec<(String, String)> = snapshot
        .router
        .exact_models()
        .map(|(m, p)| (m.to_string(), p.name.clone()))
        .collect();
    let grouped = config
        .load_balance_groups
        .values()
        .flat_map(|g| &g.models)
        .map(|w| w.model.clone());
    let prompted = config
        .prompts
        .values()
        .flat_map(|p| std::iter::once(p).chain(p.versions.values()))
        .filter_map(|p| p.model.clone());
    for model in grouped.chain(prompted) {
        if !models.iter().any(|(m, _)| *m == model) {
            let owner = snapshot
                .router
                .resolve(&model, None)
                .map_or_else(|_| "respan".to_string(), |r| r.provider.name.clone());
            models.push((model, owner));
        }
    }
    let data: Vec<_> = models
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    serde_json::to_vec(&json!({"object": "list", "data": data})).unwrap_or_default()
}
