//! A Realtime API session: the app's WebSocket upgrade routed by its `model`, sent to the
//! provider with its credentials, and, once the provider switches protocols, frames relayed
//! both ways untouched until either side closes.
//!
//! The relay is the sidecar's own (not Pingora's proxy loop) so that a shutdown can close a
//! session in-band: a session never ends by itself, and a drain that waited for it would
//! always run to its deadline. The server's frames are followed as they pass (`realtime::
//! frames`) for the usage of each `response.done`, which the trace adds up.

use super::ctx::RequestCtx;
use super::respond;
use super::Gateway;
use crate::body::JsonBody;
use crate::dispatch::request::pinned_provider;
use crate::drain::Phase;
use crate::error::GatewayError;
use crate::params::{self, RespanParams};
use crate::providers;
use crate::realtime::{self, frames};
use crate::state::Snapshot;
use crate::telemetry::record::{AttemptRecord, BodyEnd, Outcome, TokenUsage};
use crate::upstream::{ExchangeError, Upgrade};
use crate::wire::Wire;
use bytes::BytesMut;
use http::header::{HeaderValue, CONNECTION, UPGRADE};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

/// How long a session closed for a shutdown waits for both sides' close frames.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Serves one Realtime session; a failure before the upgrade is an error in OpenAI's shape.
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
    let req = session.req_header();
    if !session.is_upgrade_req() {
        return Err(GatewayError::Unsupported(
            "the Realtime API is a WebSocket: send `Upgrade: websocket`".into(),
        ));
    }
    let model = realtime::model_of(req.uri.query()).ok_or(GatewayError::MissingModel)?;
    let params = header_params(req)?;
    let pinned = pinned_provider(req)?;
    let route = snapshot.router.resolve(&model, pinned.as_deref())?;
    let provider = route.provider;
    let upstream_model = params
        .model_name_map
        .as_ref()
        .and_then(|m| m.get(&model))
        .map_or(route.upstream_model, String::as_str);
    let gateway_auth = snapshot.config.auth.is_some();
    let creds = providers::credentials(provider, &model, upstream_model, &params, gateway_auth)?;
    let path = realtime::upstream_path(
        provider.kind,
        &creds.base_url.path,
        req.uri.query(),
        upstream_model,
        creds.api_version,
    )?;
    let head = upstream_head(req, &path, provider, &creds)?;
    let record = &mut ctx.record;
    record.requested_model = Some(model.as_str().into());
    record.subject.customer_identifier =
        params.customer_or(record.subject.customer_identifier.take());
    let served = &mut record.served;
    served.model_label = route.metric_label.into();
    served.provider = provider.name.as_str().into();
    served.provider_type = provider.kind.as_str();
    served.upstream_model = upstream_model.into();
    served.attempts = 1;
    let server = &snapshot.config.server;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + server.upstream_timeout;
    let answer = async {
        let peer = gw
            .upstream
            .peer(&creds.base_url, server.connect_timeout)
            .await?;
        gw.upstream.upgrade(&peer, &head, deadline).await
    };
    let answer = answer.await;
    let attempt = AttemptRecord {
        model: model.as_str().into(),
        provider: provider.name.as_str().into(),
        label: route.metric_label.into(),
        outcome: match &answer {
            Ok(a) => Outcome::of_status(a.head.status.as_u16()),
            Err(e) => e.outcome(),
        },
        status_code: answer.as_ref().ok().map(|a| a.head.status.as_u16()),
        error: answer.as_ref().err().map(ToString::to_string),
        latency: started.elapsed(),
    };
    ctx.record.attempts.push(attempt);
    let upgrade = answer.map_err(|e| match e {
        ExchangeError::Timeout => GatewayError::UpstreamTimeout(server.upstream_timeout),
        other => GatewayError::NoUpstream(other.to_string()),
    })?;
    if upgrade.head.status.as_u16() != 101 {
        refused(session, ctx, upgrade, deadline).await;
        return Ok(());
    }
    relay(gw, session, ctx, upgrade).await;
    Ok(())
}

/// Respan parameters of a session: only headers can carry them (the upgrade has no body).
fn header_params(req: &RequestHeader) -> Result<RespanParams, GatewayError> {
    let header = |name: &str| req.headers.get(name).map(|v| v.as_bytes());
    let headers = [
        ("X-Data-Respan-Params", header("x-data-respan-params")),
        (
            "X-Data-Keywordsai-Params",
            header("x-data-keywordsai-params"),
        ),
    ];
    let extracted = params::extract(&mut JsonBody::default(), headers, Wire::OpenAi)?;
    Ok(extracted.params)
}

/// The app's upgrade request as the provider gets it: its path, `Host` and key, and the
/// upgrade headers (hop-by-hop, so dropped with the rest, then put back).
fn upstream_head(
    req: &RequestHeader,
    path: &str,
    provider: &crate::config::ProviderConfig,
    creds: &providers::Credentials<'_>,
) -> Result<RequestHeader, GatewayError> {
    let mut head = req.clone();
    let uri = path
        .parse::<http::Uri>()
        .map_err(|e| GatewayError::invalid_field("model", e.to_string()))?;
    head.set_uri(uri);
    providers::prepare_upstream_header(&mut head, provider, creds)?;
    let put = |head: &mut RequestHeader, name, value: &'static str| {
        head.insert_header(name, HeaderValue::from_static(value))
            .map_err(|e| GatewayError::NoUpstream(e.to_string()))
    };
    put(&mut head, UPGRADE, "websocket")?;
    put(&mut head, CONNECTION, "Upgrade")?;
    Ok(head)
}

