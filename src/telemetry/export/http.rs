//! The HTTP side of the exporters that post batches (OTLP, Respan) and of the limits'
//! `alert_webhook`: one pooled client per receiver, what a receiver's answer means, and
//! how long to wait before trying again.

use super::Failure;
use std::time::{Duration, Instant};

/// One batch post may take this long before it counts as failed.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// A receiver's address and the client that posts to it.
pub struct Poster {
    url: reqwest::Url,
    client: reqwest::Client,
}

/// A receiver's address: an http or https URL.
pub fn endpoint(endpoint: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("endpoint `{endpoint}`: must be http or https"));
    }
    Ok(url)
}

impl Poster {
    pub fn new(endpoint: &str) -> Result<Poster, String> {
        let url = self::endpoint(endpoint)?;
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Poster { url, client })
    }
}

/// Posts `body`; a 2xx is delivered, a 429 or 5xx (or no answer) may be tried again (after
/// the receiver's `Retry-After`, in seconds, when it gives one), anything else is final.
pub async fn post(poster: &Poster, body: Vec<u8>, headers: &[(&str, &str)]) -> Result<(), Failure> {
    let mut request = poster.client.post(poster.url.clone()).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.map_err(|e| Failure {
        // The error names the URL, never a header: no key in the log.
        message: e.without_url().to_string(),
        retryable: true,
        wait: None,
    })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let wait = answer
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(Failure {
        message: format!("{} answered {status}", poster.url),
        retryable: status.as_u16() == 429 || status.is_server_error(),
        wait,
    })
}

/// When to try a failed delivery again: at most `tries` times in all, after the receiver's
/// `Retry-After` when it gives one, else after a wait doubling from `first`; never longer
/// than `longest`, and never past a deadline.
pub struct Backoff {
    tries_left: u32,
    wait: Duration,
    longest: Duration,
    deadline: Option<Instant>,
}

impl Backoff {
    pub fn new(tries: u32, first: Duration, longest: Duration, deadline: Option<Instant>) -> Self {
        Backoff {
            tries_left: tries.saturating_sub(1),
            wait: first,
            longest,
            deadline,
        }
    }

    /// After `failure`: how long to wait before the next try, or `None` to give up.
    pub fn after(&mut self, failure: &Failure) -> Option<Duration> {
        if !failure.retryable || self.tries_left == 0 {
            return None;
        }
        let pause = failure.wait.unwrap_or(self.wait).min(self.longest);
        if self.deadline.is_some_and(|d| Instant::now() + pause >= d) {
            return None;
        }
        self.tries_left -= 1;
        self.wait *= 2;
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(retryable: bool, wait: Option<Duration>) -> Failure {
        Failure {
            message: String::new(),
            retryable,
            wait,
        }
    }

    #[test]
    fn backoff_doubles_follows_retry_after_and_gives_up() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(4, ms(250), ms(1000), None);
        assert_eq!(b.after(&failure(true, None)), Some(ms(250)));
        assert_eq!(b.after(&failure(true, Some(ms(5000)))), Some(ms(1000)));
        assert_eq!(b.after(&failure(true, None)), Some(ms(1000)));
        assert_eq!(b.after(&failure(true, None)), None, "four tries in all");
        assert_eq!(
            Backoff::new(4, ms(1), ms(1), None).after(&failure(false, None)),
            None
        );
        let past =
            Backoff::new(4, ms(250), ms(1000), Some(Instant::now())).after(&failure(true, None));
        assert_eq!(past, None);
    }

    #[test]
    fn endpoints_are_http_or_https() {
        assert!(endpoint("https://example.com/x").is_ok());
        assert!(endpoint("ftp://example.com").is_err());
        assert!(endpoint("not a url").is_err());
    }
}
