//! Every way a request can fail inside the gateway, and the one place where such a failure
//! becomes an HTTP status and an error body in the caller's format.
//!
//! Upstream error answers are not here: they are relayed with their own status and body.

use crate::body::BodyError;
use crate::params::ParamError;
use crate::routing::RouteError;
use crate::upstream::ExchangeError;
use crate::wire::Wire;
use serde_json::json;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("you must provide a model parameter")]
    MissingModel,
    #[error("`{param}` is invalid: {message}")]
    InvalidField { param: String, message: String },
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    ClientRead(String),
    #[error("invalid or missing API key for this gateway")]
    Unauthorized,
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("the client closed the connection")]
    ClientClosed,
    #[error("no load balance group named `{0}`")]
    UnknownGroup(String),
    #[error("{}", unknown_prompt(id, *version))]
    UnknownPrompt { id: String, version: Option<u64> },
    #[error("the upstream failed before its answer started ({status}): {message}")]
    UpstreamStream { status: u16, message: String },
    #[error("no endpoint at {method} {path}")]
    NotFound { method: String, path: String },
    #[error("{0}")]
    Unsupported(String),
    /// A path only a kind of provider serves, and the config has none of that kind.
    #[error("`{path}` is served by a provider of type {kind}, and none is configured")]
    NoProviderFor { path: String, kind: &'static str },
    #[error("no stored response with id `{0}`")]
    ResponseNotFound(String),
    #[error("no upstream answered: {0}")]
    NoUpstream(String),
    #[error("the upstream did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("the request head is larger than the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("the sidecar is serving {limit} requests at once, its limit; retry shortly")]
    Overloaded { limit: usize },
    /// A `limits:` rule is past its limit: nothing was sent.
    #[error("{}", limit_message(.0))]
    LimitReached(crate::limits::Refusal),
    /// `limits.backend: redis` cannot be asked and `on_backend_error: deny`.
    #[error("the limits backend cannot be asked right now; retry shortly")]
    LimitsUnavailable,
    /// Every candidate's circuit is open: nothing was sent.
    #[error("every provider and model this request could use is failing (its circuit is open); retry after {} s", retry_seconds(*retry_after))]
    CircuitOpen { retry_after: Duration },
}

/// A refusal's message: the rule and its limit, and when it resets (never the key).
fn limit_message(r: &crate::limits::Refusal) -> String {
    let resets = r.frees_at.map_or_else(
        || "it does not reset (a lifetime limit)".to_string(),
        |t| format!("it frees room at {}", crate::telemetry::trace::rfc3339(t)),
    );
    format!(
        "limit `{}` reached ({} {} per {}); {resets}",
        r.rule,
        r.kind.as_str(),
        r.limit,
        r.window.as_str()
    )
}

