//! What the gateway reports about itself: one record per request (`record`), from which its
//! metrics, its access log line and its trace are derived when it ends (`Telemetry::finish`);
//! the exporters that ship traces off the request path; and the process's own logs.
//!
//! Used by every other module; uses none of them but the model catalog (the formats of captured text are read back
//! by a `Transcriber` that `translate` hands in).

pub(crate) mod access_log;
pub(crate) mod breakdown;
pub mod capture;
pub(crate) mod cost;
pub mod export;
pub(crate) mod ids;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod minutes;
pub mod record;
pub mod trace;

use capture::Transcriber;
use export::Queue;
use metrics::metrics;
use record::RequestRecord;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use trace::Trace;

/// How much of each request the telemetry keeps.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Message text in traces (`telemetry.capture_content`).
    pub capture_content: bool,
    /// Bytes of an answer kept for its trace (`telemetry.max_capture_bytes`).
    pub max_capture_bytes: usize,
    /// Traces kept for `/api/traces` and the Logs page (`telemetry.recent_traces`).
    pub recent_traces: usize,
    /// One log line per request (`telemetry.access_log`).
    pub access_log: bool,
}

/// The process's telemetry: the recent traces, the last hour per minute, and the
/// exporters' queues.
pub struct Telemetry {
    pub settings: Settings,
    pub transcriber: Transcriber,
    recent: Mutex<VecDeque<Arc<Trace>>>,
    /// Every request's sums, per minute, for the Logs page's charts.
    pub minutes: minutes::Minutes,
    queues: Vec<Queue>,
}

impl Telemetry {
    pub fn new(settings: Settings, transcriber: Transcriber, queues: Vec<Queue>) -> Telemetry {
        Telemetry {
            settings,
            transcriber,
            recent: Mutex::new(VecDeque::with_capacity(settings.recent_traces.min(4096))),
            minutes: minutes::Minutes::default(),
            queues,
        }
    }

    /// Whether a request's text may be kept: `capture_content` and not its `disable_log`.
    pub fn may_capture(&self, disable_log: bool) -> bool {
        self.settings.capture_content && !disable_log
    }

    /// The output capture limit for a request: 0 when its text is not to be kept.
    pub fn capture_limit(&self, record: &RequestRecord) -> usize {
        if record.disable_log {
            0
        } else {
            self.settings.max_capture_bytes
        }
    }

    /// At a request's end: its metrics, its log line, and (unless it is to be omitted) its
    /// trace handed to the recent list and to every exporter's queue (a full queue drops it and counts the drop; the
    /// request never waits).
    /// The trace is returned for what else reads the request's end (its limits' settlement).
    pub fn finish(&self, request_id: String, record: RequestRecord) -> Arc<Trace> {
        let trace = Arc::new(Trace::finish(request_id, record));
        metrics().observe(&trace);
        self.minutes.observe(&trace);
        if self.settings.access_log {
            access_log::line(&trace);
        }
        if trace.record.omit_trace {
            return trace;
        }
        for queue in &self.queues {
            queue.offer(&trace);
        }
        if self.settings.recent_traces > 0 {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() >= self.settings.recent_traces {
                recent.pop_front();
            }
            recent.push_back(trace.clone());
        }
        trace
    }

    /// The newest traces first, those `keep` accepts, at most `limit`.
    pub fn recent(&self, limit: usize, keep: impl Fn(&Trace) -> bool) -> Vec<Arc<Trace>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .rev()
            .filter(|t| keep(t))
            .take(limit)
            .cloned()
            .collect()
    }
}
