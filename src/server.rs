//! Wires a loaded config into a running Pingora server: the API port (the gateway), the
//! admin port, the background services, and the signals that end it.

use crate::admin::{AdminApp, AdminListener, Readiness, ReadinessProbe};
use crate::cache::ResponseCache;
use crate::config::{Config, Loaded};
use crate::drain::Drain;
use crate::head_timeout::HeadTimeout;
use crate::health::Circuits;
use crate::limits::Limits;
use crate::prompts::managed::{ManagedPrompts, PromptRefresher};
use crate::proxy::{Gateway, Kept};
use crate::reload::watch::ConfigWatcher;
use crate::reload::Reloader;
use crate::shutdown::{DrainService, Signals};
use crate::state::{self, Snapshot};
use crate::stored_responses::StoredResponses;
use crate::telemetry::capture::Transcriber;
use crate::telemetry::export::{self, ExportService};
use crate::telemetry::Telemetry;
use crate::translate::transcript;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::background_service;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::BackgroundService;
use pingora::services::listening::Service;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

/// Idle upstream connections kept for reuse: at least the peak concurrent upstream calls
/// (fewer costs new connections under load).
const UPSTREAM_POOL_SIZE: usize = 1024;

/// The write buffer of each app connection. Pingora's default (1,460 bytes, one TCP segment)
/// holds a head but not the body after it, so a stream's head, its first events and its
/// end each took a send of their own; a buffer that holds a typical answer sends the head
/// with what follows it (each send over loopback wakes the app: a send saved is about a
/// tenth of a short stream's CPU). Only the bytes written are ever touched.
const DOWNSTREAM_WRITE_BUFFER: usize = 16 * 1024;

/// No read buffer under each app connection: Pingora's HTTP/1 session reads heads and
/// bodies into buffers of its own, so its default 64 KiB L4 read buffer only held bytes
/// twice, and it is allocated zero-filled: on reused memory every one of its pages is
/// touched. With 1,000 live streams that was 60 KiB resident a stream once the process had
/// carried a load before (peak 147-151 MiB on a second load, 84-87 MiB without it).
const DOWNSTREAM_READ_BUFFER: usize = 0;

/// Each stream holds two sockets (the app's and the provider's): the soft limit on open
/// files (1,024 by default on many systems) is raised to the hard one, as nginx's
/// `worker_rlimit_nofile` would, so that a thousand streams do not fail to accept.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(e) = setrlimit(Resource::Nofile, raised) {
        tracing::warn!("open files limit left at {:?}: {e}", limit.current);
    }
}

