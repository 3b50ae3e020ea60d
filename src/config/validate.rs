//! Raw config -> [`Config`]: defaults filled in, values checked, references resolved.
//!
//! Every check pushes a [`Problem`] with the YAML path and carries on, so `check` can list all
//! of them at once.

use super::raw::*;
use super::*;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9464";
const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
/// Deeper than any real conversation (tool schemas nest a few levels), far below what a
/// provider's recursive parser would choke on.
const DEFAULT_MAX_JSON_DEPTH: u64 = 64;
/// nginx's default head buffers hold 32 KiB; SDKs send a few hundred bytes.
const DEFAULT_MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Far above what one app pod sends at once; a bound on what a runaway client can hold.
const DEFAULT_MAX_CONCURRENT: u64 = 4096;
const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
/// The Respan platform's API root, where managed prompts are fetched.
const RESPAN_API: &str = "https://api.respan.ai/api";

/// Turns a parsed raw config into a [`Config`], or lists everything wrong with it.
pub fn validate(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let server = server(raw.server, &mut problems);
    let auth = raw.auth.map(|a| auth(a, &mut problems));
    let providers = raw
        .providers
        .into_iter()
        .filter_map(|(name, p)| provider(name, p, base_dir, &mut problems))
        .collect::<Vec<_>>();
    let routes = raw.routes.map(|routes| {
        routes
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| route(i, r, &providers, &mut problems))
            .collect()
    });
    let load_balance_groups = raw
        .load_balance_groups
        .into_iter()
        .map(|(id, g)| {
            let group = load_balance_group(&format!("load_balance_groups.{id}"), g, &mut problems);
            (id, group)
        })
        .collect();
    let prompts = raw
        .prompts
        .into_iter()
        .map(|(id, p)| {
            let prompt = prompt(&format!("prompts.{id}"), p, &mut problems);
            (id, prompt)
        })
        .collect();
    let respan_prompts = raw
        .respan_prompts
        .and_then(|r| respan_prompts(r, &mut problems));
    let cache = cache(raw.cache, &mut problems);
    let retry = retry(raw.retry, &mut problems);
    let telemetry = telemetry(raw.telemetry, &mut problems);
    let responses = responses(raw.responses, &mut problems);
    let limits = super::limits::limits(raw.limits, cache.redis_url.clone(), &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(Config {
        server,
        auth,
        providers: Arc::new(providers),
        routes,
        load_balance_groups,
        prompts,
        respan_prompts,
        cache,
        retry,
        telemetry,
        responses,
        limits,
    })
}

/// A prompt and its other versions, each checked: messages that are there and parse.
fn prompt(path: &str, raw: RawPrompt, problems: &mut Vec<Problem>) -> PromptConfig {
    if raw.messages.is_empty() {
        problems.push(Problem::new(format!("{path}.messages"), "is empty"));
    }
    for (i, message) in raw.messages.iter().enumerate() {
        check_templates(&format!("{path}.messages[{i}]"), message, problems);
    }
    let versions = raw
        .versions
        .into_iter()
        .map(|(number, v)| {
            let version_path = format!("{path}.versions.{number}");
            if !v.versions.is_empty() {
                problems.push(Problem::new(
                    format!("{version_path}.versions"),
                    "a version has no versions of its own",
                ));
            }
            let mut version = prompt(&version_path, v, problems);
            version.version = Some(number);
            (number, version)
        })
        .collect();
    PromptConfig {
        model: raw.model,
        messages: raw.messages,
        parameters: raw.parameters,
        version: raw.version,
        versions,
    }
}

