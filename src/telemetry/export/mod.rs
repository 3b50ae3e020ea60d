//! Trace exporters, all off the request path: each has its own bounded queue, filled by
//! `Telemetry::finish` without ever waiting (a full queue drops the trace and counts it), and
//! its own background service that sends batches, retries failures with backoff, logs them
//! at most once a minute, and flushes what is queued once a shutdown has drained.

pub(crate) mod http;
mod jsonl;
pub mod otlp;
pub mod respan;

use super::capture::Transcriber;
use super::logging::LogLimit;
use super::metrics::metrics;
use super::trace::Trace;
use crate::drain::{Batching, Deliver, Drain};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Traces waiting per exporter by default (`telemetry.export_queue`): seconds of a busy
/// sidecar's traffic, minutes of a quiet one's, in bounded memory.
pub const DEFAULT_EXPORT_QUEUE: usize = 4096;
/// The most bytes of text ([`Trace::bulk`]: as the request path kept it; the text an
/// exporter reads back from it may add as much again) an exporter holds, queued and in the
/// batch it is sending, unless a single trace is larger: a coding agent's traces carry
/// hundreds of kilobytes each, and a full queue of them (a collector down, its batches
/// retried) would be more than a gigabyte.
const QUEUED_BYTES: usize = 32 << 20;
/// Traces sent in one batch at most.
/// (Respan's bulk endpoint takes 500.)
const MAX_BATCH: usize = 256;
/// Tries of one batch before it is given up (counted as errors).
const MAX_TRIES: u32 = 4;
/// First wait between tries, doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between tries, whatever the receiver's `Retry-After` says.
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);
/// Traces go in batches of at most [`MAX_BATCH`], each waiting at most 200 ms for its batch
/// to fill; at a shutdown, the flush takes at most 5 s.
const BATCHING: Batching = Batching {
    max: MAX_BATCH,
    gather: Some(Duration::from_millis(200)),
    flush_limit: Duration::from_secs(5),
};

/// How OTLP/HTTP bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    Protobuf,
    Json,
}

/// Where traces go, as configured under `telemetry.exporters`.
#[derive(Clone)]
pub enum Destination {
    Jsonl {
        path: PathBuf,
    },
    OtlpHttp {
        endpoint: String,
        encoding: OtlpEncoding,
        headers: Vec<(String, String)>,
    },
    Respan {
        endpoint: String,
        api_key: String,
    },
}

/// The sending side of an exporter's queue.
pub struct Queue {
    name: &'static str,
    sender: mpsc::Sender<Arc<Trace>>,
    /// The bytes of text its exporter holds, shared with it.
    held: Arc<AtomicUsize>,
}

impl Queue {
    /// Queues a trace unless the queue is full, in traces or in [`QUEUED_BYTES`] (then it is
    /// dropped and counted).
    pub fn offer(&self, trace: &Arc<Trace>) {
        let bulk = trace.bulk();
        // An exporter holding nothing takes a trace however large.
        let before = self.held.fetch_add(bulk, Ordering::Relaxed);
        let room = before == 0 || before.saturating_add(bulk) <= QUEUED_BYTES;
        if !room || self.sender.try_send(trace.clone()).is_err() {
            self.held.fetch_sub(bulk, Ordering::Relaxed);
            count(self.name, "dropped", 1);
        }
    }
}

/// Makes an exporter: its queue, and the background service that drains it.
pub fn exporter(
    destination: Destination,
    transcriber: Transcriber,
    capacity: usize,
    drain: Drain,
) -> Result<(Queue, ExportService), String> {
    let sink = Sink::new(destination)?;
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let name = sink.name();
    let held = Arc::new(AtomicUsize::new(0));
    metrics().exporter_started(name);
    Ok((
        Queue {
            name,
            sender,
            held: held.clone(),
        },
        ExportService {
            name,
            transcriber,
            drain,
            log: LogLimit::once_a_minute(),
            held,
            state: Mutex::new(Some((sink, receiver))),
        },
    ))
}

/// One exporter's destination, with what it keeps between batches.
enum Sink {
    Jsonl(jsonl::Jsonl),
    Otlp(otlp::Otlp),
    Respan(respan::Respan),
}

impl Sink {
    fn new(destination: Destination) -> Result<Sink, String> {
        Ok(match destination {
            Destination::Jsonl { path } => Sink::Jsonl(jsonl::Jsonl::open(path)?),
            Destination::Respan { endpoint, api_key } => {
                Sink::Respan(respan::Respan::new(endpoint, api_key)?)
            }
            Destination::OtlpHttp {
                endpoint,
                encoding,
                headers,
            } => Sink::Otlp(otlp::Otlp::new(endpoint, encoding, headers)?),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Sink::Jsonl(_) => "jsonl",
            Sink::Otlp(_) => "otlp_http",
            Sink::Respan(_) => "respan",
        }
    }

    async fn send(&mut self, batch: &[Arc<Trace>], t: &Transcriber) -> Result<(), Failure> {
        match self {
            Sink::Jsonl(s) => s.write(batch, t).map_err(Failure::retry),
            Sink::Otlp(s) => s.send(batch, t).await,
            Sink::Respan(s) => s.send(batch, t).await,
        }
    }
}

/// Why a batch was not delivered, and whether trying again may help.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub retryable: bool,
    /// The receiver's `Retry-After`, if it gave one.
    pub wait: Option<Duration>,
}

