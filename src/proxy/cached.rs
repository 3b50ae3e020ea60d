//! A model call's use of the response cache: looked up once its route is known; a hit is
//! answered here, with no upstream call, as a stream or a whole answer as the request asks;
//! so is a request following an identical stream in flight; a miss leaves a slot the relay
//! fills.

use super::ctx::RequestCtx;
use super::respond;
use crate::cache::tee::{End, Next, Telling};
use crate::cache::{self, key, Cached, Entry, Follower, Lookup, ResponseCache, Slot};
use crate::config::CacheConfig;
use crate::dispatch::request::ModelRequest;
use crate::error::{stream_error_event, UPSTREAM_FAILED_CODE, UPSTREAM_FAILED_STATUS};
use crate::head::{frame, head};
use crate::routing::Route;
use crate::telemetry::record::{BodyEnd, CacheUse};
use crate::translate::openai::StreamOptions;
use crate::translate::replay;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Looks the request up if it may use the cache (waiting at most `wait` for an identical
/// request in flight). A hit, or a stream followed to its end, is answered (true); a miss
/// notes the slot its answer goes to.
pub async fn answer_from_cache(
    cache: &Arc<ResponseCache>,
    config: &CacheConfig,
    wait: Duration,
    session: &mut Session,
    ctx: &mut RequestCtx,
    request: &ModelRequest<'_>,
    route: &Route<'_>,
) -> bool {
    if !cache::eligible(request) {
        return false;
    }
    let options = request.params.cache_options.as_ref();
    let by_customer = options.and_then(|o| o.cache_by_customer).unwrap_or(false);
    let by_model = options.and_then(|o| o.is_cached_by_model).unwrap_or(true);
    let omit_log = options.and_then(|o| o.omit_log).unwrap_or(false);
    let scope = key::Scope {
        ingress: request.ingress,
        route: by_model.then_some((route.provider.name.as_str(), route.upstream_model)),
        customer: by_customer
            .then_some(ctx.record.subject.customer_identifier.as_deref())
            .flatten(),
    };
    let ttl = request.params.cache_ttl.map(Duration::from_secs);
    let entry = Entry {
        key: key::of(&request.body, &scope),
        ttl: ttl.unwrap_or(config.default_ttl).min(cache::MAX_TTL),
        ingress: request.ingress,
        stream: request.stream.then(|| Telling {
            include_usage: include_usage(request),
            breakdown: ctx.record.request_breakdown,
        }),
    };
    let slot = match cache.lookup(entry, wait).await {
        Lookup::Hit(hit) => {
            ctx.record.omit_trace = omit_log;
            answer(session, ctx, request, &hit).await;
            return true;
        }
        Lookup::Follow(follower) => {
            match follow(session, ctx, follower, Instant::now() + wait).await {
                Ok(()) => {
                    ctx.record.omit_trace = omit_log;
                    return true;
                }
                Err(slot) => slot,
            }
        }
        Lookup::Miss(slot) => slot,
    };
    ctx.record.cache = CacheUse::Miss;
    ctx.cache_slot = Some(slot);
    false
}

/// Relays the stream of an identical request in flight as it comes: a hit, once it has
/// started. One that fails (or is silent until `deadline`) before it started leaves this
/// request to ask for itself (its slot); after, the app gets an in-band error. Once started,
/// the stream runs as long as the leader's does (the leader's own limits bound it).
async fn follow(
    session: &mut Session,
    ctx: &mut RequestCtx,
    follower: Follower,
    deadline: Instant,
) -> Result<(), Box<Slot>> {
    let mut seen = 0;
    loop {
        let next = follower
            .tee
            .next(seen, (seen == 0).then_some(deadline))
            .await;
        let failed = match next {
            Next::Pieces(pieces, served) => {
                if seen == 0 && !start_followed(session, ctx, served).await {
                    break;
                }
                seen += pieces.len();
                let data = joined(pieces);
                ctx.record.output.push(&data);
                if session
                    .write_response_body(Some(data), false)
                    .await
                    .is_err()
                {
                    ctx.record.body_end = BodyEnd::ClientGone;
                    break;
                }
                continue;
            }
            Next::Ended(End::Complete(usage)) if seen > 0 => {
                ctx.record.usage = usage;
                if session.write_response_body(None, true).await.is_err() {
                    ctx.record.body_end = BodyEnd::ClientGone;
                }
                break;
            }
            Next::Ended(_) | Next::TimedOut if seen == 0 => {
                return Err(follower.ask_for_itself());
            }
            Next::Ended(_) | Next::TimedOut => {
                "the identical request whose stream this one followed failed during the answer"
            }
        };
        let event = stream_error_event(
            ctx.endpoint.ingress(),
            UPSTREAM_FAILED_STATUS,
            UPSTREAM_FAILED_CODE,
            failed,
        );
        ctx.record.output.push(&event);
        ctx.record.error = Some(failed.to_string());
        ctx.record.body_end = BodyEnd::UpstreamFailed;
        let _ = session.write_response_body(Some(event.into()), true).await;
        break;
    }
    if ctx.record.body_end != BodyEnd::Complete {
        session.set_keepalive(None);
    }
    follower.followed();
    Ok(())
}

/// Writes the head of a followed stream, recorded as a hit served by what serves the
/// stream; false if the app is gone.
async fn start_followed(
    session: &mut Session,
    ctx: &mut RequestCtx,
    served: crate::telemetry::record::Served,
) -> bool {
    ctx.record.cache = CacheUse::Hit;
    ctx.record.served = served;
    ctx.record.served.attempts = 0;
    ctx.record.stream = true;
    ctx.record.output.stream = true;
    ctx.record.first_byte();
    let mut head = head(StatusCode::OK);
    head.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(respond::EVENT_STREAM),
    );
    frame(&mut head, None);
    respond::add_respan_headers(&mut head, ctx);
    let written = respond::write_head(session, head).await.is_ok();
    if !written {
        ctx.record.body_end = BodyEnd::ClientGone;
    }
    written
}

/// Pieces as one buffer (one write).
fn joined(pieces: Vec<Bytes>) -> Bytes {
    match <[Bytes; 1]>::try_from(pieces) {
        Ok([one]) => one,
        Err(pieces) => {
            let mut all = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
            for piece in &pieces {
                all.extend_from_slice(piece);
            }
            all.freeze()
        }
    }
}

/// Answers with a stored answer (told as a stream if the request streams), and records it as
/// a hit: what served it first, its usage, no upstream call.
async fn answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    request: &ModelRequest<'_>,
    hit: &Cached,
) {
    ctx.record.cache = CacheUse::Hit;
    ctx.record.served = hit.served.clone();
    ctx.record.served.attempts = 0;
    ctx.record.usage = hit.usage;
    let streamed = request
        .stream
        .then(|| replay::stream(request.ingress, &hit.body, include_usage(request)))
        .flatten();
    ctx.record.first_byte();
    // The trace reads the stored answer itself: it is the whole answer the replayed events
    // were made from, smaller, and read without framing them again.
    ctx.record.output.push(&hit.body);
    match streamed {
        Some(events) => respond::whole(session, ctx, 200, respond::EVENT_STREAM, events).await,
        None => respond::json(session, ctx, 200, hit.body.clone()).await,
    }
}

/// Whether an OpenAI streaming request asked for the usage chunk.
fn include_usage(request: &ModelRequest<'_>) -> bool {
    request
        .body
        .get_as::<Option<StreamOptions>>("stream_options")
        .ok()
        .flatten()
        .flatten()
        .is_some_and(|o| o.include_usage)
}
