//! A model call (chat completions, embeddings, Anthropic messages, Gemini generateContent),
//! start to end, beside Pingora's proxy loop.
//!
//! The body is read whole (the model is in it), the Respan parameters are taken out, and the
//! attempt plan is run by `attempts` on Pingora's pooled connectors; the answer it settles on
//! is relayed (and translated) by `relay`. One loop owns retries, fallbacks and translation
//! for any body size, which the proxy loop (64 KiB replay limit, no retry once an answer was
//! read) cannot.

use super::admission;
use super::cached::answer_from_cache;
use super::ctx::RequestCtx;
use super::relay::relay;
use super::respond;
use super::Gateway;
use crate::dispatch::attempts::Attempts;
use crate::dispatch::request::{parse, pinned_provider, ModelRequest};
use crate::dispatch::Plan;
use crate::error::GatewayError;
use crate::prompts;
use crate::state::Snapshot;
use crate::stored_responses;
use crate::telemetry::record::{InputText, RequestRecord, Subject};
use crate::telemetry::Telemetry;
use crate::translate::transcript;
use bytes::Bytes;
use compact_str::CompactString;
use pingora::proxy::Session;

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
    // From here on, a client that closes its connection cancels the call at once.
    session.set_abort_on_close(true);
    let server = &snapshot.config.server;
    let mut request = parse(
        ctx.endpoint,
        &bytes,
        session.req_header(),
        server.max_json_depth,
    )?;
    let input = note_text(&mut ctx.record, &request, &bytes, &gw.telemetry);
    ctx.record.prompt_version = prompts::apply(&mut request, &snapshot.config, &gw.prompts).await?;
    ctx.record.prompt_id = request.params.prompt.as_ref().map(|p| p.prompt_id.clone());
    let responses = &snapshot.config.responses;
    ctx.keeping = stored_responses::recall(&gw.stored, responses, &mut request)
        .await?
        .map(Box::new);
    note_request(&mut ctx.record, &request, input);
    let plan = Plan::new(
        request.model.as_deref(),
        &request.params,
        &snapshot.config,
        &gw.latency,
        &mut rand::thread_rng(),
    )?;
    let pinned = pinned_provider(session.req_header())?;
    // An unknown model is answered before anything is counted or sent anywhere.
    let route = plan
        .models
        .first()
        .map(|first| snapshot.router.resolve(first, pinned.as_deref()))
        .transpose()?;
    admission::admit(
        &gw.limits,
        snapshot,
        ctx,
        (&request, route.as_ref()),
        bytes.len(),
    )
    .await?;
    let limit = gw.telemetry.capture_limit(&ctx.record);
    ctx.record.output.start(Some(request.ingress), false, limit);
    if let Some(route) = &route {
        let (cache, wait) = (
            &snapshot.config.cache,
            snapshot.config.server.upstream_timeout,
        );
        if answer_from_cache(&gw.cache, cache, wait, session, ctx, &request, route).await {
            return Ok(());
        }
    }
    let attempts = Attempts {
        upstream: &gw.upstream,
        latency: &gw.latency,
        snapshot,
        request: &request,
        pinned: pinned.as_deref(),
        circuits: &gw.circuits,
        transcript_limit: limit,
    };
    let settled = attempts.run(session, &mut ctx.record, &plan).await?;
    // Boxed, like the upstream call: the relay's future is kilobytes, and boxing it keeps
    // every enclosing future small (they are moved as a whole when awaited).
    Box::pin(relay(session, ctx, settled, &gw.upstream, &gw.drain)).await;
    Ok(())
}

/// Notes whether the request's text may be kept; when it may, returns its conversation as
/// the app sent it, for the trace: taken from the parsed body while its fields are at hand,
/// before a prompt template or a stored response fills it in.
fn note_text(
    record: &mut RequestRecord,
    request: &ModelRequest<'_>,
    bytes: &Bytes,
    telemetry: &Telemetry,
) -> Option<InputText> {
    record.disable_log = !telemetry.may_capture(request.params.disable_log.unwrap_or(false));
    if record.disable_log {
        return None;
    }
    transcript::conversation(request.ingress, &request.body, bytes)
}

/// What the record learns from the parsed request: the model asked for, who it is for, and
/// (when its text may be kept) its conversation.
fn note_request(record: &mut RequestRecord, request: &ModelRequest<'_>, input: Option<InputText>) {
    let p = &request.params;
    record.requested_model = request.model.as_deref().map(CompactString::from);
    record.format = Some(request.ingress);
    record.stream = request.stream;
    record.request_breakdown = p.request_breakdown.unwrap_or(false);
    record.subject = Subject {
        customer_identifier: p.customer_or(record.subject.customer_identifier.take()),
        customer_params: p
            .customer_params
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok()),
        thread_identifier: p.thread_identifier.clone(),
        custom_identifier: p.custom_identifier.clone(),
        metadata: p
            .metadata
            .as_ref()
            .map(Subject::metadata_strings)
            .unwrap_or_default(),
    };
    record.input = input;
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
