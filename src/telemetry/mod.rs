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
use std::time::{Duration, Instant};
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
            self.ring().push(trace.clone(), self.settings.recent_traces);
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

    /// Copies up to [`COMPACT_BATCH`] of the recent traces into fresh allocations, each
    /// trace once (none larger than [`MOST_COPIED`]), when no trace has come in for
    /// [`QUIET`]; returns whether more are left (false when done, or stopped).
    /// Every idle request thread calls it, and again after yielding while it returns true
    /// (`allocator`). The traces of a load's last requests were allocated among its
    /// short-lived data, and each kept a page of it after the load; copied while the process
    /// is quiet, they fill few pages, and the allocator can give the rest back. Each copy is
    /// made outside the lock, which is held only to swap it in; a trace coming in meanwhile
    /// stops the compaction.
    pub fn compact_recent(&self) -> bool {
        self.compaction_start(Instant::now())
            .is_some_and(Compaction::apply)
    }

    /// What to copy next, if the ring is quiet `now` and no other thread is compacting it.
    fn compaction_start(&self, now: Instant) -> Option<Compaction<'_>> {
        let mut recent = self.ring();
        // The newest trace's request is the last to have ended (copies keep their times).
        let last_end = recent
            .slots
            .back()
            .map(|s| s.trace.record.started + s.trace.latency);
        let quiet = last_end.is_some_and(|end| now.saturating_duration_since(end) >= QUIET);
        if !quiet || recent.compacting {
            return None;
        }
        let mut todo = Vec::new();
        let mut more = false;
        for (index, slot) in recent.slots.iter_mut().enumerate() {
            if slot.copied || Arc::strong_count(&slot.trace) > 1 {
                continue;
            }
            if todo.len() == COMPACT_BATCH {
                more = true;
                break;
            }
            if slot.bulk > MOST_COPIED {
                // Its big blocks have pages of their own: copying them gains nothing.
                slot.copied = true;
                continue;
            }
            todo.push((index, slot.trace.clone()));
        }
        if todo.is_empty() {
            return None;
        }
        recent.compacting = true;
        Some(Compaction {
            telemetry: self,
            todo,
            pushed: recent.pushed,
            more,
        })
    }

    fn ring(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A step of a compaction, taken under the ring's lock and done outside it. While it lives
/// no other thread compacts.
struct Compaction<'a> {
    telemetry: &'a Telemetry,
    /// Traces not yet copied that nothing else holds (an exporter's queue may), with their
    /// places in the ring (which hold while nothing is pushed: only a push pops).
    todo: Vec<(usize, Arc<Trace>)>,
    /// `Recent::pushed` when it was taken: a trace pushed since stops it.
    pushed: u64,
    /// More traces are left to copy after these.
    more: bool,
}

impl Compaction<'_> {
    /// Copies the traces and swaps each copy in, freeing each original once it is out of
    /// the ring; returns whether more are left (false too when a trace came in).
    fn apply(mut self) -> bool {
        for (index, old) in std::mem::take(&mut self.todo) {
            if !self.swap(index, &old, Arc::new(old.copied())) {
                return false;
            }
        }
        self.more
    }

    /// Puts `copy` in place of `old`, at `index`; false if a trace has been pushed since
    /// the step was taken (then the ring has moved, and the step stops).
    fn swap(&self, index: usize, old: &Arc<Trace>, copy: Arc<Trace>) -> bool {
        let mut recent = self.telemetry.ring();
        if recent.pushed != self.pushed {
            return false;
        }
        let slot = recent.slots.get_mut(index);
        if let Some(slot) = slot.filter(|slot| Arc::ptr_eq(&slot.trace, old)) {
            slot.trace = copy;
            slot.copied = true;
        }
        true
    }
}

impl Drop for Compaction<'_> {
    /// Ends the step, before its originals are freed (outside the lock).
    fn drop(&mut self) {
        self.telemetry.ring().compacting = false;
    }
}

/// The most traces copied in one step: a few hundred microseconds of the thread's time.
const COMPACT_BATCH: usize = 64;

/// A trace whose input and captured answer are larger is not copied.
const MOST_COPIED: usize = 64 * 1024;

