//! The config the gateway runs on, and how a file becomes one.
//!
//! `load` reads the file, parses YAML into a tree, expands `${VAR}` in its strings, maps it
//! onto the raw serde structs (`raw`, unknown keys all listed, type errors named by YAML path)
//! and then validates it into the types below (`validate`), collecting every problem rather
//! than stopping at the first. Nothing here touches the network.

mod env;
pub mod limits;
mod raw;
mod secret;
mod validate;

pub use secret::Secret;

use crate::telemetry::export::{Destination, OtlpEncoding};
use crate::telemetry::Settings;
use crate::wire::Wire;
pub use limits::LimitsConfig;

use http::{HeaderName, HeaderValue};
use sha2::Digest;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: Option<AuthConfig>,
    /// In file order: "the first provider of type openai" depends on it. Shared with the
    /// snapshot's routing table, so each provider (and its key header cache) exists once.
    pub providers: Arc<Vec<ProviderConfig>>,
    /// `None` when the file has no `routes`: the built-in rules apply.
    pub routes: Option<Vec<RouteConfig>>,
    pub load_balance_groups: BTreeMap<String, LoadBalanceGroup>,
    pub prompts: BTreeMap<String, PromptConfig>,
    pub respan_prompts: Option<RespanPromptsConfig>,
    pub cache: CacheConfig,
    pub retry: RetryConfig,
    pub telemetry: TelemetryConfig,
    pub responses: ResponsesConfig,
    pub limits: LimitsConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_request_body_bytes: usize,
    /// A model call's body nested deeper is refused (400) before any provider sees it.
    pub max_json_depth: usize,
    /// A request head larger is refused (431).
    pub max_header_bytes: usize,
    /// More requests in flight at once are refused (503 with `Retry-After`).
    pub max_concurrent_requests: usize,
    /// Set: every admin path but `/healthz` and `/readyz` needs it as a bearer token.
    pub admin_token: Option<Secret>,
    /// A client whose first request head takes longer is closed (see `head_timeout`).
    pub client_header_timeout: Duration,
    pub upstream_timeout: Duration,
    pub connect_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub threads: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub keys: Vec<AuthKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthKey {
    /// Its `name`, or its index in `auth.keys` when unnamed (how per-key limits count it).
    pub name: String,
    pub key: Secret,
    pub customer_identifier: Option<String>,
}

/// A provider's `type`: the vendor, which with the app's format fixes the format it is
/// spoken to in ([`ProviderKind::wire`]; Azure and the echo provider speak OpenAI's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI and every OpenAI-compatible API.
    OpenAi,
    AzureOpenAi,
    Anthropic,
    Gemini,
    /// Built in, offline: answers chat and embeddings in OpenAI format from the request itself.
    Echo,
}

impl ProviderKind {
    /// The format this provider is spoken to in, for an app that speaks `ingress`.
    pub fn wire(self, ingress: Wire) -> Wire {
        match self {
            ProviderKind::OpenAi if ingress == Wire::Responses => Wire::Responses,
            ProviderKind::Anthropic => Wire::Anthropic,
            ProviderKind::Gemini => Wire::Gemini,
            ProviderKind::OpenAi | ProviderKind::AzureOpenAi | ProviderKind::Echo => Wire::OpenAi,
        }
    }

    /// The kind a `type` names (`as_str` the other way).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "openai" => ProviderKind::OpenAi,
            "azure_openai" => ProviderKind::AzureOpenAi,
            "anthropic" => ProviderKind::Anthropic,
            "gemini" => ProviderKind::Gemini,
            "echo" => ProviderKind::Echo,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::AzureOpenAi => "azure_openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Echo => "echo",
        }
    }
}

/// Where a provider lives: scheme, host, port and the path prefix every call is appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Without a trailing slash; empty for the root.
    pub path: String,
    /// The `Host` header of every call, made once here rather than on every request.
    host_header: HeaderValue,
}

