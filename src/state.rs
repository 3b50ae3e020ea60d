//! The config in force, swapped whole on reload.
//!
//! Each request loads the snapshot once at its start and keeps that `Arc` to its end, so a
//! reload never changes the rules under a request in flight. A snapshot is the one owner of
//! everything made from its config (the routing table shares the config's providers, with
//! their header caches), so nothing outlives it or is shared across reloads.

use crate::config::{Config, ConfigError, Problem};
use crate::providers;
use crate::routing::Router;
use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};
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
    /// Prepares a validated config to serve: its routing table and each provider's key
    /// header. Fails if a key cannot be sent as a header, or a route names a provider the
    /// config does not have (validation refuses those first).
    pub fn new(config: Config, version: String) -> Result<Snapshot, ConfigError> {
        let problems: Vec<Problem> = config
            .providers
            .iter()
            .filter_map(|p| {
                let e = providers::prepare(p).err()?;
                Some(Problem::new(
                    format!("providers.{}.api_key", p.name),
                    e.to_string(),
                ))
            })
            .collect();
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let router = Router::new(&config).map_err(|e| Problem::new("routes", e))?;
        let budgets = crate::config::limits::CUSTOMER_BUDGETS.into_iter();
        for rule in config
            .limits
            .rules
            .iter()
            .map(|r| r.name.as_str())
            .chain(budgets)
        {
            crate::telemetry::metrics::metrics().limit_rule_known(rule);
        }
        Ok(Snapshot {
            config,
            router,
            version,
            loaded_at: SystemTime::now(),
        })
    }
}

/// The snapshot in force, and how the last reload went.
#[derive(Debug)]
pub struct State {
    snapshot: ArcSwap<Snapshot>,
    last_reload_error: Mutex<Option<String>>,
}

/// The shared handle: requests and the admin port read it, a reload swaps it.
pub type SharedState = Arc<State>;

pub fn shared(snapshot: Snapshot) -> SharedState {
    Arc::new(State {
        snapshot: ArcSwap::from_pointee(snapshot),
        last_reload_error: Mutex::new(None),
    })
}

impl State {
    /// The snapshot in force, for a request to keep to its end.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Puts a new snapshot in force in one store; it also clears the last reload error.
    pub fn store(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
        self.set_reload_error(None);
    }

    /// Why the last reload was refused (`None` once a reload succeeds).
    pub fn last_reload_error(&self) -> Option<String> {
        self.last_reload_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_reload_error(&self, error: Option<String>) {
        *self
            .last_reload_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = error;
    }
}
