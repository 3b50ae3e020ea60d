//! The attempt loop of a model call: each model of the plan, each with its retries, until an
//! answer is worth relaying.
//!
//! Every model is prepared once (`prepare`: credentials, URL, the body in its provider's
//! format, how to translate the answer back) and sent on each try. A connect error, timeout,
//! 429 or 5xx is retried; any other error answer moves on to the next model. A streamed
//! answer is held back until its first real content: a stream that fails before that is a
//! failed try too. The answer relayed is the first success, or the last failure when
//! nothing succeeded. A client that goes away ends the loop at once.

use super::answer::{Answer, BodyReader, Held, Settled};
use super::caller::{or_gone, Caller};
use super::prepare::{prepare, token_estimate, Prepared, Target};
use super::request::ModelRequest;
use super::{retry_after_hint, retryable_status, LatencyTracker, Plan, FAILURE_PENALTY};
use crate::body::JsonBody;
use crate::config::ProviderConfig;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::error::StreamFailure;
use crate::health::{Admission, Circuits, Report};
use crate::providers::{echo, Operation};
use crate::routing::Route;
use crate::state::Snapshot;
use crate::telemetry::record::{AttemptRecord, Outcome, RequestRecord};
use crate::translate::{ResponsePlan, StreamTranslator};
use crate::upstream::{ExchangeError, ReadLimits, Upstream};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use std::time::Duration;
use tokio::time::Instant;

/// Error answers of failed tries are kept (to relay the last one) up to this size.
const MAX_ERROR_BODY: usize = 256 * 1024;

/// Runs the attempt plan of one request.
pub struct Attempts<'a> {
    pub upstream: &'a Upstream,
    /// Where `least_latency` groups' latencies are kept.
    pub latency: &'a LatencyTracker,
    pub snapshot: &'a Snapshot,
    pub request: &'a ModelRequest<'a>,
    pub pinned: Option<&'a str>,
    /// Each provider and model's circuit: open ones are skipped without a call.
    pub circuits: &'a Circuits,
    /// Bytes of a streamed answer's text to assemble for the trace as it passes (0: none).
    pub transcript_limit: usize,
}

/// A failed try's answer, kept to answer with if nothing succeeds.
enum Failure {
    /// An error answer, relayed (translated) as the upstream gave it.
    Answer(Box<ResponseHeader>, Bytes, ResponsePlan),
    /// No answer: connect error, timeout, a stream that broke before its content, no route.
    Error(GatewayError),
}

/// What one try came to.
enum Tried {
    Settled(Box<Settled>),
    Failed {
        status: Option<u16>,
        hint: Option<Duration>,
    },
}