/// Whole seconds to wait, at least one (`Retry-After` takes integers).
fn retry_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl GatewayError {
    pub fn invalid_field(param: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError::InvalidField {
            param: param.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            GatewayError::Body(_)
            | GatewayError::MissingModel
            | GatewayError::InvalidField { .. }
            | GatewayError::Param(_)
            | GatewayError::ClientRead(_)
            | GatewayError::Unsupported(_)
            | GatewayError::Route(RouteError::UnknownProvider(_)) => 400,
            GatewayError::Unauthorized => 401,
            GatewayError::Route(RouteError::NoRoute(_))
            | GatewayError::NotFound { .. }
            | GatewayError::NoProviderFor { .. }
            | GatewayError::ResponseNotFound(_)
            | GatewayError::UnknownGroup(_)
            | GatewayError::UnknownPrompt { .. } => 404,
            GatewayError::UpstreamStream { status, .. } => *status,
            // nginx's code for a client that went away: never sent, only counted.
            GatewayError::ClientClosed => 499,
            GatewayError::BodyTooLarge { .. } => 413,
            GatewayError::NoUpstream(_) => 502,
            GatewayError::UpstreamTimeout(_) => 504,
            GatewayError::CircuitOpen { .. }
            | GatewayError::Overloaded { .. }
            | GatewayError::LimitsUnavailable => 503,
            GatewayError::HeadersTooLarge { .. } => 431,
            GatewayError::LimitReached(_) => 429,
        }
    }

    /// The `Retry-After` (in seconds) of an answer that says when to come back.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::CircuitOpen { retry_after } => Some(retry_seconds(*retry_after)),
            GatewayError::Overloaded { .. } | GatewayError::LimitsUnavailable => Some(1),
            GatewayError::LimitReached(r) => Some(retry_seconds(r.wait()?)),
            _ => None,
        }
    }

    /// OpenAI's `error.code`, where OpenAI has one for the case.
    fn code(&self) -> Option<&'static str> {
        match self {
            GatewayError::Body(BodyError::TooDeep(_)) => Some("json_too_deep"),
            GatewayError::Body(_) => Some("invalid_json"),
            GatewayError::MissingModel => Some("missing_model"),
            GatewayError::InvalidField { .. } | GatewayError::Param(_) => Some("invalid_parameter"),
            GatewayError::Unauthorized => Some("invalid_api_key"),
            GatewayError::Route(RouteError::NoRoute(_)) => Some("model_not_found"),
            GatewayError::Route(RouteError::UnknownProvider(_)) => Some("provider_not_found"),
            GatewayError::UnknownGroup(_) => Some("load_balance_group_not_found"),
            GatewayError::UnknownPrompt { .. } => Some("prompt_not_found"),
            GatewayError::UpstreamStream { .. } => Some(UPSTREAM_FAILED_CODE),
            GatewayError::NotFound { .. } => Some("unknown_url"),
            GatewayError::NoProviderFor { .. } => Some("provider_not_found"),
            GatewayError::ResponseNotFound(_) => Some("not_found"),
            GatewayError::BodyTooLarge { .. } => Some("request_too_large"),
            GatewayError::NoUpstream(_) => Some("upstream_unavailable"),
            GatewayError::UpstreamTimeout(_) => Some("upstream_timeout"),
            GatewayError::CircuitOpen { .. } => Some("circuit_open"),
            GatewayError::HeadersTooLarge { .. } => Some("request_header_fields_too_large"),
            GatewayError::LimitReached(r) if r.kind == crate::limits::Kind::Cost => {
                Some("budget_exceeded")
            }
            GatewayError::LimitReached(_) => Some("rate_limit_exceeded"),
            GatewayError::LimitsUnavailable => Some("limits_unavailable"),
            GatewayError::Overloaded { .. } => Some("overloaded"),
            GatewayError::ClientRead(_)
            | GatewayError::Unsupported(_)
            | GatewayError::ClientClosed => None,
        }
    }

    /// The `reason` of `respan_rejected_requests_total` for a request refused before any
    /// provider was asked because of what it is, not what it asks.
    pub fn rejection(&self) -> Option<&'static str> {
        match self {
            GatewayError::BodyTooLarge { .. } => Some("body_too_large"),
            GatewayError::HeadersTooLarge { .. } => Some("headers_too_large"),
            GatewayError::Overloaded { .. } => Some("overloaded"),
            GatewayError::Body(BodyError::TooDeep(_)) => Some("too_deep"),
            GatewayError::Unauthorized => Some("unauthorized"),
            _ => None,
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            GatewayError::MissingModel | GatewayError::Route(RouteError::NoRoute(_)) => {
                Some("model")
            }
            GatewayError::InvalidField { param, .. } => Some(param),
            GatewayError::Param(e) => Some(&e.param),
            _ => None,
        }
    }

    /// The JSON error body in the format of the endpoint the caller used.
    pub fn body(&self, ingress: Wire) -> Vec<u8> {
        error_body(
            ingress,
            self.status(),
            &self.to_string(),
            self.code(),
            self.param(),
        )
    }
}

