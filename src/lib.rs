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

pub(crate) mod admin;
pub(crate) mod allocator;
pub mod body;
pub(crate) mod cache;
pub(crate) mod catalog;
pub mod config;
pub(crate) mod dispatch;
pub(crate) mod drain;
pub mod endpoint;
pub(crate) mod error;
pub(crate) mod head;
pub(crate) mod head_timeout;
pub(crate) mod health;
pub mod inject;
pub mod limits;
pub mod params;
pub(crate) mod prompts;
pub(crate) mod providers;
pub(crate) mod proxy;
pub(crate) mod realtime;
pub(crate) mod redis_link;
pub(crate) mod reload;
pub(crate) mod routing;
pub mod server;
pub(crate) mod shutdown;
pub(crate) mod state;
pub(crate) mod stored_responses;
pub mod telemetry;
pub mod translate;
pub(crate) mod upstream;
pub mod webhook;
pub mod wire;
