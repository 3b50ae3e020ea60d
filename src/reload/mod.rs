//! Hot reload: the config file and its key files read again, the whole new state prepared
//! and checked, then swapped in with one store (`state`), or refused whole.
//!
//! `watch` decides when (file events, debounced, and SIGHUP); this module decides what a
//! reload does; `changes` says what one changed, by name only.

mod changes;
pub(crate) mod watch;

use crate::config::{self, CacheConfig, Config, ConfigError, Loaded};
use crate::state::{SharedState, Snapshot};
use crate::telemetry::metrics::metrics;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// What one reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The config and its key files hold the same bytes as the state in force: nothing done.
    Unchanged,
    Reloaded,
    Refused,
}

/// Reloads one config file into the shared state.
pub struct Reloader {
    path: PathBuf,
    state: SharedState,
    /// What the state in force was made from (see [`fingerprint`]).
    in_force: Mutex<[u8; 32]>,
}

impl Reloader {
    /// `loaded`: what the state in force was made from.
    pub fn new(path: PathBuf, state: SharedState, loaded: &Loaded) -> Reloader {
        Reloader {
            path,
            state,
            in_force: Mutex::new(fingerprint(loaded)),
        }
    }

    /// The config file's path.
    #[cfg(test)]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads the config again and puts it in force if it is valid and differs from the one
    /// in force; a bad one is refused whole (logged, counted, shown in `/config`).
    ///
    /// `always` (SIGHUP): an operator who asks for a reload sees one happen, so the snapshot
    /// is prepared, swapped, counted and logged even when no file changed.
    pub fn reload(&self, always: bool) -> Outcome {
        let mut in_force = self.in_force.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let loaded = match config::load(&self.path) {
            Ok(loaded) => loaded,
            Err(e) => return self.refuse(&e),
        };
        let print = fingerprint(&loaded);
        if print == *in_force && !always {
            // The file is back to the config in force: an earlier refusal no longer stands.
            self.state.set_reload_error(None);
            return Outcome::Unchanged;
        }
        for warning in &loaded.warnings {
            tracing::warn!("config: {warning}");
        }
        let old = self.state.load_full();
        let mut config = loaded.config;
        for key in keep_restart_settings(&old.config, &mut config) {
            tracing::warn!("config reload: {key} changed; it takes effect at the next restart");
        }
        let what = changes::describe(&old.config, &config);
        let snapshot = match Snapshot::new(config, loaded.version) {
            Ok(snapshot) => snapshot,
            Err(e) => return self.refuse(&e),
        };
        self.state.store(snapshot);
        *in_force = print;
        count("success");
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(path = %self.path.display(), took_ms, "config reloaded: {what}");
        Outcome::Reloaded
    }

    /// The files whose change may change the config: the file itself and every
    /// `api_key_file` of the config in force.
    pub fn files(&self) -> Vec<PathBuf> {
        let snapshot = self.state.load_full();
        let keys = snapshot.config.providers.iter();
        std::iter::once(self.path.clone())
            .chain(keys.filter_map(|p| p.api_key_file.clone()))
            .collect()
    }

    fn refuse(&self, e: &ConfigError) -> Outcome {
        let reason = e.to_string();
        tracing::error!(path = %self.path.display(), "config reload refused, the config in force stays: {reason}");
        self.state.set_reload_error(Some(reason));
        count("failure");
        Outcome::Refused
    }
}

fn count(result: &str) {
    metrics().config_reloads.with_label_values(&[result]).inc();
}

/// What a state is made from: the config text (its `version`) and the keys read from
/// `api_key_file`s, which can change while the config file does not.
fn fingerprint(loaded: &Loaded) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(loaded.version.as_bytes());
    for p in loaded.config.providers.iter() {
        hash.update(p.name.as_bytes());
        hash.update([0]);
        hash.update(p.api_key.as_ref().map_or("", |k| k.expose()).as_bytes());
        hash.update([0]);
    }
    hash.finalize().into()
}

