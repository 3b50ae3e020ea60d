//! Gives the allocator's free pages back to the system once a request thread goes idle.
//!
//! mimalloc (the binary's allocator) frees a thread's emptied pages, and purges the memory
//! they held, only from inside its own calls on that thread: a page emptied at the end of a
//! load is given back when a later request allocates. A sidecar that goes quiet after a burst
//! makes no such calls, and kept pages of its peak for as long as it stayed quiet. So each
//! request thread looks every few seconds whether it finished a request since its last look,
//! and when it did not, runs its caller's idle work (the recent traces are copied out of the
//! load's pages, `Telemetry::compact_recent`) and asks mimalloc to collect its heap. A busy
//! thread never collects. Measured with `bench/rss.sh`: 80 s after 1,000 streams, RSS was
//! 24.7 MiB against 22.4 MiB before the load, and is now 18.0 MiB against 17.9 MiB.

use std::cell::Cell;
use std::time::Duration;

/// How long a request thread must have finished no request before it collects.
const IDLE_CHECK: Duration = Duration::from_secs(5);

thread_local! {
    /// The requests this thread has finished; `None` until its first, which starts its watch.
    static FINISHED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Counts a request finished on this thread (a Pingora worker, one runtime per thread), and
/// on the thread's first starts the task that watches it for idleness. `on_idle` is called
/// then (once per thread) to make what that task runs before each collection.
pub(crate) fn request_finished<F: Fn() + Send + 'static>(on_idle: impl FnOnce() -> F) {
    if count_finished() {
        let on_idle = on_idle();
        #[expect(
            clippy::disallowed_methods,
            reason = "a heap is collected by its own thread: a BackgroundService runs on another"
        )]
        tokio::spawn(watch_idle(move || {
            on_idle();
            collect();
        }));
    }
}

/// Counts a request finished on this thread: true for its first.
fn count_finished() -> bool {
    FINISHED.with(|finished| {
        let first = finished.get().is_none();
        finished.set(Some(finished.get().map_or(1, |n| n.wrapping_add(1))));
        first
    })
}

/// Runs for the thread's life: collects after every check that saw no request finish. The
/// check repeats while idle, as memory is also freed with no request (the provider pool's
/// sweep closes a load's connections a minute after it).
async fn watch_idle(collect: impl Fn()) {
    let mut seen = None;
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        let now = FINISHED.with(Cell::get);
        if now == seen {
            collect();
        }
        seen = now;
    }
}

/// Frees this thread's empty pages and purges every free page of the process.
#[allow(unsafe_code)]
fn collect() {
    // SAFETY: `mi_collect` has no preconditions: it walks the calling thread's own heap and
    // the process's arenas, and touches no memory the program holds. Without mimalloc as the
    // global allocator (the library's tests) it collects mimalloc's unused heap, a no-op.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use tokio::time::sleep;

    /// A runtime of one thread, as Pingora's workers are; time is paused, so each sleep
    /// below ends half a check after the watcher's, never at the same instant.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_thread_collects_only_after_a_check_with_no_request_finished() {
        let collects = Arc::new(AtomicU32::new(0));
        let counter = collects.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "the watcher, as on a request thread"
        )]
        tokio::spawn(watch_idle(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }));
        let count = || collects.load(Ordering::Relaxed);

        assert!(count_finished(), "the thread's first request");
        assert!(!count_finished());
        sleep(IDLE_CHECK / 2 * 3).await;
        assert_eq!(count(), 0, "requests finished before the first check");
        sleep(IDLE_CHECK).await;
        assert_eq!(count(), 1, "none since the first check");
        count_finished();
        sleep(IDLE_CHECK).await;
        assert_eq!(count(), 1, "busy again");
        sleep(IDLE_CHECK * 2).await;
        assert_eq!(count(), 3, "collects at every idle check");
    }
}
