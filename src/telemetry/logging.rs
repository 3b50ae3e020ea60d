//! The process's own log: stderr, JSON lines with `RESPAN_LOG_FORMAT=json`, human-readable
//! otherwise, level from `RESPAN_LOG` (default `info`). Pingora's `log` records are bridged in.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once, at start-up.
pub fn init() {
    let filter = std::env::var("RESPAN_LOG").unwrap_or_else(|_| "info".to_string());
    // Pingora logs every failed proxied request at error level; the gateway reports failures
    // itself (status, metrics), so its noise is kept to warnings unless asked for.
    let filter = EnvFilter::try_new(format!("pingora_core=warn,pingora_proxy=warn,{filter}"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("RESPAN_LOG_FORMAT").is_ok_and(|f| f == "json");
    // A second init (tests) is not an error worth stopping for.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Lets a failure that repeats (an exporter's receiver down, Redis down) be logged at most
/// once per period, and says how many were not logged in between.
pub struct LogLimit {
    every: Duration,
    /// When the last line was logged, and the failures kept quiet since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimit {
    /// The period the gateway's failure logs use.
    pub const fn once_a_minute() -> LogLimit {
        LogLimit::new(Duration::from_secs(60))
    }

    pub const fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(failures not logged since the last line)` when this one may be logged;
    /// `None` (and counted) when it is to be kept quiet.
    pub fn permit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, quiet) = &mut *state;
        if last.is_some_and(|t| t.elapsed() < self.every) {
            *quiet += 1;
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_of_the_quiet_ones() {
        let limit = LogLimit::new(Duration::from_millis(50));
        assert_eq!(limit.permit(), Some(0));
        assert_eq!((limit.permit(), limit.permit()), (None, None));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limit.permit(), Some(2));
    }
}