impl Attempts<'_> {
    /// Tries each model of the plan, each with its retries, until one gives an answer to
    /// relay: a success, or an error that is final (not retryable, or the last chance).
    /// Each try is noted on `record` (its attempts, and what serves the request).
    pub async fn run<C: Caller>(
        &self,
        caller: &mut C,
        record: &mut RequestRecord,
        plan: &Plan,
    ) -> Result<Settled, GatewayError> {
        let mut last_answer: Option<Failure> = None;
        let mut last_error: Option<Failure> = None;
        // The soonest an open circuit that was skipped reopens, and whether any call was made.
        let mut skipped: Option<std::time::Instant> = None;
        let mut called = false;
        for (index, model) in plan.models.iter().enumerate() {
            let last_model = index + 1 == plan.models.len();
            let route = match self.snapshot.router.resolve(model, self.pinned) {
                Ok(route) => route,
                Err(e) => {
                    last_error = Some(Failure::Error(e.into()));
                    continue;
                }
            };
            let upstream_model = self.upstream_model(model, &route);
            let prepared = match prepare(
                self.request,
                self.snapshot,
                caller.request_header(),
                &route,
                model,
                upstream_model,
            ) {
                Ok(p) => p,
                Err(e) => {
                    last_error = Some(Failure::Error(e));
                    continue;
                }
            };
            record.web_search = prepared.plan.web_search.map(|w| w.as_str());
            let health = &route.provider.health;
            let mut hint = None;
            for try_no in 0..=plan.retry.retries {
                if try_no > 0 {
                    let wait = plan.retry.delay(try_no, hint, rand::random::<f64>());
                    or_gone(caller, tokio::time::sleep(wait)).await?;
                }
                let circuit = (route.provider.name.as_str(), upstream_model);
                if let Admission::Skip { until } = self.circuits.admit(circuit.0, circuit.1, health)
                {
                    record.attempts.push(skipped_attempt(model, &route));
                    skipped = Some(skipped.map_or(until, |s| s.min(until)));
                    break;
                }
                called = true;
                note_served(record, &route, upstream_model);
                let retries_left = try_no < plan.retry.retries;
                let started = Instant::now();
                let mut note = AttemptRecord {
                    model: model.as_str().into(),
                    provider: route.provider.name.as_str().into(),
                    label: route.metric_label.into(),
                    outcome: Outcome::Ok,
                    status_code: None,
                    error: None,
                    latency: Duration::ZERO,
                };
                let tried = self
                    .try_once(
                        caller,
                        &prepared,
                        &route,
                        upstream_model,
                        (last_model, retries_left),
                        &mut note,
                        (&mut last_answer, &mut last_error),
                    )
                    .await;
                note.latency = started.elapsed();
                let retry_after = match &tried {
                    Ok(Tried::Failed { hint, .. }) => *hint,
                    _ => None,
                };
                let report = Report::of_outcome(note.outcome, note.error.as_deref(), retry_after);
                self.circuits.report(circuit.0, circuit.1, report, health);
                record.attempts.push(note);
                let tried = tried?;
                if plan.track_latency {
                    let took = match tried {
                        Tried::Settled(_) => started.elapsed(),
                        Tried::Failed { .. } => FAILURE_PENALTY,
                    };
                    self.latency.record(model, took);
                }
                match tried {
                    Tried::Settled(settled) => return Ok(*settled),
                    Tried::Failed { status, hint: h } => {
                        hint = h;
                        let retryable = status.is_none_or(retryable_status);
                        if !(retryable && retries_left) {
                            break;
                        }
                    }
                }
            }
        }
        if let (false, Some(until)) = (called, skipped) {
            let retry_after = until.saturating_duration_since(std::time::Instant::now());
            return Err(GatewayError::CircuitOpen { retry_after });
        }
        match last_answer.or(last_error) {
            Some(Failure::Answer(header, body, plan)) => Ok(Settled {
                answer: Answer::Buffered(header, Some(body)),
                plan,
                limits: self.limits(),
                held: None,
            }),
            Some(Failure::Error(e)) => Err(e),
            None => Err(GatewayError::NoUpstream("no attempt was made".into())),
        }
    }

    fn limits(&self) -> ReadLimits {
        let server = &self.snapshot.config.server;
        ReadLimits {
            deadline: Instant::now() + server.upstream_timeout,
            idle: server.stream_idle_timeout,
        }
    }

    /// One try: sends, and settles on the answer if it is a success or the last chance;
    /// otherwise keeps why it failed. `note` gets how the try went, for the record.
    /// `(last_model, retries_left)` say whether a failure here is final.
    #[allow(clippy::too_many_arguments)]
    async fn try_once<C: Caller>(
        &self,
        caller: &mut C,
        prepared: &Prepared<'_>,
        route: &Route<'_>,
        upstream_model: &str,
        (last_model, retries_left): (bool, bool),
        note: &mut AttemptRecord,
        (last_answer, last_error): (&mut Option<Failure>, &mut Option<Failure>),
    ) -> Result<Tried, GatewayError> {
        let limits = self.limits();
        let result = or_gone(
            caller,
            self.send(prepared, route.provider, upstream_model, limits.deadline),
        )
        .await;
        let result = match result {
            Ok(result) => result,
            Err(gone) => {
                note.outcome = Outcome::ClientGone;
                return Err(gone);
            }
        };
        note.outcome = outcome_of(&result);
        let mut answer = match result {
            Ok(answer) => answer,
            Err(e) => {
                note.error = Some(e.to_string());
                *last_error = Some(Failure::Error(exchange_error(e, self.snapshot)));
                return Ok(Tried::Failed {
                    status: None,
                    hint: None,
                });
            }
        };
        let status = answer.status();
        note.status_code = Some(status);
        let success = (200..300).contains(&status);
        let final_answer = !(retryable_status(status) && retries_left) && last_model;
        if !success && !final_answer {
            let (header, body) = self.drain(answer, limits).await;
            note.error = error_message(&body);
            let hint = header.as_ref().and_then(|h| {
                retry_after_hint(
                    h.headers.get("retry-after-ms").map(|v| v.as_bytes()),
                    h.headers.get("retry-after").map(|v| v.as_bytes()),
                )
            });
            if let Some(header) = header {
                *last_answer = Some(Failure::Answer(
                    Box::new(header),
                    body,
                    prepared.plan.clone(),
                ));
            }
            return Ok(Tried::Failed {
                status: Some(status),
                hint,
            });
        }
        if !(success && answer.is_event_stream()) {
            return Ok(Tried::Settled(Box::new(Settled {
                answer,
                plan: prepared.plan.clone(),
                limits,
                held: None,
            })));
        }
        match or_gone(
            caller,
            hold_back(&mut answer, &prepared.plan, limits, self.transcript_limit),
        )
        .await?
        {
            Ok(held) => Ok(Tried::Settled(Box::new(Settled {
                answer,
                plan: prepared.plan.clone(),
                limits,
                held: Some(held),
            }))),
            Err(failure) => {
                tracing::debug!(provider = %route.provider.name, "stream failed before its content: {}", failure.message);
                note.outcome = Outcome::StreamError;
                note.status_code = Some(failure.status);
                note.error = Some(failure.message.clone());
                self.discard(answer).await;
                *last_answer = Some(Failure::Error(GatewayError::UpstreamStream {
                    status: failure.status,
                    message: failure.message,
                }));
                Ok(Tried::Failed {
                    status: Some(failure.status),
                    hint: None,
                })
            }
        }
    }

    /// The model name the provider gets: the request's `model_name_map` (by the name the app
    /// used, then the routed name) over the route's `upstream_model`.
    fn upstream_model<'s>(&'s self, model: &str, route: &Route<'s>) -> &'s str {
        let map = self.request.params.model_name_map.as_ref();
        map.and_then(|m| m.get(model).or_else(|| m.get(route.upstream_model)))
            .map_or(route.upstream_model, String::as_str)
    }

    async fn send(
        &self,
        prepared: &Prepared<'_>,
        provider: &ProviderConfig,
        upstream_model: &str,
        deadline: Instant,
    ) -> Result<Answer, ExchangeError> {
        let request = self.request;
        match &prepared.target {
            Target::Echo => {
                let endpoint = match request.operation {
                    Operation::Embed => Endpoint::Embeddings,
                    _ => Endpoint::ChatCompletions,
                };
                // What the echo provider answers is what it was sent, as a provider would be.
                let body = JsonBody::parse(&prepared.body).unwrap_or_default();
                let answer = echo::answer(endpoint, &body, upstream_model, request.stream);
                Ok(Answer::Local(answer))
            }
            Target::Estimate => Ok(Answer::Local(token_estimate(&request.body))),
            Target::Remote { header, base_url } => {
                let upstream = self.upstream;
                let connect_timeout = self.snapshot.config.server.connect_timeout;
                let peer = upstream.peer(base_url, connect_timeout).await?;
                tracing::debug!(provider = %provider.name, model = upstream_model, "upstream attempt");
                upstream
                    .send(&peer, header, &prepared.body, deadline)
                    .await
                    .map(|exchange| Answer::Remote(Box::new(exchange)))
            }
        }
    }

    /// Reads a failed try's answer to keep it (its connection goes back to the pool).
    async fn drain(&self, answer: Answer, limits: ReadLimits) -> (Option<ResponseHeader>, Bytes) {
        match answer {
            Answer::Remote(mut exchange) => {
                let header = exchange.header().cloned();
                let body = exchange
                    .read_to_end(MAX_ERROR_BODY, limits)
                    .await
                    .unwrap_or_default();
                self.upstream.finish(exchange).await;
                (header, body)
            }
            Answer::Local(local) => {
                let header = ResponseHeader::build(local.status, None).ok();
                (
                    header,
                    local
                        .chunks
                        .into_iter()
                        .flatten()
                        .collect::<Vec<u8>>()
                        .into(),
                )
            }
            Answer::Buffered(header, body) => (Some(*header), body.unwrap_or_default()),
        }
    }

    /// Drops an answer that will not be used (its connection is closed).
    async fn discard(&self, answer: Answer) {
        if let Answer::Remote(exchange) = answer {
            self.upstream.finish(exchange).await;
        }
    }
}

