//! The API port: Pingora's `ProxyHttp` phases, each delegating in a few lines.
//!
//! `request_filter` decides per endpoint: model calls and local answers are served there
//! (returning `true`, so Pingora's proxy loop is skipped); passthrough paths continue into the
//! proxy loop (`upstream_peer`, `upstream_request_filter`, `response_filter`). `logging`
//! records every request, however it was served.

mod admission;
pub(crate) mod auth;
mod cached;
mod caller;
mod ctx;
mod limits;
mod model_call;
mod passthrough;
mod realtime;
mod relay;
mod respond;
mod stored_response;

pub use ctx::RequestCtx;

use crate::allocator::Busy;
use crate::cache::ResponseCache;
use crate::config::ProviderKind;
use crate::dispatch::LatencyTracker;
use crate::drain::Drain;
use crate::endpoint::{Endpoint, StoredResponseCall};
use crate::error::GatewayError;
use crate::health::Circuits;
use crate::limits::Limits;
use crate::prompts::managed::ManagedPrompts;
use crate::state::{SharedState, Snapshot};
use crate::stored_responses::StoredResponses;
use crate::telemetry::record::{AttemptRecord, Outcome, RequestRecord};
use crate::telemetry::Telemetry;
use crate::upstream::Upstream;
use async_trait::async_trait;
use compact_str::CompactString;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::Error;
use std::sync::Arc;

/// The gateway's request handling, shared by every worker thread.
pub struct Gateway {
    state: SharedState,
    upstream: Upstream,
    /// Recent latency per model, for `least_latency` load balance groups.
    latency: LatencyTracker,
    telemetry: Arc<Telemetry>,
    /// Tells streams when a shutdown's grace period is spent.
    drain: Drain,
    /// Answers kept for `cache_enabled` requests.
    cache: Arc<ResponseCache>,
    /// Prompts fetched from the Respan platform.
    prompts: Arc<ManagedPrompts>,
    /// Responses API answers kept for `previous_response_id`.
    stored: Arc<StoredResponses>,
    /// Each provider and model's circuit (shared with the admin port's `/api/health`).
    circuits: Arc<Circuits>,
    /// The counts of the `limits:` rules (shared with the admin port's `/api/limits`).
    limits: Arc<Limits>,
}

/// What the gateway keeps across requests and reloads, made at start.
pub struct Kept {
    pub cache: ResponseCache,
    pub prompts: Arc<ManagedPrompts>,
    pub stored: StoredResponses,
    pub circuits: Arc<Circuits>,
    pub limits: Arc<Limits>,
}

impl Gateway {
    /// `pool_size`: idle upstream connections kept for reuse (see [`Upstream::new`]).
    pub fn new(
        state: SharedState,
        pool_size: usize,
        telemetry: Arc<Telemetry>,
        drain: Drain,
        kept: Kept,
    ) -> Gateway {
        Gateway {
            state,
            upstream: Upstream::new(pool_size),
            latency: LatencyTracker::default(),
            telemetry,
            drain,
            cache: Arc::new(kept.cache),
            prompts: kept.prompts,
            stored: Arc::new(kept.stored),
            circuits: kept.circuits,
            limits: kept.limits,
        }
    }
}