impl BaseUrl {
    /// Parses an absolute `http` or `https` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("must start with http:// or https://".into()),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("has no host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if uri.query().is_some() {
            return Err("must not have a query string".into());
        }
        let path = uri.path().trim_end_matches('/').to_string();
        let host_header = HeaderValue::try_from(host_header(&host, port, tls))
            .map_err(|_| "has a host that is not a valid Host header")?;
        Ok(BaseUrl {
            tls,
            host,
            port,
            path,
            host_header,
        })
    }

    /// The `Host` header value: the port only when it is not the scheme's default.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }
}

fn host_header(host: &str, port: u16, tls: bool) -> String {
    let default_port = if tls { 443 } else { 80 };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == default_port {
        host
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let host = self.host_header.to_str().unwrap_or_default();
        write!(f, "{scheme}://{host}{}", self.path)
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The key under `providers`: what routes, metrics and `customer_credentials` name.
    pub name: String,
    pub kind: ProviderKind,
    /// `None` only for `echo`, which has no upstream.
    pub base_url: Option<BaseUrl>,
    /// From `api_key` or the contents of `api_key_file`; `None` (or empty) means the app
    /// brings its own key.
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    pub api_version: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `api_key` as the header that carries it: made when the snapshot that owns this
    /// provider is prepared (`providers::prepare`, which knows each provider's scheme), then
    /// reused by every call. A new key means a new config and a new snapshot.
    pub key_header: OnceLock<Option<(HeaderName, HeaderValue)>>,
    /// When its circuits open (see `health`).
    pub health: HealthConfig,
}

/// A provider's circuit breaking: `consecutive_failures` failed attempts in a row open a
/// circuit (per provider and upstream model) for `cooldown`, or for the upstream's
/// `Retry-After` when it gave one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    pub consecutive_failures: u32,
    pub cooldown: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            consecutive_failures: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub pattern: String,
    pub provider: String,
    pub upstream_model: Option<String>,
    pub pricing: Option<Pricing>,
    /// A ceiling on `max_tokens` when an Anthropic request is translated for this route.
    pub max_output_tokens: Option<u64>,
    /// An offered web search goes to the provider's own search (`web_search: on`, the
    /// default), or is left out (`off`).
    pub web_search: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl From<Pricing> for crate::catalog::Price {
    fn from(p: Pricing) -> Self {
        crate::catalog::Price {
            input: p.input_per_million,
            output: p.output_per_million,
            cached_input: None,
            cache_write: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalanceGroup {
    pub models: Vec<WeightedModel>,
    pub strategy: BalanceStrategy,
}

/// How a load balance group picks the member to try first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceStrategy {
    /// At random, by weight.
    Weighted,
    /// The power of two choices over recent latency.
    LeastLatency,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightedModel {
    pub model: String,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromptConfig {
    pub model: Option<String>,
    pub messages: Vec<serde_json::Value>,
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// This template's version number, when it has one (the deployed version).
    pub version: Option<u64>,
    /// Other versions a request may pick with `prompt.version`.
    pub versions: BTreeMap<u64, PromptConfig>,
}

/// Where prompts the config does not hold are fetched: the Respan platform's prompt API.
#[derive(Debug, Clone, PartialEq)]
pub struct RespanPromptsConfig {
    pub api_key: Secret,
    /// The API's root, e.g. `https://api.respan.ai/api`.
    pub base_url: String,
    /// How old a fetched prompt may get before it is fetched again (in the background).
    pub refresh: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub backend: CacheBackend,
    pub redis_url: Option<String>,
    pub max_entries: u64,
    /// The memory backend's bound on the bytes of its answers.
    pub max_bytes: u64,
    pub default_ttl: Duration,
}

/// Responses API answers kept for `previous_response_id` and `GET /v1/responses/{id}`, in
/// the cache's backend (`cache.backend`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponsesConfig {
    /// Off by default: a kept response holds the conversation's text.
    pub store: bool,
    pub store_ttl: Duration,
}

/// Defaults for `retry_params` when a request gives none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    pub retry_enabled: bool,
    pub num_retries: u32,
    /// Seconds: the base (and minimum) of the exponential backoff.
    pub retry_after: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub capture_content: bool,
    /// Bytes of each answer kept for its trace.
    pub max_capture_bytes: usize,
    pub recent_traces: usize,
    /// Traces each exporter holds waiting to be sent; more are dropped and counted.
    pub export_queue: usize,
    /// One log line per request.
    pub access_log: bool,
    pub exporters: Vec<ExporterConfig>,
}

impl TelemetryConfig {
    pub fn settings(&self) -> Settings {
        Settings {
            capture_content: self.capture_content,
            max_capture_bytes: self.max_capture_bytes,
            recent_traces: self.recent_traces,
            access_log: self.access_log,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    OtlpHttp {
        endpoint: String,
        encoding: OtlpEncoding,
        headers: Vec<(String, String)>,
    },
    Jsonl {
        path: PathBuf,
    },
    Respan {
        endpoint: String,
        api_key: Secret,
    },
}

impl ExporterConfig {
    /// Where the exporter sends its traces (the key only leaves its `Secret` here).
    pub fn destination(&self) -> Destination {
        match self {
            ExporterConfig::OtlpHttp {
                endpoint,
                encoding,
                headers,
            } => Destination::OtlpHttp {
                endpoint: endpoint.clone(),
                encoding: *encoding,
                headers: headers.clone(),
            },
            ExporterConfig::Jsonl { path } => Destination::Jsonl { path: path.clone() },
            ExporterConfig::Respan { endpoint, api_key } => Destination::Respan {
                endpoint: endpoint.clone(),
                api_key: api_key.expose().to_string(),
            },
        }
    }
}

/// One thing wrong with a config, at its YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a config that could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl From<Problem> for ConfigError {
    fn from(p: Problem) -> Self {
        ConfigError { problems: vec![p] }
    }
}

/// A loaded config and what is worth a warning about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The sha256 of the config text, in hex: which file is in force.
    pub version: String,
    /// E.g. `${VAR}` references to unset variables, expanded to "".
    pub warnings: Vec<String>,
}

/// Reads, expands, parses and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::new("", format!("cannot read {}: {e}", path.display())))?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, base_dir, &|name| std::env::var(name).ok())
}

/// Parses config text; `base_dir` resolves relative `api_key_file` paths and `lookup`
/// provides environment variables (injected so tests need not touch the process env).
pub fn parse(
    text: &str,
    base_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let mut tree: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| Problem::new("", format!("not valid YAML: {e}")))?;
    if tree.is_null() {
        tree = serde_yaml::Value::Mapping(Default::default());
    }
    let unset = env::expand_tree(&mut tree, lookup).map_err(|paths| ConfigError {
        problems: paths
            .into_iter()
            .map(|p| Problem::new(p, "`${` without a closing `}`"))
            .collect(),
    })?;
    // Unknown keys are collected (all of them) rather than refused one at a time; a type
    // error still stops the reading, after the unknown keys seen before it.
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let read: Result<raw::RawConfig, _> = serde_ignored::deserialize(
        serde_path_to_error::Deserializer::new(tree, &mut track),
        |key| unknown.push(Problem::new(yaml_path(&key), "unknown key")),
    );
    let raw = read.map_err(|e| {
        let path = track.path().to_string();
        let path = if path == "." { String::new() } else { path };
        unknown.push(Problem::new(path, e.to_string()));
        ConfigError {
            problems: std::mem::take(&mut unknown),
        }
    })?;
    let config = match validate::validate(raw, base_dir) {
        Ok(config) if unknown.is_empty() => config,
        Ok(_) => return Err(ConfigError { problems: unknown }),
        Err(e) => {
            unknown.extend(e.problems);
            return Err(ConfigError { problems: unknown });
        }
    };
    let warnings = unset
        .into_iter()
        .map(|u| format!("{}: environment variable {} is not set", u.path, u.name))
        .collect();
    let version = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    Ok(Loaded {
        config,
        version,
        warnings,
    })
}

/// A key's path as problems name it: `providers.a.headers`, `routes[0].match`.
fn yaml_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", yaml_path(parent)),
        Path::Map { parent, key } => match yaml_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => yaml_path(parent),
    }
}

#[cfg(test)]
mod tests;