/// Runs the sidecar on the config loaded from `path` until it is told to stop. Returns early
/// only if it cannot start.
pub fn run(path: &Path, loaded: Loaded) -> Result<(), String> {
    let config = loaded.config.clone();
    raise_open_files_limit();
    // Pingora retries a taken port for 30 s and then panics; check first, fail fast and clear.
    check_bind("server.listen", config.server.listen)?;
    let admin_socket = TcpListener::bind(config.server.admin_listen).map_err(|e| {
        let addr = config.server.admin_listen;
        format!("server.admin_listen: cannot listen on {addr}: {e}")
    })?;
    let server_conf = ServerConf {
        threads: config.server.threads,
        // Measured: no work stealing is cheaper per request for a proxy this size.
        work_stealing: false,
        // Only a fallback: the drain ends the process itself (see `shutdown`).
        grace_period_seconds: Some(config.server.shutdown_grace.as_secs() + PINGORA_GRACE_MARGIN),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: UPSTREAM_POOL_SIZE,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();

    let listen = config.server.listen;
    // Bound at start, as the listeners are.
    let config_header_timeout = config.server.client_header_timeout;
    let admin_listen = config.server.admin_listen;
    let drain = Drain::default();
    let (telemetry, exporters) = telemetry(&config, &drain)?;
    let snapshot = Snapshot::new(config, loaded.version.clone()).map_err(|e| e.to_string())?;
    let state = state::shared(snapshot);
    let reloader = Arc::new(Reloader::new(path.to_path_buf(), state.clone(), &loaded));
    let readiness = Readiness::default();

    let prompts = Arc::new(ManagedPrompts::default());
    let cache = ResponseCache::new(&loaded.config.cache)?;
    let coherence = cache.coherence_service()?;
    let circuits = Arc::new(Circuits::default());
    let limits = Arc::new(Limits::new(&loaded.config.limits)?);
    let alerts = limits.alert_service();
    let settler = limits.settle_service(drain.clone());
    let gateway = Gateway::new(
        state.clone(),
        UPSTREAM_POOL_SIZE,
        telemetry.clone(),
        drain.clone(),
        Kept {
            cache,
            prompts: prompts.clone(),
            stored: StoredResponses::new(&loaded.config.cache)?,
            circuits: circuits.clone(),
            limits: limits.clone(),
        },
    );
    let mut proxy = HttpProxy::new(gateway, server.configuration.clone());
    proxy.handle_init_modules();
    let mut options = HttpServerOptions::default();
    options.keepalive_request_limit = Some(KEEPALIVE_REQUESTS);
    proxy.server_options = Some(options);
    let timed = HeadTimeout {
        app: Arc::new(proxy),
        timeout: config_header_timeout,
    };
    let mut api = Service::new("respan-sidecar API".to_string(), timed);
    let buffers = L4BufferSettings::new(DOWNSTREAM_READ_BUFFER, DOWNSTREAM_WRITE_BUFFER);
    api.add_listener(ListenerConfig::tcp(listen.to_string()).l4_buffer(buffers));
    server.add_service(api);

    let admin = AdminApp::new(
        readiness.clone(),
        state.clone(),
        telemetry,
        circuits,
        limits,
    );
    add_background(
        &mut server,
        "admin",
        AdminListener::new(admin, admin_socket),
    );
    let probe = ReadinessProbe {
        readiness: readiness.clone(),
        api_addr: listen,
    };
    add_background(&mut server, "readiness", probe);
    add_background(&mut server, "config watcher", ConfigWatcher { reloader });
    let refresher = PromptRefresher {
        prompts,
        state: state.clone(),
    };
    add_background(&mut server, "prompt refresher", refresher);
    if let Some(settler) = settler {
        add_background(&mut server, "limit settlement", settler);
    }
    if let Some(alerts) = alerts {
        add_background(&mut server, "limit alerts", alerts);
    }
    if let Some(coherence) = coherence {
        add_background(&mut server, "cache coherence", coherence);
    }
    for exporter in exporters {
        add_background(&mut server, "trace exporter", exporter);
    }
    let drainer = DrainService {
        drain: drain.clone(),
        state,
    };
    add_background(&mut server, "drain", drainer);
    tracing::info!(%listen, %admin_listen, "respan-sidecar starting");
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals { drain, readiness }),
    });
    Ok(())
}

/// Requests one app connection may carry before it is closed (nginx's `keepalive_requests`
/// default): per-connection state is freed now and then, and no client holds one forever.
const KEEPALIVE_REQUESTS: u32 = 1000;

/// Pingora's fallback grace period outlasts the drain's own deadline by this many seconds.
const PINGORA_GRACE_MARGIN: u64 = 3;

/// Adds a background service on a thread of its own.
fn add_background<S: BackgroundService + Send + Sync + 'static>(
    server: &mut Server,
    name: &str,
    service: S,
) {
    let mut service = background_service(name, service);
    service.threads = Some(1);
    server.add_service(service);
}

/// The telemetry, with a queue and a background service for each configured exporter.
fn telemetry(
    config: &Config,
    drain: &Drain,
) -> Result<(Arc<Telemetry>, Vec<ExportService>), String> {
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
            drain.clone(),
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