/// The Respan prompt source: a key is required; the refresh is at least a second.
fn respan_prompts(
    raw: RawRespanPrompts,
    problems: &mut Vec<Problem>,
) -> Option<RespanPromptsConfig> {
    let Some(api_key) = raw.api_key.filter(|k| !k.is_empty()) else {
        problems.push(Problem::new(
            "respan_prompts.api_key",
            "is required (the Respan API key)",
        ));
        return None;
    };
    let base_url = raw
        .base_url
        .unwrap_or_else(|| RESPAN_API.to_string())
        .trim_end_matches('/')
        .to_string();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        problems.push(Problem::new(
            "respan_prompts.base_url",
            format!("`{base_url}` is not an http(s) URL"),
        ));
    }
    let refresh = Duration::from_secs(raw.refresh_seconds.unwrap_or(60).max(1));
    Some(RespanPromptsConfig {
        api_key: Secret::new(api_key),
        base_url,
        refresh,
    })
}

/// Every string of a prompt message is a template: one that does not parse is a problem of
/// the config, not a failed request later.
fn check_templates(path: &str, value: &serde_json::Value, problems: &mut Vec<Problem>) {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            if let Err(e) = minijinja::Environment::new().template_from_str(text) {
                problems.push(Problem::new(path, format!("not a valid template: {e}")));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_templates(&format!("{path}[{i}]"), item, problems);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                check_templates(&format!("{path}.{key}"), item, problems);
            }
        }
        _ => {}
    }
}

fn server(raw: RawServer, problems: &mut Vec<Problem>) -> ServerConfig {
    let addr = |key: &str, value: Option<String>, default: &str, problems: &mut Vec<Problem>| {
        let text = value.unwrap_or_else(|| default.to_string());
        text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(Problem::new(
                format!("server.{key}"),
                format!("`{text}` is not an address like 127.0.0.1:8080"),
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let positive_ms = |key: &str, value: Option<u64>, default: u64, problems: &mut Vec<Problem>| {
        let ms = value.unwrap_or(default);
        if ms == 0 {
            problems.push(Problem::new(format!("server.{key}"), "must be above 0"));
        }
        Duration::from_millis(ms)
    };
    let listen = addr("listen", raw.listen, DEFAULT_LISTEN, problems);
    let admin_listen = addr(
        "admin_listen",
        raw.admin_listen,
        DEFAULT_ADMIN_LISTEN,
        problems,
    );
    if listen == admin_listen {
        problems.push(Problem::new(
            "server.admin_listen",
            "must differ from server.listen",
        ));
    }
    let max_body = raw.max_request_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
    if max_body == 0 {
        problems.push(Problem::new(
            "server.max_request_body_bytes",
            "must be above 0",
        ));
    }
    let max_json_depth = raw.max_json_depth.unwrap_or(DEFAULT_MAX_JSON_DEPTH);
    let max_header_bytes = raw.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES);
    let max_concurrent = raw
        .max_concurrent_requests
        .unwrap_or(DEFAULT_MAX_CONCURRENT);
    for (key, value) in [
        ("server.max_json_depth", max_json_depth),
        ("server.max_header_bytes", max_header_bytes),
        ("server.max_concurrent_requests", max_concurrent),
    ] {
        if value == 0 {
            problems.push(Problem::new(key, "must be above 0"));
        }
    }
    let threads = raw.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if threads == 0 {
        problems.push(Problem::new("server.threads", "must be above 0"));
    }
    ServerConfig {
        listen,
        admin_listen,
        max_request_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
        max_json_depth: usize::try_from(max_json_depth).unwrap_or(usize::MAX),
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_concurrent_requests: usize::try_from(max_concurrent).unwrap_or(usize::MAX),
        client_header_timeout: positive_ms(
            "client_header_timeout_ms",
            raw.client_header_timeout_ms,
            10_000,
            problems,
        ),
        // `${ADMIN_TOKEN:-}` unset is no token, not an empty one.
        admin_token: raw.admin_token.filter(|t| !t.is_empty()).map(Secret::new),
        upstream_timeout: positive_ms(
            "upstream_timeout_ms",
            raw.upstream_timeout_ms,
            600_000,
            problems,
        ),
        connect_timeout: positive_ms(
            "connect_timeout_ms",
            raw.connect_timeout_ms,
            5_000,
            problems,
        ),
        stream_idle_timeout: positive_ms(
            "stream_idle_timeout_ms",
            raw.stream_idle_timeout_ms,
            300_000,
            problems,
        ),
        shutdown_grace: Duration::from_millis(raw.shutdown_grace_ms.unwrap_or(30_000)),
        threads,
    }
}

fn auth(raw: RawAuth, problems: &mut Vec<Problem>) -> AuthConfig {
    if raw.keys.is_empty() {
        problems.push(Problem::new(
            "auth.keys",
            "is empty: remove `auth` to serve every caller, or list keys",
        ));
    }
    let keys = raw
        .keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            if k.key.is_empty() {
                problems.push(Problem::new(format!("auth.keys[{i}].key"), "is empty"));
            }
            AuthKey {
                name: k.name.unwrap_or_else(|| i.to_string()),
                key: Secret::new(k.key),
                customer_identifier: k.customer_identifier,
            }
        })
        .collect();
    AuthConfig { keys }
}

