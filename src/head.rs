//! Response heads the gateway builds itself, and how their bodies are framed: shared by the
//! answers it reads from providers (`dispatch`) and the ones it writes (`proxy`).

use http::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::response::Parts;
use http::StatusCode;

/// A number as a header value: one allocation, none for a single digit
/// (`HeaderValue::from` an integer makes two).
pub fn number(n: usize) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    if let Some(digit) = DIGITS.get(n) {
        return HeaderValue::from_static(digit);
    }
    let mut text = itoa::Buffer::new();
    // Digits always make a valid header value; the fallback is never taken.
    HeaderValue::from_str(text.format(n)).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Whole seconds as OpenAI writes a rate limit's reset (`12s`), in one allocation.
pub fn seconds(n: u64) -> HeaderValue {
    let mut text = itoa::Buffer::new();
    let digits = text.format(n).as_bytes();
    let mut value = [b's'; 21];
    value[..digits.len()].copy_from_slice(digits);
    // Digits and an `s` always make a valid header value; the fallback is never taken.
    HeaderValue::from_bytes(&value[..=digits.len()])
        .unwrap_or_else(|_| HeaderValue::from_static("0s"))
}

/// A response head the gateway builds itself: an `http` head filled in directly and handed
/// to Pingora whole ([`ResponseHeader`]'s own setters re-parse and copy every header name).
pub fn head(status: StatusCode) -> Parts {
    let (mut head, ()) = http::Response::new(()).into_parts();
    head.status = status;
    head
}

/// Sets how a head frames its body, whatever the provider sent: not at all for an answer
/// that cannot have one (RFC 9112 §6.1: 1xx, 204, 304; a provider may still send a length),
/// else `length` when the gateway knows it, else the provider's `Content-Length`, else
/// chunked.
pub fn frame(head: &mut Parts, length: Option<usize>) {
    let status = head.status;
    let headers = &mut head.headers;
    headers.remove(TRANSFER_ENCODING);
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        headers.remove(CONTENT_LENGTH);
    } else if let Some(length) = length {
        headers.insert(CONTENT_LENGTH, number(length));
    } else if !headers.contains_key(CONTENT_LENGTH) {
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(status: u16, headers: &[(&'static str, &'static str)]) -> Parts {
        let mut head = head(StatusCode::from_u16(status).unwrap());
        for (name, value) in headers {
            head.headers.insert(*name, HeaderValue::from_static(value));
        }
        head
    }

    fn framing(head: &Parts) -> (Option<&str>, Option<&str>) {
        let get = |name| head.headers.get(name).and_then(|v| v.to_str().ok());
        (get(CONTENT_LENGTH), get(TRANSFER_ENCODING))
    }

    #[test]
    fn bodies_are_framed_by_known_length_then_the_providers_then_chunks() {
        let mut known = head_of(200, &[("transfer-encoding", "chunked")]);
        frame(&mut known, Some(7));
        assert_eq!(framing(&known), (Some("7"), None));
        let mut providers = head_of(200, &[("content-length", "12")]);
        frame(&mut providers, None);
        assert_eq!(framing(&providers), (Some("12"), None));
        let mut unknown = head_of(200, &[]);
        frame(&mut unknown, None);
        assert_eq!(framing(&unknown), (None, Some("chunked")));
    }

    #[test]
    fn answers_without_a_body_frame_none() {
        for status in [204, 304] {
            let mut h = head_of(status, &[("content-length", "4")]);
            frame(&mut h, Some(4));
            assert_eq!(framing(&h), (None, None), "{status}");
            let mut h = head_of(status, &[("transfer-encoding", "chunked")]);
            frame(&mut h, None);
            assert_eq!(framing(&h), (None, None), "{status}");
        }
    }

    #[test]
    fn numbers_and_seconds_as_header_values() {
        assert_eq!(number(7), "7");
        assert_eq!(number(1_000_000), "1000000");
        assert_eq!(seconds(0), "0s");
        assert_eq!(seconds(86_400), "86400s");
        assert_eq!(seconds(u64::MAX), "18446744073709551615s");
    }
}
