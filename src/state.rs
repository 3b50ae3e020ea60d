//! The config in force, swapped whole on reload.
//!
//! Each request loads the snapshot once at its start and keeps that `Arc` to its end, so a
//! reload never changes the rules under a request in flight.

use crate::config::Config;
use crate::routing::Router;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::SystemTime;

/// Everything a request needs from the config, prepared once per load.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
    /// The sha256 of the config text (`/config`'s `version`).
    pub version: String,
    pub loaded_at: SystemTime,
}

impl Snapshot {
    pub fn new(config: Config, version: String) -> Snapshot {
        let router = Router::new(&config);
        Snapshot {
            config,
            router,
            version,
            loaded_at: SystemTime::now(),
        }
    }
}

/// The shared handle: readers `load_full()`, a reload `store()`s a new snapshot.
pub type SharedState = Arc<ArcSwap<Snapshot>>;

pub fn shared(config: Config, version: String) -> SharedState {
    Arc::new(ArcSwap::from_pointee(Snapshot::new(config, version)))
}