fn provider(
    name: String,
    raw: RawProvider,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<ProviderConfig> {
    let path = format!("providers.{name}");
    let Some(kind) = ProviderKind::parse(&raw.kind) else {
        problems.push(Problem::new(
            format!("{path}.type"),
            format!(
                "unknown provider type `{}` (expected openai, azure_openai, anthropic, gemini or echo)",
                raw.kind
            ),
        ));
        return None;
    };
    let base_url = base_url(&path, kind, raw.base_url.as_deref(), problems);
    let api_key_file = raw.api_key_file.map(|f| base_dir.join(f));
    let api_key = match (raw.api_key, &api_key_file) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                &path,
                "set either api_key or api_key_file, not both",
            ));
            None
        }
        (Some(key), None) => Some(key),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            // A Secret being rotated can be caught empty: that is a failed load, not a
            // provider that lost its key.
            Ok(key) if key.trim().is_empty() => {
                problems.push(Problem::new(
                    format!("{path}.api_key_file"),
                    format!("{} is empty", file.display()),
                ));
                None
            }
            Ok(key) => Some(key.trim().to_string()),
            Err(e) => {
                problems.push(Problem::new(
                    format!("{path}.api_key_file"),
                    format!("cannot read {}: {e}", file.display()),
                ));
                None
            }
        },
        (None, None) => None,
    };
    let api_version = match kind {
        ProviderKind::AzureOpenAi => Some(
            raw.api_version
                .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.into()),
        ),
        _ => raw.api_version,
    };
    let headers = raw
        .headers
        .into_iter()
        .filter_map(|(k, v)| {
            let parsed = (HeaderName::try_from(&k), HeaderValue::try_from(&v));
            match parsed {
                (Ok(n), Ok(v)) => Some((n, v)),
                _ => {
                    problems.push(Problem::new(
                        format!("{path}.headers.{k}"),
                        "is not a valid HTTP header name and value",
                    ));
                    None
                }
            }
        })
        .collect();
    let health = health(&path, &raw.health, problems);
    Some(ProviderConfig {
        name,
        kind,
        base_url,
        api_key: api_key.filter(|k| !k.is_empty()).map(Secret::new),
        api_key_file,
        api_version,
        headers,
        key_header: OnceLock::new(),
        health,
    })
}

fn health(path: &str, raw: &RawHealth, problems: &mut Vec<Problem>) -> HealthConfig {
    let defaults = HealthConfig::default();
    if raw.consecutive_failures == Some(0) {
        problems.push(Problem::new(
            format!("{path}.health.consecutive_failures"),
            "must be 1 or more",
        ));
    }
    if raw.cooldown_ms == Some(0) {
        problems.push(Problem::new(
            format!("{path}.health.cooldown_ms"),
            "must be above 0",
        ));
    }
    HealthConfig {
        consecutive_failures: raw
            .consecutive_failures
            .unwrap_or(defaults.consecutive_failures),
        cooldown: raw
            .cooldown_ms
            .map_or(defaults.cooldown, Duration::from_millis),
    }
}

