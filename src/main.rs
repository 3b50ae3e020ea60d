//! The `respan-sidecar` command: parse the command line and hand over; no logic here.

use clap::{Parser, Subcommand};
use respan_sidecar::{config, inject, server, telemetry, webhook};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Measured with the benchmark: fewer CPU cycles per request than the system allocator
/// (Pingora allocates dozens of small objects per request).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "respan-sidecar",
    version,
    about = "An OpenAI-compatible LLM gateway sidecar"
)]
struct Cli {
    /// Config file (also RESPAN_SIDECAR_CONFIG).
    #[arg(
        long,
        global = true,
        env = "RESPAN_SIDECAR_CONFIG",
        default_value = "conf/respan-sidecar.yaml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar (the default).
    Run,
    /// Parse and validate the config: prints `config OK`, or every problem and exits 1.
    Check,
    /// Print Kubernetes manifests with the sidecar added to pods annotated
    /// `respan.ai/inject: "true"` (pipe into `kubectl apply -f -`).
    Inject(Manifests),
    /// Print Kubernetes manifests with what `inject` added taken out.
    Uninject(Manifests),
    /// Serve the mutating admission webhook that injects the sidecar into pods annotated
    /// `respan.ai/inject: "true"` as they are created (HTTPS, POST /mutate).
    Webhook(Webhook),
}

#[derive(clap::Args)]
struct Webhook {
    /// The HTTPS listen address.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: std::net::SocketAddr,
    /// The serving certificate chain (PEM); read again when it changes.
    #[arg(long, default_value = "/etc/respan-webhook/tls.crt")]
    tls_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, default_value = "/etc/respan-webhook/tls.key")]
    tls_key: PathBuf,
}

#[derive(clap::Args)]
struct Manifests {
    /// A YAML file of one or more documents; `-` or none reads stdin.
    #[arg(short = 'f', long = "filename")]
    file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
        Command::Inject(m) => manifests(m, inject::Change::Inject),
        Command::Uninject(m) => manifests(m, inject::Change::Uninject),
        Command::Webhook(w) => serve_webhook(w),
        Command::Run => run(&cli.config),
    }
}

fn serve_webhook(w: Webhook) -> ExitCode {
    telemetry::logging::init();
    let options = webhook::Options {
        listen: w.listen,
        tls_cert: w.tls_cert,
        tls_key: w.tls_key,
    };
    match webhook::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("webhook: {e}");
            ExitCode::FAILURE
        }
    }
}

fn manifests(m: Manifests, change: inject::Change) -> ExitCode {
    let text = match m.file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
        }
        None => std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}")),
    };
    match text.and_then(|t| inject::documents(&t, change)) {
        Ok(out) => {
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            let _ = writeln!(std::io::stdout(), "config OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            for problem in &e.problems {
                eprintln!("{problem}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    telemetry::logging::init();
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            for problem in &e.problems {
                tracing::error!("config {}: {problem}", path.display());
            }
            return ExitCode::FAILURE;
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("config: {warning}");
    }
    match server::run(path, loaded) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
