//! `GET /api/traces?limit=N&model=&status=&customer_identifier=`: the newest trace records
//! first, from the recent ones kept in memory.

use crate::telemetry::trace::Trace;
use crate::telemetry::Telemetry;

/// At most this many records in one answer, whatever `limit` asks.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// The filters of a query.
#[derive(Debug, Default, PartialEq)]
struct Query {
    limit: Option<usize>,
    /// Matches the requested model or the model that served.
    model: Option<String>,
    /// An exact status (`429`) or a class (`5xx`).
    status: Option<String>,
    customer_identifier: Option<String>,
    request_id: Option<String>,
}

impl Query {
    fn parse(query: &str) -> Query {
        let mut q = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match key {
                "limit" => q.limit = value.parse().ok(),
                "model" => q.model = Some(value),
                "status" => q.status = Some(value),
                "customer_identifier" => q.customer_identifier = Some(value),
                "request_id" => q.request_id = Some(value),
                _ => {}
            }
        }
        q
    }

    fn keeps(&self, t: &Trace) -> bool {
        let r = &t.record;
        let model_ok = self.model.as_deref().is_none_or(|m| {
            r.requested_model.as_deref() == Some(m) || r.served.upstream_model == m
        });
        let status_ok = self
            .status
            .as_deref()
            .is_none_or(|s| status_matches(s, r.status));
        let customer_ok = self
            .customer_identifier
            .as_deref()
            .is_none_or(|c| r.subject.customer_identifier.as_deref() == Some(c));
        let id_ok = self
            .request_id
            .as_deref()
            .is_none_or(|id| t.request_id == id);
        model_ok && status_ok && customer_ok && id_ok
    }
}

/// `429` matches 429; `4xx` matches 400 to 499.
fn status_matches(filter: &str, status: u16) -> bool {
    match filter.as_bytes() {
        [class @ b'1'..=b'5', b'x', b'x'] => u16::from(class - b'0') == status / 100,
        _ => filter.parse::<u16>() == Ok(status),
    }
}

/// Percent-decoding of a query value (`+` is a space, as forms send it).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// About the size of one trace record with a short conversation, in bytes.
const RECORD_SIZE: usize = 2048;

/// The answer's body: `{"data": [records...]}`.
pub fn list(telemetry: &Telemetry, query: &str) -> Vec<u8> {
    let q = Query::parse(query);
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let traces = telemetry.recent(limit, |t| q.keeps(t));
    let mut body = Vec::with_capacity(16 + traces.len() * RECORD_SIZE);
    body.extend_from_slice(b"{\"data\":[");
    for (i, trace) in traces.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        trace.write_json(&telemetry.transcriber, &mut body);
    }
    body.extend_from_slice(b"]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::tests::telemetry;
    use crate::telemetry::trace::tests::record;

    #[test]
    fn a_list_is_json_with_the_newest_traces_first() {
        let telemetry = telemetry(10);
        let ids = |query: &str| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_slice(&list(&telemetry, query)).unwrap();
            let data = v["data"].as_array().unwrap();
            data.iter()
                .map(|t| t["request_id"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(ids("").is_empty());
        telemetry.finish("a".into(), record());
        assert_eq!(ids(""), ["a"]);
        telemetry.finish("b".into(), record());
        telemetry.finish("c".into(), record());
        assert_eq!(ids(""), ["c", "b", "a"]);
        assert_eq!(ids("limit=2"), ["c", "b"]);
    }

    #[test]
    fn queries_are_parsed_and_decoded() {
        let q = Query::parse("limit=5&model=gpt%2D4.1&status=5xx&customer_identifier=a+b&x=1");
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.model.as_deref(), Some("gpt-4.1"));
        assert_eq!(q.customer_identifier.as_deref(), Some("a b"));
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%C3%A9"), "é");
    }

    #[test]
    fn status_filters() {
        assert!(status_matches("5xx", 502));
        assert!(!status_matches("5xx", 429));
        assert!(status_matches("429", 429));
        assert!(!status_matches("garbage", 200));
    }
}
