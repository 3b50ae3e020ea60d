//! The admin port: `/metrics`, `/healthz`, `/readyz`, `/config`, `/api/traces`,
//! `/api/health`, `/api/limits`, `/api/stats`, and the Logs page at `/`. A separate listener, so scraping and probes never compete with app traffic
//! and can be exposed differently.

mod config_view;
mod listener;
mod readiness;
mod traces;

pub use listener::AdminListener;
pub use readiness::{Readiness, ReadinessProbe};

use crate::health::Circuits;
use crate::limits::Limits;
use crate::state::SharedState;
use crate::telemetry::metrics::metrics;
use crate::telemetry::Telemetry;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

const LOGS_PAGE: &str = include_str!("logs.html");

/// Serves the admin endpoints.
pub struct AdminApp {
    readiness: Readiness,
    state: SharedState,
    telemetry: Arc<Telemetry>,
    circuits: Arc<Circuits>,
    limits: Arc<Limits>,
}

impl AdminApp {
    pub fn new(
        readiness: Readiness,
        state: SharedState,
        telemetry: Arc<Telemetry>,
        circuits: Arc<Circuits>,
        limits: Arc<Limits>,
    ) -> AdminApp {
        AdminApp {
            readiness,
            state,
            telemetry,
            circuits,
            limits,
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let uri = &session.req_header().uri;
        let (path, query) = (uri.path(), uri.query().unwrap_or(""));
        if !matches!(path, "/healthz" | "/readyz") && !self.authorized(session.req_header()) {
            let mut denied = reply(401, "text/plain", b"admin_token required\n".to_vec());
            denied.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return denied;
        }
        match path {
            // The Logs page: one self-contained file, assets and all, in the binary.
            "/" => reply(
                200,
                "text/html; charset=utf-8",
                LOGS_PAGE.as_bytes().to_vec(),
            ),
            "/config" => reply(
                200,
                "application/json",
                config_view::view(
                    &self.state.load_full(),
                    self.state.last_reload_error().as_deref(),
                ),
            ),
            "/api/traces" => reply(
                200,
                "application/json",
                traces::list(&self.telemetry, query),
            ),
            // Every provider and model circuit that has seen a failure.
            "/api/health" => json(&serde_json::json!({"circuits": self.circuits.snapshot()})),
            // Every limit rule's counts per scope value, in its window.
            "/api/limits" => {
                let rules = &self.state.load_full().config.limits.rules;
                let view = self.limits.snapshot(rules, std::time::SystemTime::now());
                json(&serde_json::json!({"limits": view}))
            }
            // The last hour per minute, for the Logs page's charts.
            "/api/stats" => {
                let minutes = self
                    .telemetry
                    .minutes
                    .last_hour(std::time::SystemTime::now());
                json(&serde_json::json!({"minutes": minutes}))
            }
            "/metrics" => reply(200, "text/plain; version=0.0.4", metrics().encode()),
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.readiness.is_ready() => reply(200, "text/plain", b"ready\n".to_vec()),
            "/readyz" => reply(503, "text/plain", b"not ready\n".to_vec()),
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

impl AdminApp {
    /// With `server.admin_token` set (the config in force: a reload can set or rotate it),
    /// whether the request carries it as a bearer token.
    fn authorized(&self, req: &pingora::http::RequestHeader) -> bool {
        let snapshot = self.state.load_full();
        let Some(token) = &snapshot.config.server.admin_token else {
            return true;
        };
        crate::proxy::auth::bearer(req).is_some_and(|p| token.matches(p))
    }
}

/// A JSON answer.
fn json(body: &serde_json::Value) -> Response<Vec<u8>> {
    reply(
        200,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    )
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
