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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
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
                slots: VecDeque::with_capacity(settings.recent_traces.min(4096)),
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
            let mut recent = self.ring();
            if recent.slots.len() >= self.settings.recent_traces {
                recent.slots.pop_front();
            }
            let number = recent.pushed;
            recent.slots.push_back(Slot {
                trace: trace.clone(),
                number,
                copied: false,
            });
            recent.pushed += 1;
            recent.last_end = Some(trace.ended_at);
        }
        trace
    }

    /// The newest traces first, those `keep` accepts, at most `limit`.
    pub fn recent(&self, limit: usize, keep: impl Fn(&Trace) -> bool) -> Vec<Arc<Trace>> {
        self.ring()
            .slots
            .iter()
            .rev()
            .map(|slot| &slot.trace)
            .filter(|t| keep(t))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Copies the recent traces into fresh allocations, each once, when no request has
    /// ended for [`QUIET`] (every idle request thread calls it, `allocator`). The traces of a
    /// load's last requests were allocated among its short-lived data, and each kept a page
    /// of it after the load; copied while the process is quiet, they fill few pages, and the
    /// allocator can give the rest back. Each copy is made outside the lock, which is held
    /// only to swap it in; a request ending meanwhile stops the compaction.
    pub fn compact_recent(&self) {
        let Some(compaction) = self.compaction_start() else {
            return;
        };
        for (number, old) in compaction.todo {
            let copy = Arc::new(old.copied());
            let mut recent = self.ring();
            if recent.last_end != compaction.last_end {
                break;
            }
            if let Some(slot) = recent.slot(number) {
                if Arc::ptr_eq(&slot.trace, &old) {
                    slot.trace = copy;
                    slot.copied = true;
                }
            }
        }
        self.ring().compacting = false;
    }

    /// What to copy, if the ring is quiet and no other thread is compacting it.
    fn compaction_start(&self) -> Option<Compaction> {
        let mut recent = self.ring();
        let quiet = recent
            .last_end
            .is_some_and(|end| end.elapsed().is_ok_and(|since| since >= QUIET));
        if !quiet || recent.compacting {
            return None;
        }
        let todo: Vec<_> = recent
            .slots
            .iter()
            .filter(|slot| !slot.copied && Arc::strong_count(&slot.trace) == 1)
            .map(|slot| (slot.number, slot.trace.clone()))
            .collect();
        if todo.is_empty() {
            return None;
        }
        recent.compacting = true;
        Some(Compaction {
            todo,
            last_end: recent.last_end,
        })
    }

    fn ring(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A compaction's work, taken under the ring's lock and done outside it.
struct Compaction {
    /// The traces not yet copied that nothing else holds (an exporter's queue may), with
    /// their numbers.
    todo: Vec<(u64, Arc<Trace>)>,
    /// When the last request ended: another ending meanwhile stops the compaction.
    last_end: Option<SystemTime>,
}

/// How long after the last request ended the recent traces may be copied.
const QUIET: Duration = Duration::from_secs(5);

/// The recent traces, oldest first.
#[derive(Default)]
struct Recent {
    slots: VecDeque<Slot>,
    /// Traces pushed, ever: the next one's number.
    pushed: u64,
    /// When the last pushed trace's request ended.
    last_end: Option<SystemTime>,
    /// A thread is copying the traces.
    compacting: bool,
}

impl Recent {
    /// The slot of the trace pushed `number`th, while it is kept.
    fn slot(&mut self, number: u64) -> Option<&mut Slot> {
        let first = self.slots.front()?.number;
        let index = usize::try_from(number.checked_sub(first)?).ok()?;
        self.slots
            .get_mut(index)
            .filter(|slot| slot.number == number)
    }
}

/// A recent trace.
struct Slot {
    trace: Arc<Trace>,
    number: u64,
    /// It has been copied since its request ended (`Telemetry::compact_recent`).
    copied: bool,
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

    /// A request that ended `ago`.
    fn ended(t: &Telemetry, id: &str, ago: Duration) -> Arc<Trace> {
        let mut r = record();
        r.started_at -= ago;
        t.finish(id.into(), r)
    }

    fn addresses(t: &Telemetry) -> Vec<*const Trace> {
        t.recent(usize::MAX, |_| true)
            .iter()
            .map(Arc::as_ptr)
            .collect()
    }

    const LONG_AGO: Duration = Duration::from_secs(60);

    #[test]
    fn quiet_recent_traces_are_copied_once() {
        let t = telemetry(3);
        for id in ["a", "b", "c", "d"] {
            ended(&t, id, LONG_AGO);
        }
        let before = addresses(&t);
        t.compact_recent();
        let after = addresses(&t);
        assert!(before.iter().zip(&after).all(|(b, a)| b != a), "copied");
        let ids: Vec<String> = t
            .recent(usize::MAX, |_| true)
            .iter()
            .map(|t| t.request_id.clone())
            .collect();
        assert_eq!(ids, ["d", "c", "b"]);

        t.compact_recent();
        assert_eq!(addresses(&t), after, "not copied twice");
        ended(&t, "e", LONG_AGO);
        let before = addresses(&t);
        t.compact_recent();
        let after = addresses(&t);
        assert_ne!(before[0], after[0], "the new one is copied");
        assert_eq!(before[1..], after[1..], "the others are left alone");
    }

    #[test]
    fn nothing_is_copied_within_seconds_of_a_request_ending() {
        let t = telemetry(3);
        ended(&t, "a", LONG_AGO);
        ended(&t, "b", Duration::ZERO);
        let before = addresses(&t);
        t.compact_recent();
        assert_eq!(addresses(&t), before);
    }

    #[test]
    fn a_trace_held_elsewhere_is_copied_once_it_is_not() {
        let t = telemetry(2);
        let held = ended(&t, "a", LONG_AGO);
        ended(&t, "b", LONG_AGO);
        let before = addresses(&t);
        t.compact_recent();
        let after = addresses(&t);
        assert_ne!(after[0], before[0], "b is copied");
        assert_eq!(
            after[1],
            Arc::as_ptr(&held),
            "an exporter's queue still has a"
        );
        drop(held);
        t.compact_recent();
        let last = addresses(&t);
        assert_eq!(last[0], after[0]);
        assert_ne!(last[1], after[1], "a is copied now");
    }
}
