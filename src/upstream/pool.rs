//! Idle provider connections kept for reuse, per peer, most recently used first.
//!
//! Pingora's own pool (inside its `TransportConnector`) checks each connection's peer
//! address with a `getpeername` call on every reuse and starts a watcher task on every
//! release; together about 5% of the sidecar's CPU per request (bench/run.sh, c=64). Here a
//! connection is checked only when it is taken: one read that must find nothing waiting.
//! A connection the provider closed while idle is found then (the read sees its end) and
//! dropped; one that was closed a moment before it is used is caught by the exchange's
//! retry on a fresh connection.

use pingora::protocols::Stream;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Idle connections by peer key (`Peer::reuse_hash`).
pub struct Pool {
    idle: Mutex<HashMap<u64, VecDeque<Idle>>>,
    per_peer: usize,
    idle_timeout: Duration,
    /// A sweeper task was started (see [`Pool::sweep_later`]).
    sweeping: AtomicBool,
}

struct Idle {
    stream: Stream,
    since: Instant,
}

impl Pool {
    /// Keeps at most `per_peer` idle connections to each peer, each for `idle_timeout`.
    pub fn new(per_peer: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            per_peer,
            idle_timeout,
            sweeping: AtomicBool::new(false),
        }
    }

    /// The most recently released connection to `key` that is still open and quiet.
    pub fn take(&self, key: u64) -> Option<Stream> {
        loop {
            let mut idle = self.pop(key)?;
            if is_quiet(&mut idle.stream) {
                return Some(idle.stream);
            }
        }
    }

    /// Keeps `stream` (whose last answer was read to its end) for the next request to `key`.
    /// Only `key`'s expired connections are closed here: those to a peer no longer called (a
    /// customer's own base URL, a provider removed from the config) are the sweeper's.
    pub fn put(self: &Arc<Self>, key: u64, stream: Stream) {
        self.sweep_later();
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        let queue = idle.entry(key).or_default();
        self.expire(queue, now);
        if queue.len() >= self.per_peer {
            queue.pop_front();
        }
        queue.push_back(Idle { stream, since: now });
    }

    /// Closes the connections idle past the timeout, to every peer, and forgets the peers
    /// left with none.
    fn sweep(&self) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        idle.retain(|_, queue| {
            self.expire(queue, now);
            !queue.is_empty()
        });
    }

    /// Starts, once, a task on the current runtime that sweeps the pool every quarter of the
    /// idle timeout. `put` and `take` expire connections too, but only when called: a sidecar
    /// gone quiet would hold every connection of its last busy moment (a thousand sockets,
    /// and their buffers, after a thousand streams) until its next request. The task ends
    /// with the pool.
    fn sweep_later(self: &Arc<Self>) {
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Relaxed);
            return;
        };
        let pool = Arc::downgrade(self);
        let every = self.idle_timeout / 4;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match pool.upgrade() {
                    Some(pool) => pool.sweep(),
                    None => return,
                }
            }
        });
    }

    fn pop(&self, key: u64) -> Option<Idle> {
        let mut idle = self.idle.lock().ok()?;
        let queue = idle.get_mut(&key)?;
        self.expire(queue, Instant::now());
        queue.pop_back()
    }

    /// Drops the connections idle for longer than the timeout (the oldest are in front).
    fn expire(&self, queue: &mut VecDeque<Idle>, now: Instant) {
        while queue
            .front()
            .is_some_and(|i| now.duration_since(i.since) > self.idle_timeout)
        {
            queue.pop_front();
        }
    }
}

/// Whether an idle connection can carry a request: a read that would wait means the peer
/// neither closed it nor sent anything unasked.
fn is_quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    // `unconstrained`: tokio's cooperative budget could make a ready read look pending.
    let read = tokio::task::unconstrained(stream.read(&mut byte));
    futures::FutureExt::now_or_never(read).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected stream (its peer end is dropped; nothing here reads from it).
    async fn stream(listener: &TcpListener) -> Stream {
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        Box::new(pingora::protocols::l4::stream::Stream::from(tcp))
    }

    fn peers(pool: &Pool) -> usize {
        pool.idle.lock().unwrap().len()
    }

    #[tokio::test]
    async fn idle_connections_to_a_peer_no_longer_called_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Arc::new(Pool::new(4, Duration::from_millis(50)));
        pool.put(1, stream(&listener).await);
        pool.put(1, stream(&listener).await);
        assert_eq!(peers(&pool), 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        // The sweeper has closed peer 1's connections and forgotten peer 1.
        pool.put(2, stream(&listener).await);
        assert_eq!(peers(&pool), 1);
        assert!(pool.pop(1).is_none());
        assert!(pool.pop(2).is_some());
    }

    #[tokio::test]
    async fn a_quiet_pool_closes_its_expired_connections_by_itself() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Arc::new(Pool::new(4, Duration::from_millis(40)));
        pool.put(1, stream(&listener).await);
        pool.put(2, stream(&listener).await);
        assert_eq!(peers(&pool), 2);
        // No put or take after these: the sweeper alone closes them.
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(peers(&pool), 0);
        // And it stops once the pool is gone.
        let weak = Arc::downgrade(&pool);
        drop(pool);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(weak.upgrade().is_none());
    }

    #[tokio::test]
    async fn at_most_per_peer_connections_are_kept_newest_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Arc::new(Pool::new(2, Duration::from_secs(60)));
        for _ in 0..3 {
            pool.put(1, stream(&listener).await);
        }
        assert!(pool.pop(1).is_some());
        assert!(pool.pop(1).is_some());
        assert!(pool.pop(1).is_none());
    }
}
