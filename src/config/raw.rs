//! The config file as written: serde structs that mirror the YAML one to one.
//!
//! A key none of these structs has is an error, not a silently ignored setting: `parse`
//! lists every one of them (serde's `deny_unknown_fields` would stop at the first).
//! Nothing here checks meaning (URLs, references between sections): that is `validate`'s job,
//! which turns these into the types the gateway runs on.

use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub auth: Option<RawAuth>,
    #[serde(default)]
    pub providers: IndexMap<String, RawProvider>,
    pub routes: Option<Vec<RawRoute>>,
    #[serde(default)]
    pub load_balance_groups: BTreeMap<String, RawLoadBalanceGroup>,
    #[serde(default)]
    pub prompts: BTreeMap<String, RawPrompt>,
    pub respan_prompts: Option<RawRespanPrompts>,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub responses: RawResponses,
    #[serde(default)]
    pub limits: super::limits::RawLimits,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub max_request_body_bytes: Option<u64>,
    /// Deepest nesting of arrays and objects a request body may have.
    pub max_json_depth: Option<u64>,
    /// The largest request head (request line and headers) served; larger ones get 431.
    pub max_header_bytes: Option<u64>,
    /// Requests in flight at once; more get 503.
    pub max_concurrent_requests: Option<u64>,
    /// A bearer token every admin path but `/healthz` and `/readyz` requires.
    pub admin_token: Option<String>,
    /// How long a client may take to send its request head.
    pub client_header_timeout_ms: Option<u64>,
    pub upstream_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    /// Longest silence between two pieces of a streamed answer.
    pub stream_idle_timeout_ms: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    /// Worker threads of the API port; defaults to the CPUs this process may use.
    pub threads: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub struct RawAuth {
    #[serde(default)]
    pub keys: Vec<RawAuthKey>,
}

#[derive(Debug, Deserialize)]
pub struct RawAuthKey {
    /// How limits, traces and `/api/limits` name the key.
    pub name: Option<String>,
    pub key: String,
    pub customer_identifier: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawProvider {
    #[serde(rename = "type")]
    pub kind: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_file: Option<String>,
    pub api_version: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub health: RawHealth,
}

/// `providers.*.health`: when a provider's circuit opens, and for how long.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub consecutive_failures: Option<u32>,
    pub cooldown_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RawRoute {
    #[serde(rename = "match")]
    pub pattern: String,
    pub provider: String,
    pub upstream_model: Option<String>,
    pub pricing: Option<RawPricing>,
    pub max_output_tokens: Option<u64>,
    /// `off`: an offered built-in web search is never sent to this route's provider.
    pub web_search: Option<OnOff>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct RawPricing {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

#[derive(Debug, Deserialize)]
pub struct RawLoadBalanceGroup {
    pub models: Vec<RawWeightedModel>,
    /// `weighted` (default) or `least_latency`.
    pub strategy: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawWeightedModel {
    pub model: String,
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

/// A prompt template: `model`, `messages` and any other chat parameter, kept as JSON; its
/// `version` number and other `versions` by number.
/// (Open by design: every chat parameter is allowed, so no key of a prompt is unknown.)
#[derive(Debug, Deserialize)]
pub struct RawPrompt {
    pub model: Option<String>,
    pub messages: Vec<serde_json::Value>,
    pub version: Option<u64>,
    #[serde(default)]
    pub versions: BTreeMap<u64, RawPrompt>,
    #[serde(flatten)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

/// Prompts managed on the Respan platform, fetched by id.
#[derive(Debug, Deserialize)]
pub struct RawRespanPrompts {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub refresh_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawCache {
    pub backend: Option<String>,
    pub redis_url: Option<String>,
    pub max_entries: Option<u64>,
    pub max_bytes: Option<u64>,
    pub default_ttl_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawResponses {
    pub store: Option<bool>,
    pub store_ttl_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRetry {
    pub retry_enabled: Option<bool>,
    pub num_retries: Option<u32>,
    pub retry_after: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawTelemetry {
    pub capture_content: Option<bool>,
    pub max_capture_bytes: Option<usize>,
    pub recent_traces: Option<usize>,
    pub export_queue: Option<usize>,
    pub access_log: Option<bool>,
    #[serde(default)]
    pub exporters: Vec<RawExporter>,
}

#[derive(Debug, Deserialize)]
pub struct RawExporter {
    #[serde(rename = "type")]
    pub kind: String,
    pub endpoint: Option<String>,
    pub path: Option<String>,
    pub api_key: Option<String>,
    /// `otlp_http`: `protobuf` (default) or `json`.
    pub encoding: Option<String>,
    /// `otlp_http`: extra request headers (a collector's auth, say).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}
