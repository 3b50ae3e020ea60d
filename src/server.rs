//! Wires a loaded config into a running Pingora server: the API port (the gateway), the
//! admin port and the background services.

use crate::admin::{AdminApp, Readiness, ReadinessProbe};
use crate::config::{Config, Loaded};
use crate::proxy::Gateway;
use crate::reload::watch::ConfigWatcher;
use crate::reload::Reloader;
use crate::state::{self, Snapshot};
use crate::telemetry::capture::Transcriber;
use crate::telemetry::export::{self, ExportService};
use crate::telemetry::Telemetry;
use crate::translate::transcript;
use pingora::prelude::{background_service, http_proxy_service};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

/// Idle upstream connections kept for reuse: at least the peak concurrent upstream calls
/// (fewer costs new connections under load).
const UPSTREAM_POOL_SIZE: usize = 1024;

/// Runs the sidecar on the config loaded from `path` until it is told to stop. Returns early
/// only if it cannot start.
pub fn run(path: &Path, loaded: Loaded) -> Result<(), String> {
    let config = loaded.config.clone();
    // Pingora retries a taken port for 30 s and then panics; check first, fail fast and clear.
    check_bind("server.listen", config.server.listen)?;
    check_bind("server.admin_listen", config.server.admin_listen)?;
    let server_conf = ServerConf {
        threads: config.server.threads,
        // Measured: no work stealing is cheaper per request for a proxy this size.
        work_stealing: false,
        grace_period_seconds: Some(config.server.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: UPSTREAM_POOL_SIZE,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();

    let listen = config.server.listen;
    let admin_listen = config.server.admin_listen;
    let (telemetry, exporters) = telemetry(&config)?;
    let snapshot = Snapshot::new(config, loaded.version.clone()).map_err(|e| e.to_string())?;
    let state = state::shared(snapshot);
    let reloader = Arc::new(Reloader::new(path.to_path_buf(), state.clone(), &loaded));
    let readiness = Readiness::default();

    let mut api = http_proxy_service(
        &server.configuration,
        Gateway::new(state.clone(), UPSTREAM_POOL_SIZE, telemetry.clone()),
    );
    api.add_tcp(&listen.to_string());

    let mut admin = Service::new(
        "admin".to_string(),
        AdminApp::new(readiness.clone(), state, telemetry),
    );
    admin.add_tcp(&admin_listen.to_string());
    admin.threads = Some(1);

    let mut probe = background_service(
        "readiness",
        ReadinessProbe {
            readiness,
            api_addr: listen,
        },
    );
    probe.threads = Some(1);

    server.add_service(api);
    server.add_service(admin);
    server.add_service(probe);
    let mut watcher = background_service("config watcher", ConfigWatcher { reloader });
    watcher.threads = Some(1);
    server.add_service(watcher);
    for exporter in exporters {
        let mut service = background_service("trace exporter", exporter);
        service.threads = Some(1);
        server.add_service(service);
    }
    tracing::info!(%listen, %admin_listen, "respan-sidecar starting");
    server.run_forever()
}

/// The telemetry, with a queue and a background service for each configured exporter.
fn telemetry(config: &Config) -> Result<(Arc<Telemetry>, Vec<ExportService>), String> {
    let transcriber = Transcriber {
        input: transcript::input,
        output: transcript::output,
    };
    let mut queues = Vec::new();
    let mut services = Vec::new();
    for (i, exporter) in config.telemetry.exporters.iter().enumerate() {
        let (queue, service) = export::exporter(
            exporter.destination(),
            transcriber,
            config.telemetry.export_queue,
        )
        .map_err(|e| format!("telemetry.exporters[{i}]: {e}"))?;
        queues.push(queue);
        services.push(service);
    }
    let settings = config.telemetry.settings();
    Ok((
        Arc::new(Telemetry::new(settings, transcriber, queues)),
        services,
    ))
}

fn check_bind(key: &str, addr: SocketAddr) -> Result<(), String> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))
}
