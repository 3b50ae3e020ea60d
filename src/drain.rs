//! The drain's shared state: which phase a shutdown is in, and which exporters still run.
//! A leaf, so the relay and the exporters can follow a shutdown without depending on what
//! drives it (`shutdown`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Where the process is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// A signal came: requests in flight run on, no new connection is accepted.
    Draining,
    /// The grace period is spent: streams still running are ended.
    Deadline,
    /// No request is in flight (or none will end by itself): exporters flush and stop.
    Quiet,
}

/// The shared view of the shutdown: who is still working, and what phase it is in.
#[derive(Clone)]
pub struct Drain {
    phase: Arc<watch::Sender<Phase>>,
    /// Exporters still running (they flush before they stop).
    exporters: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            phase: Arc::new(watch::Sender::new(Phase::Serving)),
            exporters: Arc::default(),
        }
    }
}

impl Drain {
    /// Moves the shutdown on to `phase` (never back).
    pub fn enter(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            let later = phase > *p;
            if later {
                *p = phase;
            }
            later
        });
    }

    /// Resolves once the shutdown reaches `phase` (never, if it does not).
    pub fn reached(&self, phase: Phase) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.phase.subscribe();
        async move {
            if rx.wait_for(|p| *p >= phase).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves when streams still running are to be ended.
    pub fn deadline(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Phase::Deadline)
    }

    /// Exporters that have not yet flushed and stopped.
    pub fn exporters_running(&self) -> usize {
        self.exporters.load(Ordering::Acquire)
    }

    /// Counts an exporter as running until the guard is dropped.
    pub fn exporter(&self) -> ExporterGuard {
        self.exporters.fetch_add(1, Ordering::AcqRel);
        ExporterGuard(self.exporters.clone())
    }
}

/// Held by a running exporter.
pub struct ExporterGuard(Arc<AtomicUsize>);

impl Drop for ExporterGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