fn base_url(
    path: &str,
    kind: ProviderKind,
    raw: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<BaseUrl> {
    let default = match kind {
        ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
        ProviderKind::Anthropic => Some("https://api.anthropic.com"),
        ProviderKind::Gemini => Some("https://generativelanguage.googleapis.com"),
        ProviderKind::AzureOpenAi | ProviderKind::Echo => None,
    };
    match raw.or(default) {
        Some(url) if kind != ProviderKind::Echo => match BaseUrl::parse(url) {
            Ok(url) => Some(url),
            Err(e) => {
                problems.push(Problem::new(format!("{path}.base_url"), e));
                None
            }
        },
        Some(_) => None,
        None if kind == ProviderKind::AzureOpenAi => {
            problems.push(Problem::new(
                format!("{path}.base_url"),
                "is required for azure_openai (https://<resource>.openai.azure.com)",
            ));
            None
        }
        None => None,
    }
}

fn route(
    index: usize,
    raw: RawRoute,
    providers: &[ProviderConfig],
    problems: &mut Vec<Problem>,
) -> Option<RouteConfig> {
    let path = format!("routes[{index}]");
    if raw.pattern.is_empty() {
        problems.push(Problem::new(format!("{path}.match"), "is empty"));
    }
    if !providers.iter().any(|p| p.name == raw.provider) {
        problems.push(Problem::new(
            format!("{path}.provider"),
            format!("no provider named `{}` under providers", raw.provider),
        ));
        return None;
    }
    if raw.upstream_model.as_deref() == Some("") {
        problems.push(Problem::new(format!("{path}.upstream_model"), "is empty"));
    }
    let pricing = raw.pricing.map(|p| {
        if !(p.input_per_million >= 0.0 && p.output_per_million >= 0.0) {
            problems.push(Problem::new(
                format!("{path}.pricing"),
                "prices must be 0 or more",
            ));
        }
        Pricing {
            input_per_million: p.input_per_million,
            output_per_million: p.output_per_million,
        }
    });
    if raw.max_output_tokens == Some(0) {
        problems.push(Problem::new(
            format!("{path}.max_output_tokens"),
            "must be 1 or more",
        ));
    }
    Some(RouteConfig {
        pattern: raw.pattern,
        provider: raw.provider,
        upstream_model: raw.upstream_model,
        pricing,
        max_output_tokens: raw.max_output_tokens,
        web_search: raw.web_search != Some(super::raw::OnOff::Off),
    })
}

fn load_balance_group(
    path: &str,
    raw: RawLoadBalanceGroup,
    problems: &mut Vec<Problem>,
) -> LoadBalanceGroup {
    if raw.models.is_empty() {
        problems.push(Problem::new(format!("{path}.models"), "is empty"));
    }
    let strategy = match raw.strategy.as_deref() {
        None | Some("weighted") => BalanceStrategy::Weighted,
        Some("least_latency") => BalanceStrategy::LeastLatency,
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.strategy"),
                format!("unknown strategy `{other}` (expected weighted or least_latency)"),
            ));
            BalanceStrategy::Weighted
        }
    };
    let models = raw
        .models
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            if !(m.weight.is_finite() && m.weight > 0.0) {
                problems.push(Problem::new(
                    format!("{path}.models[{i}].weight"),
                    "must be above 0",
                ));
            }
            WeightedModel {
                model: m.model,
                weight: m.weight,
            }
        })
        .collect();
    LoadBalanceGroup { models, strategy }
}

fn cache(raw: RawCache, problems: &mut Vec<Problem>) -> CacheConfig {
    let backend = match raw.backend.as_deref() {
        None | Some("memory") => CacheBackend::Memory,
        Some("redis") => CacheBackend::Redis,
        Some(other) => {
            problems.push(Problem::new(
                "cache.backend",
                format!("unknown backend `{other}` (expected memory or redis)"),
            ));
            CacheBackend::Memory
        }
    };
    if backend == CacheBackend::Redis && raw.redis_url.is_none() {
        problems.push(Problem::new(
            "cache.redis_url",
            "is required with backend: redis",
        ));
    }
    CacheConfig {
        backend,
        redis_url: raw.redis_url,
        max_entries: raw.max_entries.unwrap_or(10_000),
        max_bytes: raw.max_bytes.unwrap_or(256 * 1024 * 1024),
        default_ttl: Duration::from_secs(raw.default_ttl_seconds.unwrap_or(30 * 24 * 3600)),
    }
}