/// How long after the last trace came in the recent traces may be copied.
const QUIET: Duration = Duration::from_secs(5);

/// The most bytes of text (inputs and answers as the request path kept them,
/// [`Trace::bulk`]; the text read back from them for the admin API or an exporter may add
/// as much again) the recent traces hold together. A coding agent's requests carry its
/// whole session, hundreds of kilobytes each: the ring of 280 KB traces held 245 MB after a
/// few thousand requests, near the 256 MiB the injected sidecar may use, and while it filled
/// every trace's text came in pages fresh from the system.
const RECENT_BYTES: usize = 32 << 20;

/// The recent traces, oldest first.
#[derive(Default)]
struct Recent {
    slots: VecDeque<Slot>,
    /// The bytes of text they hold.
    bulk: usize,
    /// Traces pushed, ever: a step of compaction stops when it changes.
    pushed: u64,
    /// A thread is copying the traces.
    compacting: bool,
}

impl Recent {
    /// Puts `trace` in as the newest, taking out the oldest while there would be more than
    /// `most`, or more text than [`RECENT_BYTES`] (the newest stays, however large).
    fn push(&mut self, trace: Arc<Trace>, most: usize) {
        let bulk = trace.bulk();
        while self.slots.len() >= most || self.bulk + bulk > RECENT_BYTES {
            let Some(oldest) = self.slots.pop_front() else {
                break;
            };
            self.bulk -= oldest.bulk;
        }
        self.bulk += bulk;
        self.slots.push_back(Slot {
            trace,
            bulk,
            copied: false,
        });
        self.pushed += 1;
    }
}

/// A recent trace.
struct Slot {
    trace: Arc<Trace>,
    /// Its bytes of text, as counted in [`Recent::bulk`].
    bulk: usize,
    /// It has been copied since its request ended (`Telemetry::compact_recent`).
    copied: bool,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use trace::tests::{record, transcriber};

    /// Telemetry keeping `recent_traces`, with no exporter (the admin API's tests too).
    pub(crate) fn telemetry(recent_traces: usize) -> Telemetry {
        let settings = Settings {
            capture_content: true,
            max_capture_bytes: 1024,
            recent_traces,
            access_log: false,
        };
        Telemetry::new(settings, transcriber(), Vec::new())
    }

    fn ended(t: &Telemetry, id: &str) -> Arc<Trace> {
        t.finish(id.into(), record())
    }

    /// A step of compaction a minute from now.
    fn compact(t: &Telemetry) -> bool {
        let later = Instant::now() + Duration::from_secs(60);
        t.compaction_start(later).is_some_and(Compaction::apply)
    }

    fn addresses(t: &Telemetry) -> Vec<*const Trace> {
        t.recent(usize::MAX, |_| true)
            .iter()
            .map(Arc::as_ptr)
            .collect()
    }

    #[test]
    fn quiet_recent_traces_are_copied_once() {
        let t = telemetry(3);
        for id in ["a", "b", "c", "d"] {
            ended(&t, id);
        }
        let before = addresses(&t);
        compact(&t);
        let after = addresses(&t);
        assert!(before.iter().zip(&after).all(|(b, a)| b != a), "copied");
        assert_eq!(ids(&t), ["d", "c", "b"]);

        compact(&t);
        assert_eq!(addresses(&t), after, "not copied twice");
        ended(&t, "e");
        let before = addresses(&t);
        compact(&t);
        let after = addresses(&t);
        assert_ne!(before[0], after[0], "the new one is copied");
        assert_eq!(before[1..], after[1..], "the others are left alone");
    }

    #[test]
    fn nothing_is_copied_within_seconds_of_a_request_ending() {
        let t = telemetry(3);
        ended(&t, "a");
        let before = addresses(&t);
        assert!(!t.compact_recent(), "just ended");
        let soon = Instant::now() + QUIET / 2;
        assert!(t.compaction_start(soon).is_none());
        assert_eq!(addresses(&t), before);
        assert!(!compact(&t), "a minute later: copied, and the last step");
        assert_ne!(addresses(&t), before);
    }

