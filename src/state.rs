//! The config in force, swapped whole on reload.
//!
//! Each request loads the snapshot once at its start and keeps that `Arc` to its end, so a
//! reload never changes the rules under a request in flight.

use crate::config::Config;
use crate::routing::Router;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Everything a request needs from the config, prepared once per load.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
}

impl Snapshot {
    pub fn new(config: Config) -> Snapshot {
        let router = Router::new(&config);
        Snapshot { config, router }
    }
}

/// The shared handle: readers `load_full()`, a reload `store()`s a new snapshot.
pub type SharedState = Arc<ArcSwap<Snapshot>>;

pub fn shared(config: Config) -> SharedState {
    Arc::new(ArcSwap::from_pointee(Snapshot::new(config)))
}
