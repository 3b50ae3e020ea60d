//! The readiness latch behind `/readyz`: ready once the config is loaded and the API port
//! accepts connections; not ready again once shutdown begins.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Shared readiness flag.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

/// A background service that flips readiness on once the API port answers a TCP connect
/// (Pingora binds its listeners after services start, so "started" is not "listening"),
/// and off when shutdown begins.
pub struct ReadinessProbe {
    pub readiness: Readiness,
    pub api_addr: SocketAddr,
}

#[async_trait]
impl BackgroundService for ReadinessProbe {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let probe = connect_addr(self.api_addr);
        loop {
            if tokio::net::TcpStream::connect(probe).await.is_ok() {
                self.readiness.set(true);
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = shutdown.changed() => return,
            }
        }
        let _ = shutdown.changed().await;
        self.readiness.set(false);
    }
}

/// Where to connect to reach a listen address: a wildcard listen is reached on loopback.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}
