//! The drain's shared state: which phase a shutdown is in, and which queue services (the
//! trace exporters, the limits' settler) still run; and the loop by which such a service
//! takes its queue until the drain is quiet. A leaf, so the relay and those services can
//! follow a shutdown without depending on what drives it (`shutdown`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Where the process is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// A signal came: requests in flight run on, no new connection is accepted.
    Draining,
    /// The grace period is spent: streams still running are ended.
    Deadline,
    /// No request is in flight (or none will end by itself): queue services flush and stop.
    Quiet,
}

/// The shared view of the shutdown: who is still working, and what phase it is in.
#[derive(Clone)]
pub struct Drain {
    phase: Arc<watch::Sender<Phase>>,
    /// Queue services still running (they flush before they stop).
    queues: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            phase: Arc::new(watch::Sender::new(Phase::Serving)),
            queues: Arc::default(),
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

    /// Queue services that have not yet flushed and stopped.
    pub fn queues_running(&self) -> usize {
        self.queues.load(Ordering::Acquire)
    }

    /// Counts a queue service as running until the guard is dropped.
    fn queue_service(&self) -> QueueGuard {
        self.queues.fetch_add(1, Ordering::AcqRel);
        QueueGuard(self.queues.clone())
    }
}

/// How a background service takes its queue: in batches of at most `max`, and at a shutdown
/// for at most `flush_limit` once no request is left to add to it.
pub struct Batching {
    /// Items in one batch at most (at least 1).
    pub max: usize,
    /// How long a batch that has its first item may wait to fill (none: it goes at once).
    pub gather: Option<Duration>,
    /// How long the flush at a shutdown may go on.
    pub flush_limit: Duration,
}

/// What a background service does with each batch of its queue.
pub trait Deliver<T> {
    /// Sends or applies `batch`. `deadline` is set only for the batches of the final flush:
    /// when that flush ends.
    fn deliver(
        &mut self,
        batch: &[T],
        deadline: Option<Instant>,
    ) -> impl Future<Output = ()> + Send;
}

/// How often a filling batch takes what has queued. A service sleeps between looks rather
/// than waking for each item: measured on the exporters, a wake-up per request (three
/// exporters, three threads) cost more CPU than everything else they do.
const GATHER_TICK: Duration = Duration::from_millis(20);

impl Drain {
    /// Hands a queue's items to `deliver` a batch at a time: until the queue's senders are
    /// gone (then it returns), or until the process is quiet (then it delivers what is still
    /// queued, within [`Batching::flush_limit`]). Not Pingora's shutdown: requests still
    /// draining after a shutdown's signal have items to come. Counted as running meanwhile,
    /// and the process waits for it before it exits.
    pub async fn serve_queue<T>(
        &self,
        receiver: &mut mpsc::Receiver<T>,
        batching: &Batching,
        deliver: &mut impl Deliver<T>,
    ) {
        debug_assert!(batching.max > 0, "a batch of none would end the service");
        let _running = self.queue_service();
        let quiet = self.reached(Phase::Quiet);
        tokio::pin!(quiet);
        let mut batch = Vec::with_capacity(batching.max);
        loop {
            tokio::select! {
                n = receiver.recv_many(&mut batch, batching.max) => {
                    if n == 0 {
                        return;
                    }
                    if let Some(wait) = batching.gather {
                        tokio::select! {
                            () = gather(receiver, &mut batch, batching.max, wait) => {}
                            // A drain gone quiet does not wait for the batch to fill: it
                            // goes in the flush, within the flush's deadline.
                            () = &mut quiet => break,
                        }
                    }
                    deliver.deliver(&batch, None).await;
                    batch.clear();
                }
                () = &mut quiet => break,
            }
        }
        let deadline = Instant::now() + batching.flush_limit;
        receiver.close();
        loop {
            take_queued(receiver, &mut batch, batching.max);
            if batch.is_empty() || Instant::now() >= deadline {
                return;
            }
            deliver.deliver(&batch, Some(deadline)).await;
            batch.clear();
        }
    }
}

/// Tops up a batch that has its first item, looking every [`GATHER_TICK`], until it holds
/// `max` or `wait` has passed.
async fn gather<T>(
    receiver: &mut mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    max: usize,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < max && tokio::time::Instant::now() < deadline {
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + GATHER_TICK)).await;
        take_queued(receiver, batch, max);
    }
}

/// Moves what is already queued into `batch`, up to `max` items, without waiting.
fn take_queued<T>(receiver: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize) {
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

/// Held by a running queue service.
struct QueueGuard(Arc<AtomicUsize>);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps each batch it is given, and whether it came in a flush.
    #[derive(Default)]
    struct Kept(Vec<(Vec<u32>, bool)>);

    impl Deliver<u32> for Kept {
        async fn deliver(&mut self, batch: &[u32], deadline: Option<Instant>) {
            self.0.push((batch.to_vec(), deadline.is_some()));
        }
    }

    const BATCHING: Batching = Batching {
        max: 3,
        gather: Some(Duration::from_millis(50)),
        flush_limit: Duration::from_secs(1),
    };

    #[tokio::test]
    async fn batches_fill_up_to_their_size_until_the_senders_are_gone() {
        let drain = Drain::default();
        let (tx, mut rx) = mpsc::channel(16);
        for i in 0..7 {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        let mut kept = Kept::default();
        drain.serve_queue(&mut rx, &BATCHING, &mut kept).await;
        let batches: Vec<_> = kept.0.iter().map(|(b, _)| b.clone()).collect();
        assert_eq!(batches, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert!(kept.0.iter().all(|(_, flushed)| !flushed));
        assert_eq!(drain.queues_running(), 0);
    }

    #[tokio::test]
    async fn a_quiet_drain_flushes_what_is_queued_and_stops() {
        let drain = Drain::default();
        let (tx, mut rx) = mpsc::channel(16);
        let mut kept = Kept::default();
        let serving = drain.serve_queue(&mut rx, &BATCHING, &mut kept);
        let driving = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(drain.queues_running(), 1);
            // Queued while the service waits, then the process goes quiet: a sender still
            // held does not keep it running.
            for i in 0..4 {
                tx.try_send(i).unwrap();
            }
            drain.enter(Phase::Quiet);
        };
        let both = async { tokio::join!(serving, driving) };
        tokio::time::timeout(Duration::from_secs(2), both)
            .await
            .expect("the service stops once quiet");
        // Which batches went before the quiet was seen is up to the scheduler; that all
        // went, once each and in order, and the last within the flush's deadline, is not.
        let all: Vec<u32> = kept.0.iter().flat_map(|(b, _)| b.clone()).collect();
        assert_eq!(all, [0, 1, 2, 3]);
        assert!(kept.0.last().unwrap().1, "the last batch went in the flush");
        assert_eq!(drain.queues_running(), 0);
    }
}
