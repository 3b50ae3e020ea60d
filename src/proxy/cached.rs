//! A model call's use of the response cache: looked up once its route is known; a hit is
//! answered here, with no upstream call, as a stream or a whole answer as the request asks;
//! a miss leaves a slot the relay fills.

use super::ctx::RequestCtx;
use super::respond;
use crate::cache::{self, key, Cached, Entry, Lookup, ResponseCache};
use crate::config::CacheConfig;
use crate::dispatch::request::ModelRequest;
use crate::routing::Route;
use crate::telemetry::record::CacheUse;
use crate::translate::openai::StreamOptions;
use crate::translate::replay;
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::Duration;

/// The `x-respan-cache` header.
pub const CACHE_HEADER: http::HeaderName = http::HeaderName::from_static("x-respan-cache");

/// Looks the request up if it may use the cache (waiting at most `wait` for an identical
/// request in flight). A hit is answered (true); a miss notes the slot its answer goes to.
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
    let by_customer = request
        .params
        .cache_options
        .as_ref()
        .and_then(|o| o.cache_by_customer)
        .unwrap_or(false);
    let scope = key::Scope {
        ingress: request.ingress,
        provider: &route.provider.name,
        model: route.upstream_model,
        customer: by_customer
            .then_some(ctx.record.subject.customer_identifier.as_deref())
            .flatten(),
    };
    let ttl = request.params.cache_ttl.map(Duration::from_secs);
    let entry = Entry {
        key: key::of(&request.body, &scope),
        ttl: ttl.unwrap_or(config.default_ttl),
        ingress: request.ingress,
    };
    match cache.lookup(entry, wait).await {
        Lookup::Hit(hit) => {
            ctx.record.omit_trace = request
                .params
                .cache_options
                .as_ref()
                .and_then(|o| o.omit_log)
                .unwrap_or(false);
            answer(session, ctx, request, &hit).await;
            true
        }
        Lookup::Miss(mut slot) => {
            if request.stream {
                slot.expect_stream();
            }
            ctx.record.cache = CacheUse::Miss;
            ctx.cache_slot = Some(slot);
            false
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
    match streamed {
        Some(events) => {
            ctx.record.output.stream = true;
            ctx.record.output.push(&events);
            respond::whole(session, ctx, 200, respond::EVENT_STREAM, events).await;
        }
        None => {
            ctx.record.output.push(&hit.body);
            respond::json(session, ctx, 200, hit.body.clone()).await;
        }
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
