//! The HTTP side of the exporters that post batches (OTLP, Respan): one pooled client per
//! exporter, and what a receiver's answer means for the batch.

use super::Failure;
use std::time::Duration;

/// One batch post may take this long before it counts as failed.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// A receiver's address and the client that posts to it.
pub struct Poster {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl Poster {
    pub fn new(endpoint: &str) -> Result<Poster, String> {
        let url =
            reqwest::Url::parse(endpoint).map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("endpoint `{endpoint}`: must be http or https"));
        }
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