/// Reads a stream until its first real content (or its end), keeping what came before, in the
/// app's format. A failure on the way (a cut, an error event, a timeout) is returned instead.
async fn hold_back(
    answer: &mut Answer,
    plan: &ResponsePlan,
    limits: ReadLimits,
    transcript_limit: usize,
) -> Result<Held, StreamFailure> {
    let identity = plan.is_identity();
    // Identity: the tap hands the upstream's events on as they are, and a probe reads them to
    // see when content starts (unless the tap, assembling the answer, saw it begin).
    // Translated: the translator does both.
    let (mut probe, mut reader) = if identity {
        (
            Some(StreamTranslator::probe(plan)),
            BodyReader::as_is(plan, true),
        )
    } else {
        (None, BodyReader::translate(StreamTranslator::new(plan)))
    };
    reader.assemble(transcript_limit);
    let mut preamble = Vec::new();
    loop {
        let chunk = answer.next(limits).await.map_err(StreamFailure::of_read)?;
        let done = chunk.is_none();
        let bytes = chunk.unwrap_or_default();
        // The probe reads after the tap (when it reads at all): it keeps the read.
        let kept = probe.is_some().then(|| bytes.clone());
        preamble.extend_from_slice(&reader.pass(bytes, done)?);
        let started = if let Some((probe, bytes)) = probe.as_mut().zip(kept) {
            // The tap read plain text near the stream's start as it passed: the content has
            // begun, and the probe need not read those events again.
            let began = !done && matches!(&reader, BodyReader::Tap(tap) if tap.content_began());
            began || probed(probe, &bytes, done)?
        } else {
            match &reader {
                BodyReader::Translate { translator, .. } => translator.content_started(),
                _ => true,
            }
        };
        if done || started {
            // The rest is pumped as it comes (a translator that saw the end ignores the rest).
            return Ok(Held {
                reader,
                preamble,
                ended: done,
            });
        }
    }
}

