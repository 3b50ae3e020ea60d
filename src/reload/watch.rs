//! When to reload: a change to the config file or to a key file, seen by watching their
//! directories, debounced; or SIGHUP.
//!
//! Directories, not files: Kubernetes updates a mounted ConfigMap or Secret by swapping the
//! `..data` symlink beside the files, and editors save by renaming a new file over the old
//! one; a watch on the file itself misses both. Only events that name a watched file (or
//! `..data`) count, and never reads: reading the config would otherwise trigger the next
//! reload (PINGORA.md saw that loop).

use super::{Outcome, Reloader};
use async_trait::async_trait;
use notify::{EventKind, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// A burst of events (a save is about two, a `..data` swap three) is one reload: it waits
/// this long after the last event.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// An endless stream of events still reloads this often.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// The background service that reloads on file changes and on SIGHUP.
pub struct ConfigWatcher {
    pub reloader: Arc<Reloader>,
}

#[async_trait]
impl BackgroundService for ConfigWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut changed) = mpsc::unbounded_channel();
        let mut hangup = signal(SignalKind::hangup())
            .map_err(|e| tracing::warn!("SIGHUP will not reload the config: {e}"))
            .ok();
        let mut files = self.reloader.files();
        // Kept (and replaced) only to be dropped: dropping it ends the watch.
        let mut _watch = FileWatch::new(&files, tx.clone());
        loop {
            let always = tokio::select! {
                Some(()) = changed.recv() => {
                    settle(&mut changed).await;
                    false
                }
                Some(()) = recv_signal(&mut hangup) => {
                    tracing::info!("SIGHUP: reloading the config");
                    true
                }
                _ = shutdown.changed() => return,
            };
            // What has come until now is read by this reload, which reads the files after
            // it; what comes from here on may be a change the reload does not see, and gets
            // a reload of its own (a file back to the config in force reloads as unchanged).
            drop_pending(&mut changed);
            if self.reloader.reload(always) == Outcome::Reloaded {
                // A reload may name other key files: watch those from now on.
                let now = self.reloader.files();
                if now != files {
                    files = now;
                    _watch = FileWatch::new(&files, tx.clone());
                }
            }
        }
    }
}

/// The next SIGHUP, or never without a handler.
async fn recv_signal(hangup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits until no event has come for [`DEBOUNCE`] (at most [`MAX_DELAY`] in all).
pub(crate) async fn settle(changed: &mut mpsc::UnboundedReceiver<()>) {
    let give_up = tokio::time::Instant::now() + MAX_DELAY;
    loop {
        let quiet = (tokio::time::Instant::now() + DEBOUNCE).min(give_up);
        tokio::select! {
            Some(()) = changed.recv() => {}
            _ = tokio::time::sleep_until(quiet) => return,
        }
    }
}

/// Drops the events queued so far: called just before a reload reads the files, which then
/// sees every change they were about. Never after it: a change made while it ran would be
/// lost until the next one. (The reload's own reads make no event: accesses are not
/// counted.)
fn drop_pending(changed: &mut mpsc::UnboundedReceiver<()>) {
    while changed.try_recv().is_ok() {}
}

/// A notify watcher on the directories of some files, sending `()` for each event about one
/// of them. Dropping it stops the watch. The webhook watches its certificate with it too.
pub(crate) struct FileWatch {
    _watcher: Option<notify::RecommendedWatcher>,
}

impl FileWatch {
    pub(crate) fn new(files: &[PathBuf], tx: mpsc::UnboundedSender<()>) -> FileWatch {
        let mut names: BTreeSet<OsString> = files
            .iter()
            .filter_map(|f| f.file_name())
            .map(Into::into)
            .collect();
        names.insert("..data".into());
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let about_ours = event
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| names.contains(n)));
            if about_ours && !matches!(event.kind, EventKind::Access(_)) {
                let _ = tx.send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("files are not watched (SIGHUP still reloads the config): {e}");
                return FileWatch { _watcher: None };
            }
        };
        let dirs: BTreeSet<&Path> = files.iter().map(|f| directory_of(f)).collect();
        for dir in dirs {
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), "cannot watch: {e}");
            }
        }
        FileWatch {
            _watcher: Some(watcher),
        }
    }
}

fn directory_of(file: &Path) -> &Path {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}
