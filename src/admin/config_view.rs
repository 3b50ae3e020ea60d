//! `GET /config`: the config in force as JSON, every secret shown as `"***"`, with its
//! `version` (sha256 of the file), `loaded_at` and `last_reload_error`.
//!
//! Written out field by field rather than derived, so that a secret added to the config
//! later cannot appear here by accident: only what is named below is shown.

use crate::config::{
    BalanceStrategy, CacheBackend, Config, ExporterConfig, PromptConfig, ProviderConfig,
    RouteConfig, Secret,
};
use crate::state::Snapshot;
use crate::telemetry::export::OtlpEncoding;
use crate::telemetry::trace::rfc3339;
use serde_json::{json, Map, Value};

const HIDDEN: &str = "***";

/// The body of `/config`: the snapshot in force, and why the last reload was refused.
pub fn view(snapshot: &Snapshot, last_reload_error: Option<&str>) -> Vec<u8> {
    let v = json!({
        "version": snapshot.version,
        "loaded_at": rfc3339(snapshot.loaded_at),
        "last_reload_error": last_reload_error,
        "config": config(&snapshot.config),
    });
    serde_json::to_vec_pretty(&v).unwrap_or_default()
}

/// A prompt template and its other versions.
fn prompt(p: &PromptConfig) -> Value {
    let versions: Map<String, Value> = p
        .versions
        .iter()
        .map(|(n, v)| (n.to_string(), prompt(v)))
        .collect();
    json!({
        "model": p.model,
        "messages": p.messages,
        "parameters": p.parameters,
        "version": p.version,
        "versions": versions,
    })
}

fn config(c: &Config) -> Value {
    let s = &c.server;
    json!({
        "server": {
            "listen": s.listen.to_string(),
            "admin_listen": s.admin_listen.to_string(),
            "max_request_body_bytes": s.max_request_body_bytes,
            "max_json_depth": s.max_json_depth,
            "max_header_bytes": s.max_header_bytes,
            "max_concurrent_requests": s.max_concurrent_requests,
            "admin_token": s.admin_token.as_ref().map(hidden),
            "client_header_timeout_ms": s.client_header_timeout.as_millis() as u64,
            "upstream_timeout_ms": s.upstream_timeout.as_millis() as u64,
            "connect_timeout_ms": s.connect_timeout.as_millis() as u64,
            "stream_idle_timeout_ms": s.stream_idle_timeout.as_millis() as u64,
            "shutdown_grace_ms": s.shutdown_grace.as_millis() as u64,
            "threads": s.threads,
        },
        "auth": c.auth.as_ref().map(|a| json!({
            "keys": a.keys.iter().map(|k| json!({
                "key": hidden(&k.key),
                "customer_identifier": k.customer_identifier,
            })).collect::<Vec<_>>(),
        })),
        "providers": c.providers.iter().map(|p| (p.name.clone(), provider(p))).collect::<Map<_, _>>(),
        "routes": c.routes.as_ref().map(|r| r.iter().map(route).collect::<Vec<_>>()),
        "load_balance_groups": c.load_balance_groups.iter().map(|(name, g)| (name.clone(), json!({
            "strategy": match g.strategy {
                BalanceStrategy::Weighted => "weighted",
                BalanceStrategy::LeastLatency => "least_latency",
            },
            "models": g.models.iter().map(|m| json!({"model": m.model, "weight": m.weight})).collect::<Vec<_>>(),
        }))).collect::<Map<_, _>>(),
        "prompts": c.prompts.iter().map(|(name, p)| (name.clone(), prompt(p))).collect::<Map<_, _>>(),
        "respan_prompts": c.respan_prompts.as_ref().map(|r| json!({
            "base_url": r.base_url,
            "api_key": HIDDEN,
            "refresh_seconds": r.refresh.as_secs(),
        })),
        "cache": {
            "backend": match c.cache.backend {
                CacheBackend::Memory => "memory",
                CacheBackend::Redis => "redis",
            },
            // A Redis URL may carry a password.
            "redis_url": c.cache.redis_url.as_ref().map(|_| HIDDEN),
            "max_entries": c.cache.max_entries,
            "max_bytes": c.cache.max_bytes,
            "default_ttl_seconds": c.cache.default_ttl.as_secs(),
        },
        "responses": {
            "store": c.responses.store,
            "store_ttl_seconds": c.responses.store_ttl.as_secs(),
        },
        "retry": {
            "retry_enabled": c.retry.retry_enabled,
            "num_retries": c.retry.num_retries,
            "retry_after": c.retry.retry_after,
        },
        "telemetry": {
            "capture_content": c.telemetry.capture_content,
            "max_capture_bytes": c.telemetry.max_capture_bytes,
            "recent_traces": c.telemetry.recent_traces,
            "export_queue": c.telemetry.export_queue,
            "access_log": c.telemetry.access_log,
            "exporters": c.telemetry.exporters.iter().map(exporter).collect::<Vec<_>>(),
        },
    })
}

