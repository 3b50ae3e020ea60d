//! The admin port's accept loop, run as a background service rather than a Pingora
//! listening service: those stop accepting when a shutdown begins, and the admin port must
//! keep answering through the drain (`/readyz` 503 for the kubelet, `/metrics` for the last
//! scrape). It ends with the process.

use super::AdminApp;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Serves the admin app on a socket bound before the server starts (so a taken port is a
/// clear error at start, not Pingora's retries).
pub struct AdminListener {
    app: Arc<AdminApp>,
    socket: Mutex<Option<std::net::TcpListener>>,
}

impl AdminListener {
    pub fn new(app: AdminApp, socket: std::net::TcpListener) -> AdminListener {
        AdminListener {
            app: Arc::new(app),
            socket: Mutex::new(Some(socket)),
        }
    }
}

#[async_trait]
impl BackgroundService for AdminListener {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let socket = self.socket.lock().ok().and_then(|mut s| s.take());
        let Some(listener) = socket.and_then(|s| {
            s.set_nonblocking(true).ok()?;
            TcpListener::from_std(s).ok()
        }) else {
            tracing::error!("the admin port cannot accept connections");
            return;
        };
        // Connections are served as if no shutdown ever came: kept alive to the end.
        let (_serving, never) = watch::channel(false);
        // Owned by this service, not detached: they end with it.
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, typically: wait rather than spin.
                    tracing::warn!("admin port accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (app, never) = (self.app.clone(), never.clone());
            connections.spawn(async move {
                app.process_new(Box::new(Stream::from(tcp)), &never).await;
            });
        }
    }
}
