//! Graceful shutdown, the way a Kubernetes rollout needs it.
//!
//! On SIGTERM or SIGINT: readiness drops at once, Pingora stops the API listener (the admin
//! port keeps answering, `/readyz` with 503), requests in flight run on, and the process
//! exits 0 as soon as none is left and the exporters have flushed: at once when idle.
//! Pingora's own grace period is a fixed sleep (PINGORA.md), so it is only the fallback; the
//! exit is made here. Streams still running at `server.shutdown_grace_ms` end with an in-band
//! error event (`Drain::deadline`, see `drain`), not a cut connection.

use crate::admin::Readiness;
use crate::drain::{Drain, Phase};
use crate::state::SharedState;
use crate::telemetry::metrics::metrics;
use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::BackgroundService;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

/// How often the drain looks at what is still in flight.
const LOOK_EVERY: Duration = Duration::from_millis(5);
/// After the deadline: time for the cut streams to write their error event.
const LAST_WORDS: Duration = Duration::from_millis(500);
/// The exporters' flush may outlast the grace period by this much when it is spent.
const MIN_FLUSH: Duration = Duration::from_secs(1);

/// The signals that stop the process, for Pingora's main loop. SIGTERM and SIGINT both
/// drain gracefully (readiness drops before Pingora hears of it); SIGQUIT (Pingora's
/// graceful upgrade) is not used by this sidecar and is left to its default.
pub struct Signals {
    pub drain: Drain,
    pub readiness: Readiness,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for SIGTERM and SIGINT: stopping now");
            return ShutdownSignal::FastShutdown;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        self.readiness.set(false);
        self.drain.enter(Phase::Draining);
        tracing::info!("{name}: draining; new connections are refused");
        ShutdownSignal::GracefulTerminate
    }
}

/// Ends the process once the drain is over.
pub struct DrainService {
    pub drain: Drain,
    pub state: SharedState,
}

#[async_trait]
impl BackgroundService for DrainService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            return;
        }
        self.drain.enter(Phase::Draining);
        let grace = self.state.load_full().config.server.shutdown_grace;
        let deadline = Instant::now() + grace;
        let left = until(deadline, in_flight).await;
        if left > 0 {
            tracing::warn!(
                in_flight = left,
                "shutdown grace period spent: ending what still runs"
            );
            self.drain.enter(Phase::Deadline);
            until(Instant::now() + LAST_WORDS, in_flight).await;
        }
        self.drain.enter(Phase::Quiet);
        let flush_by = deadline.max(Instant::now() + MIN_FLUSH);
        let unflushed = until(flush_by, || self.drain.queues_running()).await;
        tracing::info!(queues_unflushed = unflushed, "drained; exiting");
        std::process::exit(0);
    }
}

/// Requests in flight on the API port.
fn in_flight() -> usize {
    usize::try_from(metrics().inflight.get()).unwrap_or(0)
}

/// Waits until `count` is 0 or `by` has passed; what `count` was last.
async fn until(by: Instant, count: impl Fn() -> usize) -> usize {
    loop {
        let n = count();
        if n == 0 || Instant::now() >= by {
            return n;
        }
        tokio::time::sleep(LOOK_EVERY.min(by - Instant::now())).await;
    }
}