/// Settings bound at start (listeners, threads, the cache's store, exporters) keep their running values in a
/// reloaded config, so `/config` shows what is really in force; returns those that changed.
fn keep_restart_settings(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let (o, n) = (&old.server, &mut new.server);
    if o.listen != n.listen {
        changed.push("server.listen");
        n.listen = o.listen;
    }
    if o.admin_listen != n.admin_listen {
        changed.push("server.admin_listen");
        n.admin_listen = o.admin_listen;
    }
    if o.threads != n.threads {
        changed.push("server.threads");
        n.threads = o.threads;
    }
    let (o, n) = (&old.cache, &mut new.cache);
    let bounds = |c: &CacheConfig| (c.backend, c.max_entries, c.max_bytes, c.redis_url.clone());
    if bounds(o) != bounds(n) {
        changed.push("cache.backend, redis_url, max_entries or max_bytes");
        n.backend = o.backend;
        n.max_entries = o.max_entries;
        n.max_bytes = o.max_bytes;
        n.redis_url.clone_from(&o.redis_url);
    }
    if old.telemetry != new.telemetry {
        changed.push("telemetry");
        new.telemetry = old.telemetry.clone();
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state;
    use std::path::Path;

    fn reloader(dir: &Path, yaml: &str) -> Reloader {
        let path = dir.join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        let loaded = config::load(&path).unwrap();
        let snapshot = Snapshot::new(loaded.config.clone(), loaded.version.clone()).unwrap();
        Reloader::new(path, state::shared(snapshot), &loaded)
    }

    #[test]
    fn same_bytes_are_no_reload_and_a_bad_file_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "providers:\n  a:\n    type: echo\n";
        let r = reloader(dir.path(), yaml);
        assert_eq!(r.reload(false), Outcome::Unchanged);
        std::fs::write(r.path(), "providers: [").unwrap();
        assert_eq!(r.reload(false), Outcome::Refused);
        assert!(r
            .state
            .last_reload_error()
            .unwrap()
            .contains("not valid YAML"));
        assert_eq!(r.state.load_full().config.providers[0].name, "a");
        // Put back as it was: nothing to reload, and the refusal is over.
        std::fs::write(r.path(), yaml).unwrap();
        assert_eq!(r.reload(false), Outcome::Unchanged);
        assert!(r.state.last_reload_error().is_none());
        std::fs::write(r.path(), "providers:\n  b:\n    type: echo\n").unwrap();
        assert_eq!(r.reload(false), Outcome::Reloaded);
        assert_eq!(r.state.load_full().config.providers[0].name, "b");
        assert!(r.state.last_reload_error().is_none());
        // SIGHUP: the same bytes are read, prepared and swapped in all the same.
        let before = r.state.load_full().loaded_at;
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(r.reload(true), Outcome::Reloaded);
        assert!(r.state.load_full().loaded_at > before);
        // Prepared before the swap: a key that cannot be sent refuses the config.
        std::fs::write(
            r.path(),
            "providers:\n  c:\n    type: openai\n    api_key: \"sk\\nx\"\n",
        )
        .unwrap();
        assert_eq!(r.reload(false), Outcome::Refused);
        let error = r.state.last_reload_error().unwrap();
        assert!(error.starts_with("providers.c.api_key: "), "{error}");
        assert_eq!(r.state.load_full().config.providers[0].name, "b");
    }

    #[test]
    fn a_rotated_key_file_is_a_change_and_listeners_stay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "sk-1").unwrap();
        let yaml = "server:\n  listen: 127.0.0.1:1\nproviders:\n  a:\n    type: openai\n    api_key_file: key\n";
        let r = reloader(dir.path(), yaml);
        assert_eq!(r.files(), [r.path().to_path_buf(), dir.path().join("key")]);
        std::fs::write(dir.path().join("key"), "sk-2").unwrap();
        assert_eq!(r.reload(false), Outcome::Reloaded);
        let key = |r: &Reloader| {
            let s = r.state.load_full();
            s.config.providers[0]
                .api_key
                .as_ref()
                .unwrap()
                .expose()
                .to_string()
        };
        assert_eq!(key(&r), "sk-2");
        std::fs::write(dir.path().join("key"), "").unwrap();
        assert_eq!(r.reload(false), Outcome::Refused);
        assert_eq!(key(&r), "sk-2");
        std::fs::write(dir.path().join("key"), "sk-3").unwrap();
        std::fs::write(r.path(), yaml.replace(":1\n", ":2\n")).unwrap();
        assert_eq!(r.reload(false), Outcome::Reloaded);
        let s = r.state.load_full();
        assert_eq!(s.config.server.listen.port(), 1);
    }
}
