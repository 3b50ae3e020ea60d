//! The process's own log: stderr, JSON lines with `RESPAN_LOG_FORMAT=json`, human-readable
//! otherwise, level from `RESPAN_LOG` (default `info`). Pingora's `log` records are bridged in.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once, at start-up.
pub fn init() {
    let filter = std::env::var("RESPAN_LOG").unwrap_or_else(|_| "info".to_string());
    // Pingora logs every failed proxied request at error level; the gateway reports failures
    // itself (status, metrics), so its noise is kept to warnings unless asked for.
    let filter = EnvFilter::try_new(format!("pingora_core=warn,pingora_proxy=warn,{filter}"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("RESPAN_LOG_FORMAT").is_ok_and(|f| f == "json");
    // A second init (tests) is not an error worth stopping for.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
