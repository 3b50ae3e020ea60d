//! An upgrade (a WebSocket handshake) with a provider: the request sent on a connection of
//! its own, the answer's head read by hand, and the connection handed over as raw bytes.
//!
//! Pingora's HTTP/1 client would keep bytes that follow the head (a first frame) in its own
//! buffer; reading the head here hands them over with the connection. An upgraded
//! connection is never pooled.

use super::{write_request, ExchangeError, Upstream};
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::v1::client::http_req_header_to_wire;
use pingora::protocols::Stream;
use tokio::io::AsyncReadExt;
use tokio::time::{timeout_at, Instant};

/// The longest answer head (and, for a refusal, body) read from a provider.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// The longest refusal body relayed to the app.
const MAX_REFUSAL: usize = 1024 * 1024;

/// The provider's answer to an upgrade request.
pub struct Upgrade {
    pub head: ResponseHeader,
    pub stream: Stream,
    /// Bytes that came after the head in the same reads: the first frames, or the start of
    /// a refusal's body.
    pub early: Bytes,
}

impl Upstream {
    /// Sends an upgrade request on a new connection and reads the answer's head, all before
    /// `deadline`.
    pub async fn upgrade(
        &self,
        peer: &HttpPeer,
        header: &RequestHeader,
        deadline: Instant,
    ) -> Result<Upgrade, ExchangeError> {
        let head = http_req_header_to_wire(header)
            .ok_or_else(|| ExchangeError::Broken("the request header cannot be sent".into()))?;
        let mut stream = Box::pin(self.connect(peer, deadline)).await?;
        let answer = async {
            write_request(&mut stream, &head, &[])
                .await
                .map_err(|e| ExchangeError::Broken(e.to_string()))?;
            read_head(&mut stream).await
        };
        let (head, early) = timeout_at(deadline, answer)
            .await
            .map_err(|_| ExchangeError::Timeout)??;
        Ok(Upgrade {
            head,
            stream,
            early,
        })
    }
}

impl Upgrade {
    /// The rest of a refused upgrade's body (its `Content-Length`, or until the provider
    /// closes), bounded, before `deadline`.
    pub async fn refusal_body(mut self, deadline: Instant) -> Result<Bytes, ExchangeError> {
        let length = self
            .head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let mut body = BytesMut::from(&self.early[..]);
        let read = async {
            while length.is_none_or(|n| body.len() < n) && body.len() < MAX_REFUSAL {
                match self.stream.read_buf(&mut body).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(ExchangeError::Broken(e.to_string())),
                }
            }
            Ok(())
        };
        timeout_at(deadline, read)
            .await
            .map_err(|_| ExchangeError::Timeout)??;
        body.truncate(length.unwrap_or(MAX_REFUSAL).min(MAX_REFUSAL));
        Ok(body.freeze())
    }
}

/// Reads an answer's head; the bytes read past it come back beside it.
async fn read_head(stream: &mut Stream) -> Result<(ResponseHeader, Bytes), ExchangeError> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| ExchangeError::Broken(e.to_string()))?;
        if n == 0 {
            return Err(ExchangeError::Broken(
                "the connection closed before the answer's head".into(),
            ));
        }
        if let Some((head, len)) = parse_head(&buf)? {
            let early = buf.split_off(len).freeze();
            return Ok((head, early));
        }
        if buf.len() > MAX_HEAD {
            return Err(ExchangeError::Broken(format!(
                "the answer's head is longer than {MAX_HEAD} bytes"
            )));
        }
    }
}

/// The head at the start of `buf` and its length, or `None` if it is not all there yet.
fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHeader, usize)>, ExchangeError> {
    let bad = |e: &dyn std::fmt::Display| ExchangeError::Broken(format!("bad answer head: {e}"));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    let len = match answer.parse(buf).map_err(|e| bad(&e))? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let code = answer.code.unwrap_or_default();
    let mut head = ResponseHeader::build(code, Some(answer.headers.len())).map_err(|e| bad(&e))?;
    for h in answer.headers.iter() {
        head.append_header(h.name.to_string(), h.value)
            .map_err(|e| bad(&e))?;
    }
    Ok(Some((head, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_and_early_bytes_kept_apart() {
        let text = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n\x81\x02hi";
        let (head, len) = parse_head(text).unwrap().unwrap();
        assert_eq!(head.status.as_u16(), 101);
        assert_eq!(head.headers["upgrade"], "websocket");
        assert_eq!(&text[len..], b"\x81\x02hi");
        assert!(parse_head(&text[..20]).unwrap().is_none());
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }
}
