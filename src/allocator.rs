//! Gives the allocator's free pages back to the system once a request thread goes idle.
//!
//! mimalloc (the binary's allocator) frees a thread's emptied pages, and purges the memory
//! they held, only from inside its own calls on that thread: a page emptied at the end of a
//! load is given back when a later request allocates. A sidecar that goes quiet after a burst
//! makes no such calls, and kept pages of its peak for as long as it stayed quiet. So each
//! request thread looks every few seconds whether it is idle: no request in flight, and none
//! begun or ended since its last look. When it is, it runs its caller's idle work (the recent
//! traces are copied out of the load's pages, `Telemetry::compact_recent`) and asks mimalloc
//! to collect its heap. A thread with a request in flight, a long stream included, never
//! collects. Measured with `bench/rss.sh` (one thread): 80 s after 1,000 streams RSS was
//! 24.7 MiB, 10.5% over the level just after the warm-up traffic; it is now 18.2 MiB, 5.9%
//! over the level 82 s after that traffic (22.3 MiB just after it).

use std::cell::Cell;
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};

/// How often a request thread looks whether it is idle: a collection comes 5 to 10 s after
/// its last request ended.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// A thread's requests, as its watcher compares them from one look to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Requests {
    /// Begun on the thread, ever.
    begun: u64,
    in_flight: u64,
}

thread_local! {
    /// This thread's requests; `None` until its first, which starts its watch.
    static REQUESTS: Cell<Option<Requests>> = const { Cell::new(None) };
}

/// Held by a request for its life: its thread is busy while it is held. Made and dropped on
/// the request's thread (Pingora's workers here are current-thread runtimes, see `watch`).
pub(crate) struct Busy(());

impl Busy {
    /// Counts a request begun on this thread, and on the thread's first starts the task
    /// that watches it. `idle_work` is called then (once per thread) to make what that task
    /// runs before each collection: a step of work that returns whether more is left (the
    /// task yields the thread between steps, and stops if a request comes).
    pub(crate) fn begin<F: Fn() -> bool + Send + 'static>(idle_work: impl FnOnce() -> F) -> Busy {
        if begun() {
            watch(idle_work());
        }
        Busy(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        REQUESTS.with(|requests| {
            if let Some(r) = requests.get() {
                requests.set(Some(Requests {
                    in_flight: r.in_flight.saturating_sub(1),
                    ..r
                }));
            }
        });
    }
}

/// Counts a request begun on this thread: true for its first.
fn begun() -> bool {
    REQUESTS.with(|requests| {
        let before = requests.get();
        let r = before.unwrap_or(Requests {
            begun: 0,
            in_flight: 0,
        });
        requests.set(Some(Requests {
            begun: r.begun.wrapping_add(1),
            in_flight: r.in_flight + 1,
        }));
        before.is_none()
    })
}

/// Starts this thread's watcher on its own runtime. Only on a current-thread runtime (each
/// of Pingora's workers, with `work_stealing: false`): elsewhere a task may move between
/// threads, and would read one thread's requests and collect another's heap.
fn watch(idle_work: impl Fn() -> bool + Send + 'static) {
    let Ok(runtime) = Handle::try_current() else {
        return;
    };
    if runtime.runtime_flavor() != RuntimeFlavor::CurrentThread {
        // Said by each thread, at its first request.
        tracing::info!("memory is not given back when idle: the runtime is not one per thread");
        return;
    }
    runtime.spawn(watch_idle(move || {
        let more = idle_work();
        if !more {
            collect();
        }
        more
    }));
}

/// Runs for the thread's life: after every look that finds the thread idle, calls `on_idle`
/// until it returns false (it has no more to do), yielding the thread between calls and
/// stopping if a request begins meanwhile. The look repeats while idle, as memory is also
/// freed with no request (the provider pool's sweep closes a load's connections a minute
/// after it); on a quiet heap a collection costs microseconds.
async fn watch_idle(on_idle: impl Fn() -> bool) {
    let mut seen = None;
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        let now = REQUESTS.with(Cell::get);
        if now == seen && now.is_some_and(|r| r.in_flight == 0) {
            while on_idle() {
                tokio::task::yield_now().await;
                if REQUESTS.with(Cell::get) != now {
                    break;
                }
            }
        }
        seen = now;
    }
}