/// The provider answered the upgrade with something else (401, 404, 426, ...): relayed as
/// an ordinary answer.
async fn refused(
    session: &mut Session,
    ctx: &mut RequestCtx,
    upgrade: Upgrade,
    deadline: tokio::time::Instant,
) {
    let mut head = http::Response::new(()).into_parts().0;
    head.status = upgrade.head.status;
    for (name, value) in upgrade.head.headers.iter() {
        if providers::relays_back(name.as_str()) && name != http::header::TRANSFER_ENCODING {
            head.headers.append(name, value.clone());
        }
    }
    let body = match upgrade.refusal_body(deadline).await {
        Ok(body) => body,
        Err(e) => {
            let e = GatewayError::NoUpstream(e.to_string());
            respond::error(session, ctx, &e).await;
            return;
        }
    };
    crate::head::frame(&mut head, Some(body.len()));
    respond::add_respan_headers(&mut head, ctx);
    ctx.record.error = Some(format!(
        "the provider refused the upgrade ({})",
        head.status
    ));
    if let Err(e) = respond::write_whole(session, head, body).await {
        tracing::debug!(request_id = %ctx.request_id, "client went away: {e}");
    }
}

/// Switches the app's connection to the WebSocket and relays frames until a side closes or
/// a shutdown closes both.
async fn relay(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx, upgrade: Upgrade) {
    let Upgrade {
        head: answer,
        stream,
        early,
    } = upgrade;
    let mut head = http::Response::new(()).into_parts().0;
    head.status = answer.status;
    for (name, value) in answer.headers.iter() {
        let n = name.as_str();
        if providers::relays_back(n) || n == "upgrade" || n == "connection" {
            head.headers.append(name, value.clone());
        }
    }
    respond::add_respan_headers(&mut head, ctx);
    if let Err(e) = respond::write_head(session, head).await {
        ctx.record.body_end = BodyEnd::ClientGone;
        tracing::debug!(request_id = %ctx.request_id, "client went away: {e}");
        return;
    }
    // A session may be quiet for minutes (a user thinking): only its ends end it.
    session.set_read_timeout(None);
    let (upstream_read, upstream_write) = tokio::io::split(stream);
    let mut sides = Sides {
        upstream_read,
        upstream_write,
        frames: frames::FrameReader::new(realtime::USAGE_EVENT),
        usage: None,
    };
    let end = sides.run(gw, session, early).await;
    ctx.record.usage = sides.usage;
    ctx.record.body_end = end;
}

/// The two directions of a session.
struct Sides {
    upstream_read: ReadHalf<pingora::protocols::Stream>,
    upstream_write: WriteHalf<pingora::protocols::Stream>,
    /// The provider's frames, read for their usage.
    frames: frames::FrameReader,
    usage: Option<TokenUsage>,
}

impl Sides {
    async fn run(&mut self, gw: &Gateway, session: &mut Session, early: bytes::Bytes) -> BodyEnd {
        if !early.is_empty() && self.relay_to_app(session, early).await.is_err() {
            return BodyEnd::ClientGone;
        }
        let mut draining = std::pin::pin!(gw.drain.reached(Phase::Draining));
        let mut closing: Option<tokio::time::Instant> = None;
        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            let close_by = async {
                match closing {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut draining, if closing.is_none() => {
                    // Both sides are told the sidecar is going away; their close frames
                    // are relayed while it waits.
                    let _ = session
                        .write_response_body(Some(frames::going_away(false).into()), false)
                        .await;
                    let _ = self.upstream_write.write_all(&frames::going_away(true)).await;
                    closing = Some(tokio::time::Instant::now() + CLOSE_WAIT);
                }
                _ = close_by => return BodyEnd::ShutDown,
                read = session.read_request_body() => match read {
                    Ok(Some(piece)) => {
                        if self.upstream_write.write_all(&piece).await.is_err() {
                            return BodyEnd::UpstreamFailed;
                        }
                    }
                    // The app closed its connection.
                    Ok(None) | Err(_) => {
                        let _ = self.upstream_write.shutdown().await;
                        return if closing.is_some() { BodyEnd::ShutDown } else { BodyEnd::Complete };
                    }
                },
                read = self.upstream_read.read_buf(&mut buf) => match read {
                    Ok(n) if n > 0 => {
                        let piece = buf.split().freeze();
                        if self.relay_to_app(session, piece).await.is_err() {
                            return BodyEnd::ClientGone;
                        }
                    }
                    // The provider closed the session (after its close frame, or not).
                    _ => {
                        let _ = session.write_response_body(None, true).await;
                        return if closing.is_some() || self.frames.closed {
                            BodyEnd::Complete
                        } else {
                            BodyEnd::UpstreamFailed
                        };
                    }
                },
            }
        }
    }

    /// Relays the provider's bytes to the app, reading the usage of each `response.done`.
    async fn relay_to_app(
        &mut self,
        session: &mut Session,
        piece: bytes::Bytes,
    ) -> pingora::Result<()> {
        let usage = &mut self.usage;
        self.frames.feed(&piece, &mut |message| {
            if let Some(u) = realtime::usage(message) {
                realtime::add(usage, u);
            }
        });
        session.write_response_body(Some(piece), false).await
    }
}
