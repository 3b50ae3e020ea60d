//! The API port: Pingora's `ProxyHttp` phases, each delegating in a few lines.
//!
//! `request_filter` decides per endpoint: model calls and local answers are served there
//! (returning `true`, so Pingora's proxy loop is skipped); passthrough paths continue into the
//! proxy loop (`upstream_peer`, `upstream_request_filter`, `response_filter`). `logging`
//! records every request, however it was served.

mod answer;
mod attempts;
mod auth;
mod client_gone;
mod ctx;
mod model_call;
mod passthrough;
mod prepare;
mod relay;
mod request;
mod respond;

pub use ctx::RequestCtx;

use crate::dispatch::LatencyTracker;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::state::SharedState;
use crate::telemetry::metrics::metrics;
use crate::upstream::Upstream;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::Error;

/// The gateway's request handling, shared by every worker thread.
pub struct Gateway {
    state: SharedState,
    upstream: Upstream,
    /// Recent latency per model, for `least_latency` load balance groups.
    latency: LatencyTracker,
}

impl Gateway {
    /// `pool_size`: idle upstream connections kept for reuse (see [`Upstream::new`]).
    pub fn new(state: SharedState, pool_size: usize) -> Gateway {
        Gateway {
            state,
            upstream: Upstream::new(pool_size),
            latency: LatencyTracker::default(),
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// No downstream modules. Pingora's default is a response compression module, disabled,
    /// whose context is still built and whose filters still run on every request; answers go
    /// uncompressed to an app on the same pod.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let snapshot = self.state.load_full();
        let req = session.req_header();
        ctx.endpoint = Endpoint::classify(&req.method, req.uri.path());
        ctx.snapshot = Some(snapshot.clone());
        if let Err(e) = auth::check(snapshot.config.auth.as_ref(), req) {
            respond::error(session, ctx, &e).await;
            return Ok(true);
        }
        match ctx.endpoint {
            Endpoint::ChatCompletions
            | Endpoint::Embeddings
            | Endpoint::AnthropicMessages
            | Endpoint::AnthropicCountTokens
            | Endpoint::Gemini => model_call::serve(self, session, ctx, &snapshot).await,
            Endpoint::Models => {
                respond::json(session, ctx, 200, respond::models_list(&snapshot)).await;
            }
            Endpoint::Passthrough => match passthrough::begin(&snapshot, ctx) {
                Ok(()) => return Ok(false),
                Err(e) => respond::error(session, ctx, &e).await,
            },
            Endpoint::NotFound => {
                let req = session.req_header();
                let e = GatewayError::NotFound {
                    method: req.method.to_string(),
                    path: req.uri.path().to_string(),
                };
                respond::error(session, ctx, &e).await;
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        passthrough::peer(&self.upstream, ctx).await
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        passthrough::rewrite(upstream_request, ctx)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for (name, value) in respond::respan_headers(ctx) {
            upstream_response.insert_header(name, value)?;
        }
        Ok(())
    }

    /// A passthrough that failed: answered in OpenAI shape (502, or 504 on a timeout) unless
    /// the answer had already started.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let failure = passthrough::failure(e, ctx);
        let error_code = if session.response_written().is_none() {
            respond::error(session, ctx, &failure).await;
            failure.status()
        } else {
            0
        };
        FailToProxy {
            error_code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |h| h.status.as_u16());
        record(ctx, status);
    }
}

/// Counts a finished request in the metrics.
fn record(ctx: &RequestCtx, status: u16) {
    let served = &ctx.served;
    let model = non_empty(&served.model_label, "other");
    let provider = non_empty(&served.provider, "none");
    let endpoint = ctx.endpoint.label();
    let code = http::StatusCode::from_u16(status).ok();
    let code = code.as_ref().map_or("0", http::StatusCode::as_str);
    let m = metrics();
    m.requests
        .with_label_values(&[endpoint, model, provider, code])
        .inc();
    m.request_duration
        .with_label_values(&[endpoint, model, provider])
        .observe(ctx.started.elapsed().as_secs_f64());
    if let (true, Some(ttfb)) = (served.stream, served.time_to_first_byte) {
        m.time_to_first_token
            .with_label_values(&[model, provider])
            .observe(ttfb.as_secs_f64());
    }
}

fn non_empty<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
    }
}
