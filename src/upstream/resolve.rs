//! Provider host names -> socket addresses, resolved asynchronously and cached.
//!
//! Pingora's `HttpPeer::new` resolves synchronously and panics when that fails, so peers are
//! built from a `SocketAddr` resolved here instead.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a resolved address is reused. Short, so a provider's DNS changes are followed.
const TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Resolver {
    cache: Mutex<HashMap<(String, u16), (SocketAddr, Instant)>>,
}

impl Resolver {
    /// The address to connect to for `host:port`; IP literals skip the lookup.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_string(), port);
        if let Some(addr) = self.cached(&key) {
            return Ok(addr);
        }
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} has no address"))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (addr, Instant::now() + TTL));
        }
        Ok(addr)
    }

    fn cached(&self, key: &(String, u16)) -> Option<SocketAddr> {
        let cache = self.cache.lock().ok()?;
        let (addr, expires) = cache.get(key)?;
        (Instant::now() < *expires).then_some(*addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_names() {
        let r = Resolver::default();
        assert_eq!(
            r.resolve("127.0.0.1", 80).await.unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(r.resolve("::1", 443).await.unwrap().port(), 443);
        let local = r.resolve("localhost", 8080).await.unwrap();
        assert!(local.ip().is_loopback());
        assert_eq!(r.cached(&("localhost".into(), 8080)), Some(local));
        assert!(r.resolve("no-such-host.invalid", 80).await.is_err());
    }
}
