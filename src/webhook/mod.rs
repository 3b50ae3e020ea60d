//! `respan-sidecar webhook`: the mutating admission webhook that injects the sidecar into pods
//! as they are created, the change `inject` makes to manifests. HTTPS only (the
//! kube-apiserver calls webhooks over TLS), HTTP/1.1, `POST /mutate` for reviews and
//! `GET /healthz` for the kubelet's probes. Its own process, not the gateway's Pingora server:
//! it runs in its own Deployment, once per cluster.

mod certs;
mod review;

use bytes::Bytes;
use certs::Certs;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A review is a pod and its request; Kubernetes keeps objects under 1.5 MiB.
const MAX_REVIEW_BYTES: usize = 8 << 20;
/// A handshake, a request head or a body slower than this is given up (the apiserver's own
/// timeout for the webhook is at most 30 s, 10 s by default).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After SIGTERM, connections get this long to finish what they are doing.
const DRAIN: Duration = Duration::from_secs(5);

/// Where the webhook listens and what it serves with.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

/// Serves until SIGTERM or SIGINT; an error is a bad certificate or a listen address taken.
pub fn run(options: &Options) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(serve(options))
}

async fn serve(options: &Options) -> Result<(), String> {
    let certs = Certs::load(&options.tls_cert, &options.tls_key)?;
    let acceptor = TlsAcceptor::from(Arc::new(certs.server_config()?));
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", options.listen))?;
    let mut stop = Stop::new()?;
    tracing::info!(listen = %options.listen, "admission webhook serving");
    let mut connections = JoinSet::new();
    let follow = certs.follow();
    tokio::pin!(follow);
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(connection(tcp, acceptor.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, typically: wait rather than spin.
                    tracing::warn!("webhook accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut follow => {}
            () = stop.signalled() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    });
    let _ = drained.await;
    tracing::info!("admission webhook stopped");
    Ok(())
}

/// One TLS connection, its requests served in turn.
async fn connection(tcp: TcpStream, acceptor: TlsAcceptor) {
    let tls = match tokio::time::timeout(READ_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::debug!("webhook TLS handshake failed: {e}"),
        Err(_) => return tracing::debug!("webhook TLS handshake timed out"),
    };
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle))
        .await;
    if let Err(e) = served {
        tracing::debug!("webhook connection ended: {e}");
    }
}

/// Routes one request; every answer is made here.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", Bytes::from("ok\n")),
        (&Method::POST, "/mutate") => match read_body(request).await {
            Ok(body) => match review::answer(&body) {
                Ok(answer) => (
                    StatusCode::OK,
                    "application/json",
                    Bytes::from(answer.to_string()),
                ),
                Err(e) => error(StatusCode::BAD_REQUEST, &e),
            },
            Err((status, e)) => error(status, &e),
        },
        (_, "/mutate" | "/healthz") => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(
            StatusCode::NOT_FOUND,
            "not found: the webhook serves POST /mutate",
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Ok(response)
}

fn error(status: StatusCode, message: &str) -> (StatusCode, &'static str, Bytes) {
    let body = serde_json::json!({"error": {"message": message}});
    (status, "application/json", Bytes::from(body.to_string()))
}

/// The whole review, bounded in size and time; a declared length over the bound is refused
/// before any of the body is read.
async fn read_body(request: Request<Incoming>) -> Result<Bytes, (StatusCode, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a review is at most {MAX_REVIEW_BYTES} bytes"),
        )
    };
    if hyper::body::Body::size_hint(request.body()).lower() > MAX_REVIEW_BYTES as u64 {
        return Err(too_large());
    }
    let body = Limited::new(request.into_body(), MAX_REVIEW_BYTES).collect();
    match tokio::time::timeout(READ_TIMEOUT, body).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err((StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "the body came too slowly".into(),
        )),
    }
}

/// SIGTERM (the kubelet) or SIGINT (a terminal).
struct Stop {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> Result<Stop, String> {
        let handler = |kind| signal(kind).map_err(|e| format!("signal handler: {e}"));
        Ok(Stop {
            term: handler(SignalKind::terminate())?,
            int: handler(SignalKind::interrupt())?,
        })
    }

    async fn signalled(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