impl Failure {
    fn retry(message: String) -> Failure {
        Failure {
            message,
            retryable: true,
            wait: None,
        }
    }
}

/// Drains one exporter's queue (a Pingora background service on its own thread).
pub struct ExportService {
    name: &'static str,
    transcriber: Transcriber,
    drain: Drain,
    log: LogLimit,
    /// The bytes of text it holds, queued and being sent ([`Queue::offer`] counts them in).
    held: Arc<AtomicUsize>,
    state: Mutex<Option<(Sink, mpsc::Receiver<Arc<Trace>>)>>,
}

#[async_trait]
impl BackgroundService for ExportService {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let taken = self.state.lock().ok().and_then(|mut s| s.take());
        let Some((sink, mut receiver)) = taken else {
            return;
        };
        yield_to_requests(self.name);
        let mut exporting = Exporting {
            service: self,
            sink,
        };
        self.drain
            .serve_queue(&mut receiver, &BATCHING, &mut exporting)
            .await;
    }
}

/// What [`Drain::serve_queue`] hands an exporter's batches to: its sink, tried again on
/// failure.
struct Exporting<'a> {
    service: &'a ExportService,
    sink: Sink,
}

impl Deliver<Arc<Trace>> for Exporting<'_> {
    /// Sends a batch, trying again with backoff while that may help (until `deadline`, in
    /// the shutdown's flush).
    async fn deliver(&mut self, batch: &[Arc<Trace>], deadline: Option<Instant>) {
        let service = self.service;
        let n = batch.len() as u64;
        let mut backoff = http::Backoff::new(MAX_TRIES, FIRST_BACKOFF, LONGEST_BACKOFF, deadline);
        loop {
            match self.sink.send(batch, &service.transcriber).await {
                Ok(()) => {
                    count(service.name, "ok", n);
                    break;
                }
                Err(f) => match backoff.after(&f) {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => {
                        service.warn(&f.message, n);
                        count(service.name, "error", n);
                        break;
                    }
                },
            }
        }
        // Handled: the batch is freed now. (Never below none, should a trace's bulk grow.)
        let bulk: usize = batch.iter().map(|trace| trace.bulk()).sum();
        let freed = |held: usize| Some(held.saturating_sub(bulk));
        let _ = service
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, freed);
    }
}

/// Exporters run at a lower priority than the request threads (nice 10, this thread only):
/// on a busy core the scheduler serves requests first, and a trace waits in its queue
/// instead. Measured at c=64, 5000 streams/s on one core (median of 5 interleaved rounds,
/// all three exporters on): TTFB p50 2.98 -> 1.52 ms, p99 18.9 -> 12.5 ms.
const EXPORT_NICE: i32 = 10;

fn yield_to_requests(exporter: &str) {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), EXPORT_NICE) {
        tracing::debug!(exporter, "exporter priority unchanged: {e}");
    }
}

impl ExportService {
    /// A batch given up, logged at most once a minute (with how many were not).
    fn warn(&self, message: &str, lost: u64) {
        if let Some(quiet) = self.log.permit() {
            tracing::warn!(
                exporter = self.name,
                lost,
                failures_not_logged = quiet,
                "trace export failed: {message}"
            );
        }
    }
}

fn count(exporter: &str, result: &str, n: u64) {
    metrics()
        .trace_exports
        .with_label_values(&[exporter, result])
        .inc_by(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::record::InputText;
    use crate::telemetry::trace::tests::{record, transcriber};

    /// A trace whose input is `bytes` long.
    fn trace(bytes: usize) -> Arc<Trace> {
        let mut r = record();
        r.input = Some(InputText::Body(bytes::Bytes::from(vec![b' '; bytes])));
        Arc::new(Trace::finish("t".into(), r))
    }

    #[tokio::test]
    async fn an_exporter_holds_at_most_its_bytes_of_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.jsonl");
        let destination = Destination::Jsonl { path: path.clone() };
        let (queue, service) =
            exporter(destination, transcriber(), 4096, Drain::default()).unwrap();
        let (sink, mut receiver) = service.state.lock().unwrap().take().unwrap();
        // A trace's answer counts too.
        let half = QUEUED_BYTES / 2 - trace(0).bulk();
        let mut offered = |bytes| {
            queue.offer(&trace(bytes));
            receiver.try_recv().ok()
        };
        let mut batch: Vec<Arc<Trace>> = Vec::new();
        batch.extend(offered(half));
        batch.extend(offered(half));
        assert_eq!(batch.len(), 2);
        assert!(offered(1).is_none(), "no room for a third");
        assert_eq!(queue.held.load(Ordering::Relaxed), QUEUED_BYTES);

        // Sent, a batch's bytes make room again.
        let mut exporting = Exporting {
            service: &service,
            sink,
        };
        exporting.deliver(&batch, None).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert_eq!(queue.held.load(Ordering::Relaxed), 0);
        let batch: Vec<Arc<Trace>> = [offered(half), offered(10)].into_iter().flatten().collect();
        assert_eq!(batch.len(), 2);
        assert!(offered(half).is_none(), "past the bytes again");
        // Emptied, an exporter takes a trace larger than its bytes.
        exporting.deliver(&batch, None).await;
        assert_eq!(queue.held.load(Ordering::Relaxed), 0);
        assert!(offered(QUEUED_BYTES + 1).is_some(), "the one trace");
    }
}