fn hidden(_: &Secret) -> &'static str {
    HIDDEN
}

fn provider(p: &ProviderConfig) -> Value {
    json!({
        "type": p.kind.as_str(),
        "base_url": p.base_url.as_ref().map(ToString::to_string),
        "api_key": p.api_key.as_ref().map(hidden),
        "api_key_file": p.api_key_file.as_ref().map(|f| f.display().to_string()),
        "api_version": p.api_version,
        // Extra headers are often credentials of their own: names only.
        "headers": p.headers.iter().map(|(name, _)| (name.to_string(), Value::from(HIDDEN))).collect::<Map<_, _>>(),
        "health": {
            "consecutive_failures": p.health.consecutive_failures,
            "cooldown_ms": p.health.cooldown.as_millis() as u64,
        },
    })
}

fn route(r: &RouteConfig) -> Value {
    json!({
        "match": r.pattern,
        "provider": r.provider,
        "upstream_model": r.upstream_model,
        "pricing": r.pricing.map(|p| json!({
            "input_per_million": p.input_per_million,
            "output_per_million": p.output_per_million,
        })),
    })
}

fn exporter(e: &ExporterConfig) -> Value {
    match e {
        ExporterConfig::OtlpHttp {
            endpoint,
            encoding,
            headers,
        } => json!({
            "type": "otlp_http",
            "endpoint": endpoint,
            "encoding": match encoding {
                OtlpEncoding::Protobuf => "protobuf",
                OtlpEncoding::Json => "json",
            },
            "headers": headers.iter().map(|(k, _)| (k.clone(), Value::from(HIDDEN))).collect::<Map<_, _>>(),
        }),
        ExporterConfig::Jsonl { path } => {
            json!({"type": "jsonl", "path": path.display().to_string()})
        }
        ExporterConfig::Respan { endpoint, api_key } => json!({
            "type": "respan",
            "endpoint": endpoint,
            "api_key": hidden(api_key),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_secret_is_shown() {
        let yaml = r#"
auth:
  keys:
    - key: app-token-qqq1
providers:
  openai:
    type: openai
    base_url: "https://api.openai.com/v1"
    api_key: sk-secret-qqq2
    headers: {x-extra-auth: hdr-secret-qqq3}
cache:
  redis_url: "redis://:pw-secret-qqq4@127.0.0.1:6379"
telemetry:
  exporters:
    - {type: respan, endpoint: "https://example.invalid/x", api_key: rk-secret-qqq5}
    - {type: otlp_http, endpoint: "http://127.0.0.1:4318/v1/traces", headers: {authorization: otlp-secret-qqq6}}
"#;
        let loaded = crate::config::parse(yaml, std::path::Path::new("."), &|_| None).unwrap();
        let snapshot = Snapshot::new(loaded.config, loaded.version).unwrap();
        let text = String::from_utf8(view(&snapshot, None)).unwrap();
        for secret in ["qqq1", "qqq2", "qqq3", "qqq4", "qqq5", "qqq6"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["config"]["providers"]["openai"]["api_key"], "***");
        assert_eq!(v["version"].as_str().unwrap().len(), 64);
        assert!(v["last_reload_error"].is_null());
    }
}
