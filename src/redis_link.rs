//! A Redis server that the sidecar uses but must never wait on: connected on first use, and
//! again after it was lost, at most once a second while it is unreachable. Shared by the
//! response cache and the limits; each counts and logs its own failures.
//!
//! No request waits on a connect longer than a call may take: the connect is one shared
//! future that every request needing it polls for at most its call timeout, and that the
//! next request resumes when they all gave up. So a Redis that is restarting, or a host
//! that does not answer, costs each request at most a call's timeout, with no background
//! task.

use futures::future::{BoxFuture, FutureExt, Shared};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Time between tries to connect while Redis is unreachable.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Why there is no connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The last try failed less than a second ago, or a connect under way did not finish
    /// within the call's timeout.
    Waiting,
    /// This try failed.
    Failed(String),
}

/// Why a call got no answer.
#[derive(Debug)]
pub enum CallError {
    /// No connection (see [`LinkError`]).
    Link(LinkError),
    /// No answer within the call's timeout.
    Timeout,
    /// Redis answered with an error, or the connection failed during the call.
    Redis(redis::RedisError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Link(LinkError::Waiting) => f.write_str("unreachable"),
            CallError::Link(LinkError::Failed(why)) => f.write_str(why),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Redis(e) => write!(f, "{e}"),
        }
    }
}

/// A connect under way, shared by every request waiting for it.
type Connecting = Shared<BoxFuture<'static, Result<ConnectionManager, String>>>;

/// A Redis server and the connection to it, if there is one.
pub struct RedisLink {
    client: redis::Client,
    state: Mutex<Connection>,
    connect_timeout: Duration,
    call_timeout: Duration,
}

#[derive(Default)]
struct Connection {
    manager: Option<ConnectionManager>,
    connecting: Option<Connecting>,
    /// When the last connect started.
    last_try: Option<Instant>,
}

impl RedisLink {
    /// Checks the URL only: the server may come up later.
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        call_timeout: Duration,
    ) -> redis::RedisResult<RedisLink> {
        Ok(RedisLink {
            client: redis::Client::open(url)?,
            state: Mutex::default(),
            connect_timeout,
            call_timeout,
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The connection: made if there is none and the last try is not too recent, waited
    /// for at most a call's timeout; else why not.
    pub async fn connection(&self) -> Result<ConnectionManager, LinkError> {
        let connecting = {
            let mut state = self.state();
            if let Some(manager) = &state.manager {
                return Ok(manager.clone());
            }
            // A connect nobody polled past its bound (every request gave up on it, none came
            // since) would report its own timeout as a failure: a fresh one starts instead.
            let stale = state
                .last_try
                .is_some_and(|t| t.elapsed() >= self.connect_timeout * 2);
            match &state.connecting {
                Some(under_way) if !stale => under_way.clone(),
                _ => {
                    if state
                        .last_try
                        .is_some_and(|t| t.elapsed() < RECONNECT_EVERY)
                    {
                        return Err(LinkError::Waiting);
                    }
                    state.last_try = Some(Instant::now());
                    let connect = self.connect();
                    state.connecting = Some(connect.clone());
                    connect
                }
            }
        };
        let Ok(outcome) = tokio::time::timeout(self.call_timeout, connecting.clone()).await else {
            return Err(LinkError::Waiting);
        };
        let mut state = self.state();
        // Only the connect under way settles the state (not one a later failure replaced).
        let current = state
            .connecting
            .as_ref()
            .is_some_and(|c| c.ptr_eq(&connecting));
        if current {
            state.connecting = None;
            if let Ok(manager) = &outcome {
                state.manager = Some(manager.clone());
            }
        }
        outcome.map_err(LinkError::Failed)
    }

    /// Makes one call on the connection (`call` gets its own handle to it), bounded by the
    /// call timeout. Every call goes through here, so none can wait longer, or forget to
    /// drop a connection found gone.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await.map_err(CallError::Link)?;
        match tokio::time::timeout(self.call_timeout, call(conn)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.failed(&e);
                Err(CallError::Redis(e))
            }
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// After a call failed: a connection that is gone is dropped, so that the calls after
    /// it fail at once until the next try, a second later, instead of each waiting on the
    /// client's reconnect up to its timeout. A slow answer keeps the connection.
    fn failed(&self, error: &redis::RedisError) {
        // The client's own response timeout is an I/O error too: it is a slow answer.
        let gone = !error.is_timeout()
            && (error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal());
        if gone {
            let mut state = self.state();
            if state.manager.take().is_some() {
                state.last_try = Some(Instant::now());
            }
        }
    }

    /// A connect, bounded by the connect timeout (twice: the client's own covers the TCP
    /// connect, this one the handshake too).
    fn connect(&self) -> Connecting {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.call_timeout)
            .set_number_of_retries(1);
        let connect = ConnectionManager::new_with_config(self.client.clone(), config);
        let bound = self.connect_timeout * 2;
        async move {
            match tokio::time::timeout(bound, connect).await {
                Ok(Ok(manager)) => Ok(manager),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            }
        }
        .boxed()
        .shared()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