/// Frees this thread's empty pages, and purges all the free memory of mimalloc's arenas
/// (that of every thread: other threads' empty pages stay theirs until they collect).
/// Forced at every idle look: a normal collection frees an emptied page only after 16 of
/// them, so the pages a sweep of the provider pool empties stayed (80 s after the load,
/// +8.3% instead of +5.9%, `bench/rss.sh`). What a busy thread frees and takes again within
/// a look, 5 s, is at most faulted back in once.
#[expect(unsafe_code, reason = "the one call into mimalloc's C API")]
fn collect() {
    // SAFETY: `mi_collect` has no preconditions and is thread-safe: it walks the calling
    // thread's own heap and the arenas' free lists, and touches no memory the program
    // holds. Without mimalloc as the global allocator (the library's tests) the thread has
    // no mimalloc heap, and it returns at once.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use tokio::time::sleep;

    /// A runtime of one thread, as Pingora's workers are; time is paused, so each sleep
    /// below ends half a look after the watcher's, never at the same instant.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_thread_is_idle_with_nothing_in_flight_and_nothing_begun_since_the_last_look() {
        let looks = Arc::new(AtomicU32::new(0));
        let counter = looks.clone();
        watch(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            false
        });
        let idle = || looks.load(Ordering::Relaxed);

        assert!(begun(), "the thread's first request");
        let long = Busy(());
        sleep(IDLE_CHECK / 2 * 3).await;
        assert_eq!(idle(), 0, "a request began before the first look");
        sleep(IDLE_CHECK).await;
        assert_eq!(idle(), 0, "a long request is still in flight");
        drop(long);
        sleep(IDLE_CHECK).await;
        assert_eq!(idle(), 0, "it ended since the last look");
        sleep(IDLE_CHECK).await;
        assert_eq!(idle(), 1, "nothing since");
        assert!(!begun());
        drop(Busy(()));
        sleep(IDLE_CHECK).await;
        assert_eq!(idle(), 1, "a short request came and went");
        sleep(IDLE_CHECK * 2).await;
        assert_eq!(idle(), 3, "idle at every look");
    }

    #[test]
    fn outside_a_runtime_a_request_starts_no_watcher_and_does_not_panic() {
        let made = Arc::new(AtomicU32::new(0));
        let counter = made.clone();
        let make = move || {
            counter.fetch_add(1, Ordering::Relaxed);
            || false
        };
        drop(Busy::begin(make.clone()));
        assert_eq!(
            made.load(Ordering::Relaxed),
            1,
            "asked once, for the first request"
        );
        drop(Busy::begin(make));
        assert_eq!(made.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runtime_whose_tasks_move_between_threads_gets_no_watcher() {
        let tasks = || Handle::current().metrics().num_alive_tasks();
        let before = tasks();
        watch(|| false);
        assert_eq!(tasks(), before);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_threads_first_request_starts_its_one_watcher() {
        let tasks = || Handle::current().metrics().num_alive_tasks();
        let before = tasks();
        let first = Busy::begin(|| || false);
        let second = Busy::begin(|| || false);
        assert_eq!(tasks(), before + 1);
        drop((first, second));
    }

    /// Work in steps: a look that finds the thread idle runs them to the end, and a request
    /// that begins during a step stops them until the next idle look.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn idle_work_runs_in_steps_and_a_request_stops_it() {
        let steps = Arc::new(AtomicU32::new(0));
        let counter = steps.clone();
        // Three steps of work, then done; the same again at the next idle look.
        watch(move || {
            let step = counter.fetch_add(1, Ordering::Relaxed);
            if step == 3 {
                // A request comes while the second round's first step runs.
                begun();
                drop(Busy(()));
            }
            step % 3 != 2
        });
        let steps = || steps.load(Ordering::Relaxed);

        begun();
        drop(Busy(()));
        sleep(IDLE_CHECK / 2 * 5).await;
        assert_eq!(steps(), 3, "the second look: idle, all three steps");
        sleep(IDLE_CHECK).await;
        assert_eq!(steps(), 4, "the request stopped the work after its step");
        sleep(IDLE_CHECK).await;
        assert_eq!(steps(), 4, "a request since the last look");
        sleep(IDLE_CHECK).await;
        assert_eq!(steps(), 6, "idle again: the rest of the work");
    }
}
