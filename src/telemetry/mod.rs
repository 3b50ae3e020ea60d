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
    recent: Mutex<Recent>,
    /// Every request's sums, per minute, for the Logs page's charts.
    pub minutes: minutes::Minutes,
    queues: Vec<Queue>,
}

impl Telemetry {
    pub fn new(settings: Settings, transcriber: Transcriber, queues: Vec<Queue>) -> Telemetry {
        Telemetry {
            settings,
            transcriber,
            recent: Mutex::new(Recent {
                traces: VecDeque::with_capacity(settings.recent_traces.min(4096)),
                ..Recent::default()
            }),
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
            if recent.traces.len() >= self.settings.recent_traces {
                recent.traces.pop_front();
            }
            recent.traces.push_back(trace.clone());
            recent.pushed += 1;
        }
        trace
    }

    /// The newest traces first, those `keep` accepts, at most `limit`.
    pub fn recent(&self, limit: usize, keep: impl Fn(&Trace) -> bool) -> Vec<Arc<Trace>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .traces
            .iter()
            .rev()
            .filter(|t| keep(t))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Moves the recent traces into fresh allocations once no trace has come in since the
    /// last call (every idle request thread calls it, `allocator`), and not again until
    /// new ones have. The traces of a load's last requests were allocated among its
    /// short-lived data, and each held a page of it after the load; copied when the process
    /// is quiet, they fill few pages, and the allocator can give the rest back.
    pub fn compact_recent(&self) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let quiet = recent.pushed == recent.looked;
        recent.looked = recent.pushed;
        if !quiet || recent.compacted == recent.pushed {
            return;
        }
        recent.compacted = recent.pushed;
        for trace in &mut recent.traces {
            // A trace an exporter still holds stays where it is.
            if Arc::strong_count(trace) == 1 {
                *trace = Arc::new(trace.copied());
            }
        }
    }
}

/// The recent traces, and counts of what came in, for [`Telemetry::compact_recent`].
#[derive(Default)]
struct Recent {
    traces: VecDeque<Arc<Trace>>,
    /// Traces pushed, ever.
    pushed: u64,
    /// `pushed` at the last call of `compact_recent`.
    looked: u64,
    /// `pushed` when the traces were last compacted.
    compacted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace::tests::{record, transcriber};

    fn telemetry(recent_traces: usize) -> Telemetry {
        let settings = Settings {
            capture_content: true,
            max_capture_bytes: 1024,
            recent_traces,
            access_log: false,
        };
        Telemetry::new(settings, transcriber(), Vec::new())
    }

    fn addresses(t: &Telemetry) -> Vec<*const Trace> {
        t.recent(usize::MAX, |_| true)
            .iter()
            .map(Arc::as_ptr)
            .collect()
    }

    #[test]
    fn the_recent_traces_are_copied_once_the_ring_is_quiet_and_not_again() {
        let t = telemetry(3);
        let held = t.finish("a".into(), record());
        t.finish("b".into(), record());
        t.finish("c".into(), record());
        let before = addresses(&t);

        t.compact_recent();
        assert_eq!(addresses(&t), before, "traces came in since the last look");
        t.finish("d".into(), record());
        let before = addresses(&t);
        t.compact_recent();
        assert_eq!(addresses(&t), before, "and again");

        t.compact_recent();
        let after = addresses(&t);
        assert!(
            before.iter().zip(&after).all(|(b, a)| b != a),
            "quiet: copied"
        );
        let ids: Vec<String> = t
            .recent(usize::MAX, |_| true)
            .iter()
            .map(|t| t.request_id.clone())
            .collect();
        assert_eq!(ids, ["d", "c", "b"]);

        t.compact_recent();
        assert_eq!(addresses(&t), after, "nothing new: left alone");
        drop(held);
    }

    #[test]
    fn a_trace_held_elsewhere_is_not_copied() {
        let t = telemetry(2);
        let held = t.finish("a".into(), record());
        t.finish("b".into(), record());
        t.compact_recent();
        t.compact_recent();
        let recent = t.recent(usize::MAX, |_| true);
        assert!(
            Arc::ptr_eq(&recent[1], &held),
            "an exporter's queue still has it"
        );
        assert_eq!(recent[0].request_id, "b");
    }
}