fn responses(raw: RawResponses, problems: &mut Vec<Problem>) -> ResponsesConfig {
    let ttl = raw.store_ttl_seconds.unwrap_or(24 * 3600);
    if ttl == 0 {
        problems.push(Problem::new(
            "responses.store_ttl_seconds",
            "must be 1 or more",
        ));
    }
    ResponsesConfig {
        store: raw.store.unwrap_or(false),
        store_ttl: Duration::from_secs(ttl),
    }
}

fn retry(raw: RawRetry, problems: &mut Vec<Problem>) -> RetryConfig {
    let retry_after = raw.retry_after.unwrap_or(0.2);
    if !(retry_after.is_finite() && retry_after >= 0.0) {
        problems.push(Problem::new(
            "retry.retry_after",
            "must be 0 or more seconds",
        ));
    }
    RetryConfig {
        retry_enabled: raw.retry_enabled.unwrap_or(true),
        num_retries: raw.num_retries.unwrap_or(3),
        retry_after,
    }
}

use crate::telemetry::capture::DEFAULT_MAX_CAPTURE_BYTES;
use crate::telemetry::export::{respan, OtlpEncoding, DEFAULT_EXPORT_QUEUE};

fn telemetry(raw: RawTelemetry, problems: &mut Vec<Problem>) -> TelemetryConfig {
    let exporters = raw
        .exporters
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let path = format!("telemetry.exporters[{i}]");
            let mut need = |value: Option<String>, key: &str| {
                if value.is_none() {
                    problems.push(Problem::new(
                        format!("{path}.{key}"),
                        format!("is required for type {}", e.kind),
                    ));
                }
                value
            };
            match e.kind.as_str() {
                "otlp_http" => {
                    let endpoint = need(e.endpoint, "endpoint");
                    let encoding = match e.encoding.as_deref() {
                        None | Some("protobuf") => OtlpEncoding::Protobuf,
                        Some("json") => OtlpEncoding::Json,
                        Some(other) => {
                            problems.push(Problem::new(
                                format!("{path}.encoding"),
                                format!("unknown encoding `{other}` (expected protobuf or json)"),
                            ));
                            OtlpEncoding::Protobuf
                        }
                    };
                    Some(ExporterConfig::OtlpHttp {
                        endpoint: endpoint?,
                        encoding,
                        headers: e.headers.into_iter().collect(),
                    })
                }
                "jsonl" => Some(ExporterConfig::Jsonl {
                    path: need(e.path, "path")?.into(),
                }),
                "respan" => Some(ExporterConfig::Respan {
                    endpoint: e
                        .endpoint
                        .unwrap_or_else(|| respan::DEFAULT_ENDPOINT.to_string()),
                    api_key: Secret::new(need(e.api_key, "api_key")?),
                }),
                other => {
                    problems.push(Problem::new(
                        format!("{path}.type"),
                        format!("unknown exporter `{other}` (expected otlp_http, jsonl or respan)"),
                    ));
                    None
                }
            }
        })
        .collect();
    if raw.export_queue == Some(0) {
        problems.push(Problem::new(
            "telemetry.export_queue",
            "must be at least 1".to_string(),
        ));
    }
    TelemetryConfig {
        capture_content: raw.capture_content.unwrap_or(true),
        max_capture_bytes: raw.max_capture_bytes.unwrap_or(DEFAULT_MAX_CAPTURE_BYTES),
        recent_traces: raw.recent_traces.unwrap_or(1000),
        export_queue: raw.export_queue.unwrap_or(DEFAULT_EXPORT_QUEUE),
        access_log: raw.access_log.unwrap_or(true),
        exporters,
    }
}