/// Feeds a read to a probe (at the body's end, ends it too): whether content has started.
fn probed(probe: &mut StreamTranslator, bytes: &[u8], done: bool) -> Result<bool, StreamFailure> {
    let mut nothing = Vec::new();
    probe.feed(bytes, &mut nothing)?;
    if done {
        probe.finish(&mut nothing)?;
    }
    Ok(probe.content_started())
}

/// Notes on the record what this try is for: `x-respan-*` headers and metric labels.
fn note_served(record: &mut RequestRecord, route: &Route<'_>, upstream_model: &str) {
    let served = &mut record.served;
    served.model_label = route.metric_label.into();
    served.provider = route.provider.name.as_str().into();
    served.provider_type = route.provider.kind.as_str();
    served.upstream_model = upstream_model.into();
    served.attempts += 1;
    record.price_override = route.pricing.map(Into::into);
    record
        .upstream_started
        .get_or_insert_with(std::time::Instant::now);
}

/// The message of an error answer (OpenAI's, Anthropic's and Gemini's all have
/// `error.message`), kept short for the record.
fn error_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Inner {
        Object { message: String },
        Text(String),
    }
    let message = match serde_json::from_slice::<Wrapper>(body).ok()?.error {
        Inner::Object { message } | Inner::Text(message) => message,
    };
    Some(message.chars().take(500).collect())
}

/// An attempt skipped because its circuit is open: on the trace, with no call made.
fn skipped_attempt(model: &str, route: &Route<'_>) -> AttemptRecord {
    AttemptRecord {
        model: model.into(),
        provider: route.provider.name.as_str().into(),
        label: route.metric_label.into(),
        outcome: Outcome::Skipped,
        status_code: None,
        error: Some("skipped: the circuit is open".into()),
        latency: Duration::ZERO,
    }
}

/// How an attempt ended, from its answer or why there was none.
fn outcome_of(result: &Result<Answer, ExchangeError>) -> Outcome {
    match result {
        Ok(answer) => Outcome::of_status(answer.status()),
        Err(e) => e.outcome(),
    }
}

fn exchange_error(e: ExchangeError, snapshot: &Snapshot) -> GatewayError {
    match e {
        ExchangeError::Timeout => {
            GatewayError::UpstreamTimeout(snapshot.config.server.upstream_timeout)
        }
        other => GatewayError::NoUpstream(other.to_string()),
    }
}
