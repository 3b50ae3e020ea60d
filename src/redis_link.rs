//! A Redis server that the sidecar uses but must never wait on: connected on first use, and
//! again after it was lost, at most once a second while it is unreachable. Shared by the
//! response cache and the limits; each counts and logs its own failures.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::{Duration, Instant};

/// Time between tries to connect while Redis is unreachable.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Why there is no connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The last try failed less than a second ago: not tried again yet.
    Waiting,
    /// This try failed.
    Failed(String),
}

/// A Redis server and the connection to it, if there is one.
pub struct RedisLink {
    client: redis::Client,
    state: tokio::sync::Mutex<Connection>,
    connect_timeout: Duration,
    call_timeout: Duration,
}

#[derive(Default)]
struct Connection {
    manager: Option<ConnectionManager>,
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
            state: tokio::sync::Mutex::default(),
            connect_timeout,
            call_timeout,
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The connection, made if there is none and the last try is not too recent; why not.
    pub async fn connection(&self) -> Result<ConnectionManager, LinkError> {
        let mut state = self.state.lock().await;
        if let Some(manager) = &state.manager {
            return Ok(manager.clone());
        }
        if state
            .last_try
            .is_some_and(|t| t.elapsed() < RECONNECT_EVERY)
        {
            return Err(LinkError::Waiting);
        }
        state.last_try = Some(Instant::now());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.call_timeout)
            .set_number_of_retries(1);
        let connect = ConnectionManager::new_with_config(self.client.clone(), config);
        match tokio::time::timeout(self.connect_timeout * 2, connect).await {
            Ok(Ok(manager)) => {
                state.manager = Some(manager.clone());
                Ok(manager)
            }
            Ok(Err(e)) => Err(LinkError::Failed(e.to_string())),
            Err(_) => Err(LinkError::Failed("timed out".into())),
        }
    }
}
