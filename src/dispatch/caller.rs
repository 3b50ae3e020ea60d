//! The app's side of a model call, as the attempt loop sees it: the request head it sent, and
//! a future that ends when it goes away. An upstream call (and what it costs) stops as soon
//! as the app closes its connection, whether the call is waiting, backing off or relaying.

use crate::error::GatewayError;
use pingora::http::RequestHeader;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The app that made the request (the proxy's Pingora session).
pub trait Caller {
    /// The app's request head: which of its headers travel upstream.
    fn request_header(&self) -> &RequestHeader;

    /// Ends when the app closes its connection (or sends bytes after its whole request).
    fn gone(&mut self) -> impl Future<Output = ()> + Send + '_;
}

pin_project_lite::pin_project! {
    /// `fut`, unless the caller goes away first.
    ///
    /// A plain future rather than an `async fn` over `tokio::select!`: an `async fn` keeps
    /// its argument and the future it awaits as two copies, which for an upstream call is
    /// kilobytes, in every future that awaits this one.
    pub struct OrGone<F, G> {
        #[pin]
        fut: F,
        #[pin]
        gone: G,
    }
}

/// Runs `fut` unless the caller goes away first.
pub fn or_gone<'s, F: Future, C: Caller>(
    caller: &'s mut C,
    fut: F,
) -> OrGone<F, impl Future<Output = ()> + Send + 's> {
    OrGone {
        fut,
        gone: caller.gone(),
    }
}

impl<F: Future, G: Future<Output = ()>> Future for OrGone<F, G> {
    type Output = Result<F::Output, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The call first: an answer that is ready wins over a close seen at the same time.
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match this.gone.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(GatewayError::ClientClosed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
