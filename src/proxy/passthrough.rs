//! Any other `/v1/...` path (files, audio, images, responses, ...): proxied untouched to the
//! first provider of type openai through Pingora's own proxy loop, which streams request and
//! answer bodies of any size. Only the path prefix, `Host` and the key are changed.

use super::ctx::RequestCtx;
use super::limits;
use crate::config::{ProviderConfig, ProviderKind};
use crate::dispatch::answer::is_event_stream;
use crate::error::GatewayError;
use crate::params::RespanParams;
use crate::providers;
use crate::state::Snapshot;
use crate::telemetry::record::InputText;
use crate::translate::usage::UsageTail;
use crate::upstream::Upstream;
use crate::wire::Wire;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType};

/// Picks the provider for a passthrough request and records it on the request; a JSON body
/// (the Responses API's, say) is captured up to `limit` for the trace's input.
pub fn begin(
    snapshot: &Snapshot,
    req: &RequestHeader,
    ctx: &mut RequestCtx,
    limit: usize,
) -> Result<(), GatewayError> {
    let provider = provider(snapshot).ok_or_else(|| GatewayError::NoProviderFor {
        path: req.uri.path().to_string(),
        kind: ProviderKind::OpenAi.as_str(),
    })?;
    let server = &snapshot.config.server;
    let declared = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if !limits::body_within(server, declared, 0) {
        return Err(GatewayError::BodyTooLarge {
            limit: server.max_request_body_bytes,
        });
    }
    let json = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json {
        ctx.record.format = Some(Wire::OpenAi);
        ctx.passthrough_input
            .start(Some(Wire::OpenAi), false, limit);
    }
    let served = &mut ctx.record.served;
    served.provider = provider.name.as_str().into();
    served.provider_type = provider.kind.as_str();
    served.model_label = "other".into();
    served.attempts = 1;
    Ok(())
}

fn provider(snapshot: &Snapshot) -> Option<&ProviderConfig> {
    snapshot.router.first_of_kind(ProviderKind::OpenAi)
}

fn snapshot(ctx: &RequestCtx) -> pingora::Result<&Snapshot> {
    ctx.snapshot
        .as_deref()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "request has no config snapshot"))
}

/// The peer to proxy to (`upstream_peer` phase).
pub async fn peer(upstream: &Upstream, ctx: &RequestCtx) -> pingora::Result<Box<HttpPeer>> {
    let snapshot = snapshot(ctx)?;
    let provider = provider(snapshot).ok_or_else(|| internal("no provider of type openai"))?;
    let base = provider
        .base_url
        .as_ref()
        .ok_or_else(|| internal("no base_url"))?;
    let server = &snapshot.config.server;
    let mut peer = upstream
        .peer(base, server.connect_timeout)
        .await
        .map_err(|e| Error::explain(ErrorType::ConnectError, e.to_string()))?;
    peer.options.read_timeout = Some(server.upstream_timeout);
    Ok(Box::new(peer))
}

/// Rewrites the upstream request (`upstream_request_filter` phase): `/v1/rest` becomes
/// `{base_url path}/rest`, and `Host` and the key become the provider's.
pub fn rewrite(req: &mut RequestHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    let snapshot = snapshot(ctx)?;
    let provider = provider(snapshot).ok_or_else(|| internal("no provider of type openai"))?;
    let no_params = RespanParams::default();
    let creds =
        providers::credentials(provider, "", "", &no_params, snapshot.config.auth.is_some())
            .map_err(internal)?;
    let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let rest = path_and_query.strip_prefix("/v1").unwrap_or(path_and_query);
    let uri = format!("{}{rest}", creds.base_url.path)
        .parse::<http::Uri>()
        .map_err(|e| Error::explain(ErrorType::InvalidHTTPHeader, e.to_string()))?;
    req.set_uri(uri);
    providers::prepare_upstream_header(req, provider, &creds).map_err(internal)
}

fn internal(e: impl ToString) -> Box<Error> {
    Error::explain(ErrorType::InternalError, e.to_string())
}

/// Starts watching a passthrough answer: a stream or not, captured up to `limit`.
pub fn observe_head(head: &ResponseHeader, ctx: &mut RequestCtx, limit: usize) {
    let sse = is_event_stream(&head.headers);
    ctx.record.stream = sse;
    ctx.record.output.start(None, sse, limit);
    ctx.passthrough_tail = Some(UsageTail::new(Wire::OpenAi));
}

/// Counts a piece of a passthrough request body against `max_request_body_bytes` (a chunked
/// body declares no length): past it, the proxying stops with a 413.
pub fn limit_body(piece: Option<&[u8]>, ctx: &mut RequestCtx) -> pingora::Result<()> {
    ctx.passthrough_body_bytes += piece.map_or(0, <[u8]>::len);
    let within = snapshot(ctx).map_or(true, |s| {
        limits::body_within(&s.config.server, None, ctx.passthrough_body_bytes)
    });
    if within {
        return Ok(());
    }
    Err(Error::explain(
        ErrorType::HTTPStatus(413),
        "request body over max_request_body_bytes",
    ))
}

/// A piece of a passthrough request body going by (as it is). A whole body becomes the
/// trace's input; one cut at the capture limit is not JSON, so it is left out.
pub fn observe_request_body(piece: Option<&[u8]>, end: bool, ctx: &mut RequestCtx) {
    let input = &mut ctx.passthrough_input;
    if !input.is_on() {
        return;
    }
    if let Some(piece) = piece {
        input.push(piece);
    }
    if end && !input.truncated {
        ctx.record.input = Some(InputText::Body(input.take()));
    }
}

/// A piece of a passthrough answer going by (as it is: nothing is changed).
pub fn observe_body(piece: Option<&[u8]>, end: bool, ctx: &mut RequestCtx) {
    let Some(tail) = ctx.passthrough_tail.as_mut() else {
        return;
    };
    if let Some(piece) = piece.filter(|p| !p.is_empty()) {
        tail.feed(piece);
        ctx.record.output.push(piece);
        ctx.record.first_byte();
    }
    if end {
        ctx.record.usage = tail.usage();
    }
}

/// The gateway error for a failed passthrough, for an answer in OpenAI shape.
pub fn failure(e: &Error, ctx: &RequestCtx) -> GatewayError {
    let timeout = ctx
        .snapshot
        .as_ref()
        .map(|s| s.config.server.upstream_timeout)
        .unwrap_or_default();
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            GatewayError::UpstreamTimeout(timeout)
        }
        ErrorType::HTTPStatus(413) => GatewayError::BodyTooLarge {
            limit: ctx
                .snapshot
                .as_ref()
                .map_or(0, |s| s.config.server.max_request_body_bytes),
        },
        _ => GatewayError::NoUpstream(e.etype().as_str().to_string()),
    }
}