/// An error body in `ingress`'s format; also used for in-band stream errors.
pub fn error_body(
    ingress: Wire,
    status: u16,
    message: &str,
    code: Option<&str>,
    param: Option<&str>,
) -> Vec<u8> {
    let value = match ingress {
        Wire::OpenAi | Wire::Responses => json!({"error": {
            "message": message,
            "type": openai_type(status),
            "param": param,
            "code": code,
        }}),
        Wire::Anthropic => json!({"type": "error", "error": {
            "type": anthropic_type(status),
            "message": message,
        }}),
        Wire::Gemini => json!({"error": {
            "code": status,
            "message": message,
            "status": gemini_status(status),
        }}),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// An error event ending a stream in `ingress`'s format (an SSE event, with its blank line).
pub fn stream_error_event(ingress: Wire, status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = match ingress {
        // The Responses API's own `error` event: flat, typed.
        Wire::Responses => {
            let data = json!({"type": "error", "code": code, "message": message, "param": null});
            serde_json::to_vec(&data).unwrap_or_default()
        }
        _ => error_body(ingress, status, message, Some(code), None),
    };
    let mut event = Vec::with_capacity(body.len() + 24);
    if matches!(ingress, Wire::Anthropic | Wire::Responses) {
        event.extend_from_slice(b"event: error\n");
    }
    event.extend_from_slice(b"data: ");
    event.extend(body);
    event.extend_from_slice(b"\n\n");
    event
}

/// The message of an unknown prompt, or of a version it does not have.
fn unknown_prompt(id: &str, version: Option<u64>) -> String {
    match version {
        Some(version) => format!("prompt `{id}` has no version {version}"),
        None => format!("no prompt named `{id}`"),
    }
}

fn openai_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn gemini_status(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

/// A stream that failed after it started: an error event for the app, with the status the
/// provider gave (or 502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFailure {
    pub status: u16,
    pub message: String,
    /// An event that could not be read (as opposed to one that reports an error).
    pub unreadable: bool,
}

impl StreamFailure {
    pub fn upstream(message: impl Into<String>) -> Self {
        StreamFailure {
            status: UPSTREAM_FAILED_STATUS,
            message: message.into(),
            unreadable: false,
        }
    }

    /// An event the gateway cannot read.
    pub fn unreadable(message: impl Into<String>) -> Self {
        StreamFailure {
            unreadable: true,
            ..Self::upstream(message)
        }
    }

    /// An error event the provider sent (a status of 0, none given, is the upstream
    /// failure's).
    pub fn reported(status: u16, message: String) -> Self {
        StreamFailure {
            status: if status == 0 {
                UPSTREAM_FAILED_STATUS
            } else {
                status
            },
            message,
            unreadable: false,
        }
    }

    /// A failed read of an answer: 504 for a timeout, else 502 (the one place a failed read
    /// gets its status, before the answer started or after).
    pub fn of_read(e: ExchangeError) -> Self {
        let status = if e == ExchangeError::Timeout {
            504
        } else {
            UPSTREAM_FAILED_STATUS
        };
        StreamFailure::reported(status, e.to_string())
    }
}

/// The status of an answer the upstream broke off (when it reported none), and the code
/// of the error event that ends such a stream.
pub const UPSTREAM_FAILED_STATUS: u16 = 502;
pub const UPSTREAM_FAILED_CODE: &str = "upstream_error";

/// The status and code of the error event that ends a stream still running when a
/// shutdown's grace period is spent.
pub const SHUTTING_DOWN: (u16, &str) = (503, "shutting_down");

/// The HTTP status Anthropic uses for an error type (for errors met inside a stream).
pub fn anthropic_error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// The status a caller's API uses for a provider's error status: Anthropic's 529
/// "overloaded" is a 503 to OpenAI and Gemini callers.
pub fn status_for_caller(status: u16, to: Wire) -> u16 {
    match (status, to) {
        (529, Wire::OpenAi | Wire::Gemini) => 503,
        (s, _) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parsed(e: &GatewayError, ingress: Wire) -> Value {
        serde_json::from_slice(&e.body(ingress)).unwrap()
    }

    #[test]
    fn a_stream_error_event_is_framed_as_each_api_frames_it() {
        let event = |wire| String::from_utf8(stream_error_event(wire, 502, "bad", "boom")).unwrap();
        assert_eq!(
            event(Wire::Responses),
            "event: error\ndata: {\"type\":\"error\",\"code\":\"bad\",\"message\":\"boom\",\"param\":null}\n\n"
        );
        let body =
            |wire| String::from_utf8(error_body(wire, 502, "boom", Some("bad"), None)).unwrap();
        assert_eq!(
            event(Wire::Anthropic),
            format!("event: error\ndata: {}\n\n", body(Wire::Anthropic))
        );
        for wire in [Wire::OpenAi, Wire::Gemini] {
            assert_eq!(event(wire), format!("data: {}\n\n", body(wire)));
        }
    }

    #[test]
    fn openai_shape() {
        let e = GatewayError::Route(RouteError::NoRoute("x".into()));
        assert_eq!(e.status(), 404);
        let v = parsed(&e, Wire::OpenAi);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["message"], "no route for model `x`");
    }

    #[test]
    fn other_ingress_shapes() {
        let e = GatewayError::Unauthorized;
        let a = parsed(&e, Wire::Anthropic);
        assert_eq!(
            (a["type"].as_str(), a["error"]["type"].as_str()),
            (Some("error"), Some("authentication_error"))
        );
        let g = parsed(&GatewayError::BodyTooLarge { limit: 1 }, Wire::Gemini);
        assert_eq!(
            (g["error"]["code"].as_u64(), g["error"]["status"].as_str()),
            (Some(413), Some("INVALID_ARGUMENT"))
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(GatewayError::MissingModel.status(), 400);
        assert_eq!(GatewayError::NoUpstream("x".into()).status(), 502);
        assert_eq!(
            GatewayError::UpstreamTimeout(Duration::from_secs(1)).status(),
            504
        );
        let open = GatewayError::CircuitOpen {
            retry_after: Duration::from_millis(2500),
        };
        assert_eq!((open.status(), open.retry_after()), (503, Some(3)));
        let now = GatewayError::CircuitOpen {
            retry_after: Duration::ZERO,
        };
        assert_eq!(now.retry_after(), Some(1));
        assert_eq!(openai_type(429), "rate_limit_error");
        assert_eq!(openai_type(503), "server_error");
    }
}
