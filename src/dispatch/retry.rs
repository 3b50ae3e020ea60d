//! Retries of one model: how many, and how long to wait before each.

use crate::config::RetryConfig;
use crate::params::{ParamError, RespanParams};
use std::time::Duration;

/// No wait between tries is ever longer than this, whatever the upstream asks for.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// More retries than this per model are not useful and would hold a request for minutes.
const MAX_RETRIES: u32 = 10;

/// How often one model is retried and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try (so `retries + 1` tries in all).
    pub retries: u32,
    /// The first wait, doubled for each further retry.
    pub base: Duration,
}

impl RetryPolicy {
    /// The request's `retry_params` over the config's `retry` defaults.
    pub fn new(defaults: &RetryConfig, params: &RespanParams) -> Result<Self, ParamError> {
        let given = params.retry_params.unwrap_or_default();
        let enabled = given.retry_enabled.unwrap_or(defaults.retry_enabled);
        let retries = given.num_retries.unwrap_or(defaults.num_retries);
        let seconds = given.retry_after.unwrap_or(defaults.retry_after);
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(ParamError {
                param: "retry_params.retry_after".into(),
                message: "must be 0 or more seconds".into(),
            });
        }
        Ok(RetryPolicy {
            retries: if enabled { retries.min(MAX_RETRIES) } else { 0 },
            base: Duration::from_secs_f64(seconds).min(MAX_RETRY_WAIT),
        })
    }

    /// The wait before retry number `retry` (1 for the first): exponential from `base`, plus
    /// up to 25% jitter so synchronized clients spread out, and at least what the upstream
    /// asked for with `Retry-After`; never more than [`MAX_RETRY_WAIT`].
    pub fn delay(&self, retry: u32, upstream_hint: Option<Duration>, jitter: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(16);
        let backoff = self.base.saturating_mul(1 << exponent);
        let backoff = backoff + backoff.mul_f64(jitter.clamp(0.0, 1.0) * 0.25);
        backoff
            .max(upstream_hint.unwrap_or_default())
            .min(MAX_RETRY_WAIT)
    }
}

/// Whether an upstream answer with this status is worth another try of the same model.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// The wait an upstream asked for: `retry-after-ms`, else `Retry-After` in seconds or as an
/// HTTP date.
pub fn retry_after_hint(
    retry_after_ms: Option<&[u8]>,
    retry_after: Option<&[u8]>,
) -> Option<Duration> {
    let text = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .map(str::trim)
            .map(str::to_string)
    };
    if let Some(ms) = retry_after_ms
        .and_then(text)
        .and_then(|t| t.parse::<f64>().ok())
    {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    let value = retry_after.and_then(text)?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(&value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::RetryParams;

    const DEFAULTS: RetryConfig = RetryConfig {
        retry_enabled: true,
        num_retries: 3,
        retry_after: 0.2,
    };

    #[test]
    fn retry_params_override_defaults() {
        let policy = |p: RetryParams| {
            let params = RespanParams {
                retry_params: Some(p),
                ..Default::default()
            };
            RetryPolicy::new(&DEFAULTS, &params)
        };
        let d = RetryPolicy::new(&DEFAULTS, &RespanParams::default()).unwrap();
        assert_eq!((d.retries, d.base), (3, Duration::from_millis(200)));
        let off = policy(RetryParams {
            retry_enabled: Some(false),
            ..Default::default()
        });
        assert_eq!(off.unwrap().retries, 0);
        let many = policy(RetryParams {
            num_retries: Some(1000),
            ..Default::default()
        });
        assert_eq!(many.unwrap().retries, MAX_RETRIES);
        let negative = policy(RetryParams {
            retry_after: Some(-1.0),
            ..Default::default()
        });
        assert_eq!(negative.unwrap_err().param, "retry_params.retry_after");
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy {
            retries: 5,
            base: Duration::from_millis(100),
        };
        assert_eq!(p.delay(1, None, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(3, None, 0.0), Duration::from_millis(400));
        assert_eq!(p.delay(3, None, 1.0), Duration::from_millis(500));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2)), 0.0),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(600)), 0.0),
            MAX_RETRY_WAIT
        );
        assert_eq!(p.delay(40, None, 0.0), MAX_RETRY_WAIT);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after_hint(Some(b"250"), Some(b"9")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after_hint(None, Some(b" 2 ")),
            Some(Duration::from_secs(2))
        );
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let hint = retry_after_hint(None, Some(soon.as_bytes())).unwrap();
        assert!(
            hint > Duration::from_secs(28) && hint <= Duration::from_secs(30),
            "{hint:?}"
        );
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            retry_after_hint(None, Some(past.as_bytes())),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_hint(None, Some(b"soon")), None);
        assert_eq!(retry_after_hint(None, None), None);
    }

    #[test]
    fn retryable_statuses() {
        assert!(retryable_status(429) && retryable_status(500) && retryable_status(529));
        assert!(!retryable_status(400) && !retryable_status(404) && !retryable_status(200));
    }
}
