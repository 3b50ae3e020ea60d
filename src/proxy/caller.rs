//! The Pingora session as the attempt loop's caller.

use crate::dispatch::caller::Caller;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::future::Future;

impl Caller for Session {
    fn request_header(&self) -> &RequestHeader {
        self.req_header()
    }

    /// The request body was read whole: anything the client does now (closing, or sending
    /// bytes it should not) means it is gone.
    fn gone(&mut self) -> impl Future<Output = ()> + Send + '_ {
        let read = self.read_body_or_idle(true);
        async move {
            let _ = read.await;
        }
    }
}
