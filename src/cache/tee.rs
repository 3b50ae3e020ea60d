//! A streamed answer as the app gets it, piece by piece: what the cache gathers into an entry
//! once the stream has ended well, and what identical streaming requests in flight at the
//! same time are sent as it arrives, instead of each making its own upstream call.
//!
//! Pieces are `Bytes` shared with the writes to the app, never copied. Followers read them
//! from the start (a late one catches up) and wait on a watch channel for more.
//!
//! The upstream call is the leader's: should the leader's app go away mid-stream (which
//! cancels its call), its followers get an in-band error.

use crate::telemetry::record::{Served, TokenUsage};
use bytes::Bytes;
use std::sync::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

/// A stream longer than this is neither kept nor shared (followers that have not started
/// ask for themselves; those that have get an in-band error).
pub const MAX_STREAM_BYTES: usize = 4 * 1024 * 1024;

/// How a stream is told to an app: requests share a stream only when they are told it
/// alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Telling {
    /// OpenAI's usage chunk.
    pub include_usage: bool,
    /// A request breakdown event of its own: such a request never follows another's stream.
    pub breakdown: bool,
}

impl Telling {
    /// Whether a request told this way may be sent a stream told `leader`'s way.
    pub fn may_follow(self, leader: Telling) -> bool {
        !self.breakdown && self.include_usage == leader.include_usage
    }
}

/// One stream, shared.
pub struct Tee {
    pub telling: Telling,
    state: Mutex<State>,
    changed: watch::Sender<()>,
}

#[derive(Default)]
struct State {
    pieces: Vec<Bytes>,
    bytes: usize,
    /// What served the stream, from its first piece.
    served: Option<Served>,
    end: Option<End>,
}

/// How a stream ended.
#[derive(Debug, Clone)]
pub enum End {
    /// Whole and well, with the usage the gateway read.
    Complete(Option<TokenUsage>),
    /// Cut, failed, or too long to share.
    Failed,
}

/// What a follower reads next.
pub enum Next {
    /// Pieces it has not had yet (the first time: with what served them).
    Pieces(Vec<Bytes>, Served),
    Ended(End),
    /// Nothing came before the deadline.
    TimedOut,
}

impl Tee {
    pub fn new(telling: Telling) -> Tee {
        Tee {
            telling,
            state: Mutex::default(),
            changed: watch::Sender::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a piece the app was sent (`served`: what is sending it).
    pub fn push(&self, piece: &Bytes, served: &Served) {
        {
            let mut state = self.state();
            if state.end.is_some() {
                return;
            }
            state.bytes += piece.len();
            if state.bytes > MAX_STREAM_BYTES {
                state.pieces = Vec::new();
                state.end = Some(End::Failed);
            } else {
                state.pieces.push(piece.clone());
                if state.served.is_none() {
                    state.served = Some(served.clone());
                }
            }
        }
        self.changed.send_replace(());
    }

    /// Ends the stream (the first end stands).
    pub fn end(&self, end: End) {
        {
            let mut state = self.state();
            if state.end.is_some() {
                return;
            }
            state.end = Some(end);
        }
        self.changed.send_replace(());
    }

    /// Every piece so far, when the stream ended well.
    pub fn complete_pieces(&self) -> Option<Vec<Bytes>> {
        let state = self.state();
        matches!(state.end, Some(End::Complete(_))).then(|| state.pieces.clone())
    }

    /// The pieces after the first `seen`, else the end, else waits for either (until
    /// `deadline`, if there is one: the tee always ends, as its leader's slot ends it when
    /// dropped).
    pub async fn next(&self, seen: usize, deadline: Option<Instant>) -> Next {
        loop {
            // Subscribed before reading: a change made after the read is not missed.
            let mut changed = self.changed.subscribe();
            {
                let state = self.state();
                if state.pieces.len() > seen {
                    let served = state.served.clone().unwrap_or_default();
                    return Next::Pieces(state.pieces[seen..].to_vec(), served);
                }
                if let Some(end) = &state.end {
                    return Next::Ended(end.clone());
                }
            }
            // The sender lives as long as the tee, so `changed` only ends by a change.
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, changed.changed())
                        .await
                        .is_err()
                    {
                        return Next::TimedOut;
                    }
                }
                None => {
                    let _ = changed.changed().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn tee() -> Arc<Tee> {
        Arc::new(Tee::new(Telling {
            include_usage: false,
            breakdown: false,
        }))
    }

    #[tokio::test]
    async fn a_follower_gets_every_piece_as_it_comes_then_the_end() {
        let tee = tee();
        let served = Served::default();
        tee.push(&Bytes::from_static(b"a"), &served);
        let deadline = Instant::now() + Duration::from_secs(5);
        let follower = async {
            let mut got = Vec::new();
            loop {
                match tee.next(got.len(), Some(deadline)).await {
                    Next::Pieces(pieces, _) => got.extend(pieces),
                    Next::Ended(End::Complete(_)) => return got,
                    Next::Ended(End::Failed) | Next::TimedOut => panic!("not complete"),
                }
            }
        };
        let leader = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tee.push(&Bytes::from_static(b"b"), &served);
            tee.end(End::Complete(None));
            tee.push(&Bytes::from_static(b"late"), &served);
        };
        let (got, ()) = tokio::join!(follower, leader);
        assert_eq!(got, [&b"a"[..], b"b"]);
        assert_eq!(tee.complete_pieces().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_stream_too_long_fails_and_a_silent_one_times_out() {
        let tee = tee();
        let big = Bytes::from(vec![0u8; MAX_STREAM_BYTES + 1]);
        tee.push(&big, &Served::default());
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(matches!(
            tee.next(0, Some(deadline)).await,
            Next::Ended(End::Failed)
        ));
        assert!(tee.complete_pieces().is_none());
        let silent = self::tee();
        assert!(matches!(
            silent.next(0, Some(deadline)).await,
            Next::TimedOut
        ));
    }
}
