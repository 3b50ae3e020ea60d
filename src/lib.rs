//! respan-sidecar: an OpenAI-compatible LLM gateway that runs next to an app, on Pingora.
//!
//! Request path: `proxy` (Pingora phases) -> `endpoint` (which API) -> `params` (Respan
//! parameters) -> `prompts` (a `prompt` rendered in) -> `routing` (model -> provider) ->
//! `dispatch` (attempt plan, and the attempts: retries, fallbacks, stream hold-back) ->
//! `providers` (wire details) -> `upstream` (pooled HTTP) -> `proxy::relay` (answer back,
//! streamed).
//! `cache` keeps answers for `cache_enabled` requests; `stored_responses` keeps Responses API
//! answers for `previous_response_id`.
//! `config` and `state` hold what a request runs on, `reload` swaps it; `admin` and
//! `telemetry` report on it; `shutdown` drains the process (`drain` is its shared view).
//! `inject` adds the sidecar to Kubernetes manifests (the `inject` command), `webhook` to pods
//! as a cluster creates them (the `webhook` command).

pub mod admin;
pub mod body;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod dispatch;
pub mod drain;
pub mod endpoint;
pub mod error;
pub mod head;
pub mod head_timeout;
pub mod health;
pub mod inject;
pub mod limits;
pub mod params;
pub mod prompts;
pub mod providers;
pub mod proxy;
pub mod realtime;
pub mod redis_link;
pub mod reload;
pub mod routing;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod stored_responses;
pub mod telemetry;
pub mod translate;
pub mod upstream;
pub mod webhook;
