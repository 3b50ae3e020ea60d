//! Stops an upstream call (and what it costs) as soon as the app closes its connection,
//! whether the call is waiting, backing off or relaying.

use crate::error::GatewayError;
use pingora::proxy::Session;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// `fut`, unless the client closes its connection first.
    ///
    /// A plain future rather than an `async fn` over `tokio::select!`: an `async fn` keeps
    /// its argument and the future it awaits as two copies, which for an upstream call is
    /// kilobytes, in every future that awaits this one.
    pub struct OrClientGone<F, G> {
        #[pin]
        fut: F,
        #[pin]
        gone: G,
    }
}

/// Runs `fut` unless the client closes its connection first.
pub fn or_client_gone<'s, F: Future>(
    session: &'s mut Session,
    fut: F,
) -> OrClientGone<F, impl Future + 's> {
    OrClientGone {
        fut,
        gone: session.read_body_or_idle(true),
    }
}

impl<F: Future, G: Future> Future for OrClientGone<F, G> {
    type Output = Result<F::Output, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The call first: an answer that is ready wins over a close seen at the same time.
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        // The request body was read whole: anything the client does now (closing, or
        // sending bytes it should not) ends the call.
        match this.gone.poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(GatewayError::ClientClosed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
