//! What reading the benchmark's streams costs, per stream and per event, for each consumer
//! that reads them today: the translator (to the app's format), the cache's gatherer (the
//! whole answer from the pieces the app got) and the trace's transcript (the assistant
//! message read back from the capture). The inner loop of the "read each stream once" work:
//! `cargo bench --bench streams` answers in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../bench/streams.rs"]
mod streams;

use bytes::Bytes;
use respan_sidecar::endpoint::Ingress;
use respan_sidecar::telemetry::capture::Format;
use respan_sidecar::translate::{collect, transcript, ResponsePlan, StreamTranslator, Wire};
use std::hint::black_box;
use std::time::Instant;

/// Runs `f` `n` times; prints the time per stream and per event.
fn time(what: &str, events: usize, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    let per = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "{what:<48} {:>8.2} us/stream {:>7.0} ns/event",
        per / 1000.0,
        per / events as f64
    );
}

/// The plan for an answer in `from`'s format to an app on `to`.
fn plan(from: Wire, to: Ingress) -> ResponsePlan {
    let mut plan = ResponsePlan::identity(to, "bench");
    plan.from = from;
    plan.include_usage = true;
    plan
}

/// What the app gets when `events` are translated by `plan`, as the relay hands it on.
fn translated(plan: &ResponsePlan, events: &[Bytes]) -> Vec<Bytes> {
    let mut t = StreamTranslator::new(plan);
    let mut pieces = Vec::new();
    for e in events {
        let mut out = Vec::new();
        t.feed(e, &mut out).unwrap();
        pieces.push(Bytes::from(out));
    }
    let mut out = Vec::new();
    t.finish(&mut out).unwrap();
    pieces.push(Bytes::from(out));
    pieces
}

fn translate(what: &str, plan: &ResponsePlan, events: &[Bytes], n: u32) {
    time(what, events.len(), n, || {
        let mut t = StreamTranslator::new(plan);
        let mut out = Vec::with_capacity(512);
        for e in events {
            out.clear();
            t.feed(black_box(e), &mut out).unwrap();
        }
        t.finish(&mut out).unwrap();
        black_box(t.usage());
    });
}

fn main() {
    let n = 20_000;
    let openai = streams::openai_events();
    let anthropic = streams::anthropic_events();
    let gemini = streams::gemini_events();
    let to_chat = plan(Wire::Anthropic, Ingress::OpenAi);
    let to_responses = plan(Wire::Anthropic, Ingress::Responses);

    println!("translation (decode, translate, encode, usage):");
    translate("  anthropic -> chat", &to_chat, &anthropic, n);
    translate("  anthropic -> responses", &to_responses, &anthropic, n);
    translate(
        "  gemini -> chat",
        &plan(Wire::Gemini, Ingress::OpenAi),
        &gemini,
        n,
    );
    translate(
        "  chat -> anthropic",
        &plan(Wire::OpenAi, Ingress::Anthropic),
        &openai,
        n,
    );

    println!("the cache's whole answer, gathered from the app's stream:");
    let chat_pieces = translated(&to_chat, &anthropic);
    let responses_pieces = translated(&to_responses, &anthropic);
    for (what, ingress, pieces) in [
        ("  chat (passthrough)", Ingress::OpenAi, &openai),
        ("  chat (from anthropic)", Ingress::OpenAi, &chat_pieces),
        (
            "  responses (from anthropic)",
            Ingress::Responses,
            &responses_pieces,
        ),
        ("  anthropic (passthrough)", Ingress::Anthropic, &anthropic),
    ] {
        time(what, pieces.len(), n, || {
            black_box(collect::whole(ingress, black_box(pieces), None));
        });
    }

    println!("the trace's output, read back from the capture:");
    let joined = |pieces: &[Bytes]| pieces.concat();
    for (what, format, bytes, events) in [
        ("  chat", Format::OpenAi, joined(&openai), openai.len()),
        (
            "  anthropic",
            Format::Anthropic,
            joined(&anthropic),
            anthropic.len(),
        ),
        ("  gemini", Format::Gemini, joined(&gemini), gemini.len()),
        (
            "  responses",
            Format::Responses,
            joined(&responses_pieces),
            responses_pieces.len(),
        ),
    ] {
        time(what, events, n, || {
            black_box(transcript::output(format, true, black_box(&bytes)));
        });
    }
}