    #[test]
    fn a_trace_held_elsewhere_is_copied_once_it_is_not() {
        let t = telemetry(2);
        let held = ended(&t, "a");
        ended(&t, "b");
        let before = addresses(&t);
        compact(&t);
        let after = addresses(&t);
        assert_ne!(after[0], before[0], "b is copied");
        assert_eq!(
            after[1],
            Arc::as_ptr(&held),
            "an exporter's queue still has a"
        );
        drop(held);
        compact(&t);
        let last = addresses(&t);
        assert_eq!(last[0], after[0]);
        assert_ne!(last[1], after[1], "a is copied now");
    }

    #[test]
    fn a_trace_with_a_big_body_is_left_where_it_is() {
        let t = telemetry(2);
        let mut big = record();
        big.input = Some(record::InputText::Body(bytes::Bytes::from(vec![
            b' ';
            MOST_COPIED
                + 1
        ])));
        t.finish("big".into(), big);
        ended(&t, "small");
        let before = addresses(&t);
        assert!(!compact(&t));
        let after = addresses(&t);
        assert_ne!(after[0], before[0], "the small one is copied");
        assert_eq!(after[1], before[1], "the big one is not");
        assert!(!compact(&t), "nor later");
        assert_eq!(addresses(&t)[1], before[1]);
    }

    /// A trace whose input is `bytes` long.
    fn ended_with_input(t: &Telemetry, id: &str, bytes: usize) -> Arc<Trace> {
        let mut r = record();
        r.input = Some(record::InputText::Body(bytes::Bytes::from(vec![
            b' ';
            bytes
        ])));
        t.finish(id.into(), r)
    }

    fn ids(t: &Telemetry) -> Vec<String> {
        t.recent(usize::MAX, |_| true)
            .iter()
            .map(|t| t.request_id.clone())
            .collect()
    }

    #[test]
    fn the_recent_traces_hold_at_most_their_bytes_of_text() {
        let t = telemetry(1000);
        // A trace's answer counts too.
        let answer = ended_with_input(&telemetry(1), "answer", 0).bulk();
        let third = RECENT_BYTES / 3 - answer;
        for id in ["a", "b", "c"] {
            ended_with_input(&t, id, third);
        }
        assert_eq!(ids(&t), ["c", "b", "a"]);
        ended_with_input(&t, "d", RECENT_BYTES - 3 * (third + answer) + 1);
        assert_eq!(ids(&t), ["d", "c", "b"], "the oldest made room");
        ended_with_input(&t, "huge", RECENT_BYTES + 1);
        assert_eq!(ids(&t), ["huge"], "the newest stays, however large");
        ended(&t, "small");
        assert_eq!(ids(&t), ["small"]);
        ended(&t, "small 2");
        assert_eq!(
            ids(&t),
            ["small 2", "small"],
            "the count of bytes went down"
        );
    }

    #[test]
    fn a_big_ring_is_copied_in_steps() {
        let t = telemetry(COMPACT_BATCH + 6);
        for i in 0..COMPACT_BATCH + 6 {
            ended(&t, &i.to_string());
        }
        let before = addresses(&t);
        assert!(compact(&t), "more left");
        let after = addresses(&t);
        let copied = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert_eq!(copied, COMPACT_BATCH);
        assert!(!compact(&t), "the rest");
        let last = addresses(&t);
        assert!(before.iter().zip(&last).all(|(b, a)| b != a));
        assert!(!compact(&t), "nothing left");
    }

    #[test]
    fn a_trace_coming_in_stops_a_compaction_and_one_thread_compacts_at_a_time() {
        let t = telemetry(3);
        ended(&t, "a");
        let before = addresses(&t);
        let later = Instant::now() + Duration::from_secs(60);
        let step = t.compaction_start(later).unwrap();
        assert!(t.compaction_start(later).is_none(), "one at a time");
        ended(&t, "b");
        assert!(!step.apply(), "stopped");
        assert_eq!(addresses(&t)[1], before[0], "not swapped");
        assert!(!compact(&t), "a later step copies both, and is the last");
        assert_ne!(addresses(&t)[1], before[0]);
    }
}
