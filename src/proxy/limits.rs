//! What one client may make the sidecar hold, checked on every request before anything else:
//! the size of its head and the number of requests in flight.
//!
//! Pingora reads a request head of up to 1 MiB (its own fixed bound); the configured
//! `max_header_bytes` is checked here on the head it read, so a larger one is a 431 in the
//! caller's format rather than Pingora's bare 400. Requests in flight are those whose context
//! lives (`respan_inflight_requests`, which counts this one).

use crate::config::ServerConfig;
use crate::error::GatewayError;
use crate::telemetry::metrics::metrics;
use pingora::proxy::Session;

/// How long an app's idle keep-alive connection is kept (nginx's `keepalive_timeout`).
const KEEPALIVE_IDLE_SECS: u64 = 75;

/// Bounds how long the app's connection idles after this request.
pub fn bound_keepalive(session: &mut Session) {
    session.set_keepalive(Some(KEEPALIVE_IDLE_SECS));
}

/// Refuses a request whose head is too large, or that comes when the sidecar is full.
/// A passthrough body is bounded as it streams ([`body_within`]); a model call's as it is read.
pub fn check(server: &ServerConfig, session: &Session) -> Result<(), GatewayError> {
    if head_size(session) > server.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge {
            limit: server.max_header_bytes,
        });
    }
    let in_flight = usize::try_from(metrics().inflight.get()).unwrap_or(0);
    if in_flight > server.max_concurrent_requests {
        return Err(GatewayError::Overloaded {
            limit: server.max_concurrent_requests,
        });
    }
    Ok(())
}

/// The size of a head as it came on the wire: HTTP/1's own bytes, as Pingora read them;
/// over HTTP/2 (no such bytes), its request line and each `name: value` counted.
fn head_size(session: &Session) -> usize {
    if let Some(h1) = session.as_downstream().as_http1() {
        return h1.get_headers_raw_bytes().len();
    }
    let req = session.req_header();
    let target = req.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method.as_str().len() + target + " HTTP/1.1\r\n".len() + 1;
    let fields: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + fields + 2
}

/// Whether a passthrough body of `declared` bytes (its `Content-Length`), or `so_far` bytes
/// read, is within `max_request_body_bytes`.
pub fn body_within(server: &ServerConfig, declared: Option<usize>, so_far: usize) -> bool {
    declared.unwrap_or(0) <= server.max_request_body_bytes
        && so_far <= server.max_request_body_bytes
}