impl Gateway {
    /// Starts a passthrough (`false`: Pingora's proxy loop goes on), or answers why not.
    async fn pass_through(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> bool {
        let limit = self.telemetry.capture_limit(&ctx.record);
        match passthrough::begin(snapshot, session.req_header(), ctx, limit) {
            Ok(()) => false,
            Err(e) => {
                respond::error(session, ctx, &e).await;
                true
            }
        }
    }

    /// A stored-response path for a response not kept here: OpenAI may hold it, on a `/v1/`
    /// path, if an OpenAI provider is configured; else it is not found.
    async fn not_kept(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> bool {
        let req = session.req_header();
        let path = req.uri.path();
        let openai = snapshot
            .router
            .first_of_kind(ProviderKind::OpenAi)
            .is_some();
        if openai && path.starts_with("/v1/") {
            ctx.endpoint = Endpoint::Passthrough;
            ctx.record.endpoint = Endpoint::Passthrough.label();
            return self.pass_through(session, ctx, snapshot).await;
        }
        let id = StoredResponseCall::parse(&req.method, path).map_or("", |c| c.id());
        let e = GatewayError::ResponseNotFound(id.to_string());
        respond::error(session, ctx, &e).await;
        true
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(Busy::begin(|| {
            let telemetry = self.telemetry.clone();
            move || telemetry.compact_recent()
        }))
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
        begin_record(&mut ctx.record, ctx.endpoint, req);
        if let Err(e) = limits::check(&snapshot.config.server, session) {
            respond::error(session, ctx, &e).await;
            return Ok(true);
        }
        limits::bound_keepalive(session);
        let req = session.req_header();
        match auth::check(snapshot.config.auth.as_ref(), req) {
            Ok(key) => {
                ctx.record.subject.customer_identifier = key
                    .and_then(|k| k.customer_identifier.as_deref())
                    .map(CompactString::from);
                ctx.auth_key = key.map(|k| k.name.clone());
            }
            Err(e) => {
                respond::error(session, ctx, &e).await;
                return Ok(true);
            }
        }
        match ctx.endpoint {
            Endpoint::ChatCompletions
            | Endpoint::Responses
            | Endpoint::Embeddings
            | Endpoint::AnthropicMessages
            | Endpoint::AnthropicCountTokens
            | Endpoint::Gemini => model_call::serve(self, session, ctx, &snapshot).await,
            Endpoint::Models => {
                respond::json(session, ctx, 200, respond::models_list(&snapshot)).await;
            }
            Endpoint::StoredResponse => {
                if !stored_response::serve(&self.stored, session, ctx, &snapshot).await {
                    return Ok(self.not_kept(session, ctx, &snapshot).await);
                }
            }
            Endpoint::Realtime => realtime::serve(self, session, ctx, &snapshot).await,
            Endpoint::Passthrough => return Ok(self.pass_through(session, ctx, &snapshot).await),
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
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        respond::close_if_draining(session);
        // The provider's `Server` header names what the gateway stands in front of.
        upstream_response.remove_header("server");
        for (name, value) in respond::respan_headers(ctx) {
            upstream_response.insert_header(name, value)?;
        }
        let limit = self.telemetry.capture_limit(&ctx.record);
        passthrough::observe_head(upstream_response, ctx, limit);
        Ok(())
    }

    /// A passthrough request's body as it goes by, untouched: kept (bounded) for its trace.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        passthrough::limit_body(body.as_deref(), ctx)?;
        passthrough::observe_request_body(body.as_deref(), end_of_stream, ctx);
        Ok(())
    }

    /// A passthrough answer's body as it goes by, untouched: kept (bounded) for its trace,
    /// and its end for its usage.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<std::time::Duration>> {
        passthrough::observe_body(body.as_deref(), end_of_stream, ctx);
        Ok(None)
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

    /// Every request ends here, however it was served: its record becomes its metrics, its
    /// log line and its trace.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |h| h.status.as_u16());
        let mut record = std::mem::take(&mut ctx.record);
        record.status = status;
        if ctx.endpoint == Endpoint::Passthrough {
            passthrough_attempt(&mut record, status, e);
        }
        let trace = self.telemetry.finish(ctx.request_id.to_string(), record);
        if let Some(mut ticket) = ctx.limit_ticket.take() {
            admission::settle(&self.limits, &mut ticket, &trace).await;
        }
    }
}

/// What the record knows from the request head alone.
fn begin_record(record: &mut RequestRecord, endpoint: Endpoint, req: &RequestHeader) {
    record.endpoint = endpoint.label();
    record.path = format!("{} {}", req.method, req.uri.path());
    if let Some(parent) = req.headers.get("traceparent") {
        record.ids.join(parent.as_bytes());
    }
}

/// A passthrough's one upstream call, as far as the proxy loop tells it.
fn passthrough_attempt(record: &mut RequestRecord, status: u16, e: Option<&Error>) {
    if record.served.provider.is_empty() {
        return;
    }
    let failed = e.map(|e| e.etype().as_str().to_string());
    record.error = record.error.take().or_else(|| failed.clone());
    record.attempts.push(AttemptRecord {
        model: CompactString::default(),
        provider: record.served.provider.clone(),
        label: record.served.model_label.clone(),
        outcome: if failed.is_some() {
            Outcome::Broken
        } else {
            Outcome::of_status(status)
        },
        status_code: (status > 0 && failed.is_none()).then_some(status),
        error: failed,
        latency: record.started.elapsed(),
    });
}
