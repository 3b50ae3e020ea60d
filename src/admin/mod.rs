//! The admin port: `/metrics`, `/healthz`, `/readyz`. A separate listener, so scraping and
//! probes never compete with app traffic and can be exposed differently.

mod readiness;

pub use readiness::{Readiness, ReadinessProbe};

use crate::telemetry::metrics::metrics;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// Serves the admin endpoints.
pub struct AdminApp {
    readiness: Readiness,
}

impl AdminApp {
    pub fn new(readiness: Readiness) -> AdminApp {
        AdminApp { readiness }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        match path {
            "/metrics" => reply(200, "text/plain; version=0.0.4", metrics().encode()),
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.readiness.is_ready() => reply(200, "text/plain", b"ready\n".to_vec()),
            "/readyz" => reply(503, "text/plain", b"not ready\n".to_vec()),
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

/// A complete answer; the length is set so the connection stays open for the next scrape.
fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(Vec::new());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    let headers = response.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    *response.body_mut() = body;
    response
}
