//! `alert_webhook`: a JSON POST for each alert a rule raises, sent off the request path.
//!
//! The request that crosses a rule's `alert_at` only offers the alert to a bounded queue
//! (a full queue drops it, and the drop is logged at most once a minute); a background
//! service posts each one, retrying a 429, a 5xx or no answer with backoff, a few times.

use crate::telemetry::export::http::{post, Backoff, Poster};
use crate::telemetry::logging::LogLimit;
use crate::telemetry::trace::rfc3339;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// Alerts waiting to be posted at most: an alert is raised once per rule, scope value and
/// window, so more than this waiting means the receiver has been away a long time.
const QUEUE: usize = 256;
/// Tries of one alert before it is given up.
const MAX_TRIES: u32 = 4;
/// First wait between tries, doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between tries, whatever the receiver's `Retry-After` says.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A rule's alert threshold crossed, for one scope value and window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub rule: String,
    /// The value counted under (a key's name, a customer, a model; empty for `global`).
    pub scope: String,
    /// Which limit: `requests`, `tokens` or `cost_usd`.
    pub kind: &'static str,
    pub limit: f64,
    /// What the window holds with this request (reservations included).
    pub used: f64,
    /// When the window frees room (none for `lifetime`).
    #[serde(serialize_with = "time_or_null")]
    pub window_reset: Option<SystemTime>,
}

fn time_or_null<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// The sending side: offers alerts to the queue without waiting.
pub struct Outbox {
    sender: mpsc::Sender<(String, Alert)>,
    receiver: Mutex<Option<mpsc::Receiver<(String, Alert)>>>,
    log: LogLimit,
}

impl Default for Outbox {
    fn default() -> Outbox {
        let (sender, receiver) = mpsc::channel(QUEUE);
        Outbox {
            sender,
            receiver: Mutex::new(Some(receiver)),
            log: LogLimit::once_a_minute(),
        }
    }
}

impl Outbox {
    /// Queues `alert` for `url`; a full queue drops it.
    pub fn offer(&self, url: &str, alert: Alert) {
        if self.sender.try_send((url.to_string(), alert)).is_err() {
            if let Some(quiet) = self.log.permit() {
                tracing::warn!(
                    quiet,
                    "limits: an alert webhook post was dropped (queue full)"
                );
            }
        }
    }

    /// The service that posts what is queued (once: the queue has one reader).
    pub fn service(&self) -> Option<AlertService> {
        let receiver = self.receiver.lock().ok()?.take()?;
        Some(AlertService {
            receiver: Mutex::new(Some(receiver)),
        })
    }
}

/// Posts queued alerts, one at a time (a Pingora background service on its own thread).
pub struct AlertService {
    receiver: Mutex<Option<mpsc::Receiver<(String, Alert)>>>,
}

#[async_trait]
impl BackgroundService for AlertService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut receiver) = self.receiver.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let log = LogLimit::once_a_minute();
        // The poster of the last URL: a reload may name another.
        let mut poster: Option<(String, Poster)> = None;
        loop {
            let (url, alert) = tokio::select! {
                next = receiver.recv() => match next {
                    Some(next) => next,
                    None => return,
                },
                _ = shutdown.changed() => return,
            };
            if poster.as_ref().is_none_or(|(u, _)| *u != url) {
                match Poster::new(&url) {
                    Ok(p) => poster = Some((url, p)),
                    Err(why) => {
                        warn(&log, &why);
                        continue;
                    }
                }
            }
            if let Some((_, p)) = &poster {
                if let Err(why) = deliver(p, &alert).await {
                    warn(&log, &why);
                }
            }
        }
    }
}

/// Posts one alert, trying again with backoff while that may help.
async fn deliver(poster: &Poster, alert: &Alert) -> Result<(), String> {
    let body = serde_json::to_vec(alert).map_err(|e| e.to_string())?;
    let headers = [("content-type", "application/json")];
    let mut backoff = Backoff::new(MAX_TRIES, FIRST_BACKOFF, MAX_BACKOFF, None);
    loop {
        match post(poster, body.clone(), &headers).await {
            Ok(()) => return Ok(()),
            Err(f) => match backoff.after(&f) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(f.message),
            },
        }
    }
}

fn warn(log: &LogLimit, why: &str) {
    if let Some(quiet) = log.permit() {
        tracing::warn!(quiet, "limits: an alert webhook post failed: {why}");
    }
}
