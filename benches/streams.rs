//! What reading the benchmark's streams costs, per stream and per event, for each consumer
//! that reads them: the translator (to the app's format, and the trace's answer assembled
//! from its decoded chunks as they pass), the usage tap of a stream relayed as it is (and
//! the answer assembled from its events; with the probe of a stream held back until its
//! content), a whole answer's usage and text (read apart, and once), the cache's gatherer
//! (the whole answer from the pieces the app got), the transcript read back from a capture
//! (whole answers, cache hits), each exporter's work for one trace, and the request's
//! translation (the benchmark's, and a coding agent's turn with its tools). The inner loop
//! of the "read each stream once" work: `cargo bench --bench streams` answers in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../bench/streams.rs"]
mod streams;

use bytes::Bytes;
use respan_sidecar::body::JsonBody;
use respan_sidecar::telemetry::capture::Transcriber;
use respan_sidecar::telemetry::export::{otlp, respan};
use respan_sidecar::telemetry::record::{
    AttemptRecord, InputText, Outcome, RequestRecord, TokenUsage,
};
use respan_sidecar::telemetry::trace::Trace;
use respan_sidecar::translate::usage::{self, UsageTap};
use respan_sidecar::translate::{collect, transcript, ResponsePlan, StreamTranslator};
use respan_sidecar::wire::Wire;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// Runs `f` `n` times; prints the time per stream and per event.
fn time(what: &str, events: usize, n: u32, f: impl FnMut()) {
    time_each(what, events, n, 1, f);
}

/// As [`time`], for a call that handles `size` streams at once (an exporter's batch): the
/// figures are per stream.
fn time_each(what: &str, events: usize, n: u32, size: u32, mut f: impl FnMut()) {
    if !selected(what) {
        return;
    }
    let calls = (n / size).max(1);
    for _ in 0..calls / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    let per = start.elapsed().as_nanos() as f64 / f64::from(calls * size);
    println!(
        "{what:<48} {:>8.2} us/stream {:>7.0} ns/event",
        per / 1000.0,
        per / events as f64
    );
}

/// Whether a row is to be timed: every row, or those whose name holds the first argument
/// (`cargo bench --bench streams -- responses`), for a quick look at one reader.
fn selected(what: &str) -> bool {
    static FILTER: std::sync::LazyLock<Option<String>> =
        std::sync::LazyLock::new(|| std::env::args().skip(1).find(|a| !a.starts_with('-')));
    FILTER.as_deref().is_none_or(|f| what.contains(f))
}

/// The plan for an answer in `from`'s format to an app on `to`.
fn plan(from: Wire, to: Wire) -> ResponsePlan {
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

/// Translates `events`; with `assemble`, the trace's answer is assembled from the decoded
/// chunks as they pass (what the relay does when the request's text is kept).
fn translate(what: &str, plan: &ResponsePlan, events: &[Bytes], assemble: bool, n: u32) {
    time(what, events.len(), n, || {
        let mut t = StreamTranslator::new(plan);
        if assemble {
            t.assemble(256 * 1024);
        }
        let mut out = Vec::with_capacity(512);
        for e in events {
            out.clear();
            t.feed(black_box(e), &mut out).unwrap();
        }
        t.finish(&mut out).unwrap();
        black_box(t.tokens());
        black_box(t.transcript());
    });
}

/// Relays `events` as they are, through the usage tap (`drop_usage`: dropping the usage
/// chunk the sidecar asked for); with `assemble`, the trace's answer is assembled from each
/// event as it passes.
fn tap(what: &str, (wire, drop_usage): (Wire, bool), events: &[Bytes], assemble: bool, n: u32) {
    time(what, events.len(), n, || {
        let mut tap = UsageTap::new(wire, drop_usage);
        if assemble {
            tap.assemble(256 * 1024);
        }
        for e in events {
            black_box(tap.feed(black_box(e.clone())));
        }
        black_box(tap.finish());
        black_box(tap.usage());
        black_box(tap.transcript());
    });
}

/// What the relay does with a stream relayed as it is that comes in one read (a fast
/// upstream's): reads it through the usage tap with the trace's answer assembled, and
/// through the hold-back's probe unless the tap saw its content begin; and the probe alone.
fn held(what: &str, wire: Wire, events: &[Bytes], n: u32) {
    let whole = Bytes::from(events.concat());
    let plan = ResponsePlan::identity(wire, "bench");
    let probe = || {
        let mut probe = StreamTranslator::probe(&plan);
        probe.feed(black_box(&whole), &mut Vec::new()).unwrap();
        assert!(probe.content_started());
    };
    time(
        &format!("  {what}: the probe alone"),
        events.len(),
        n,
        &probe,
    );
    time(&format!("  {what} + answer"), events.len(), n, || {
        let mut tap = UsageTap::new(wire, false);
        tap.assemble(256 * 1024);
        black_box(tap.feed(whole.clone()));
        if !tap.content_began() {
            probe();
        }
        black_box(tap.finish());
        black_box(tap.usage());
        black_box(tap.transcript());
    });
}

fn main() {
    let n = 20_000;
    let openai = streams::openai_events();
    let openai_usage = streams::openai_events_with_usage();
    let anthropic = streams::anthropic_events();
    let gemini = streams::gemini_events();
    let to_chat = plan(Wire::Anthropic, Wire::OpenAi);
    let to_responses = plan(Wire::Anthropic, Wire::Responses);

    println!("translation (decode, translate, encode, usage; + the trace's answer assembled):");
    let from_gemini = plan(Wire::Gemini, Wire::OpenAi);
    let to_anthropic = plan(Wire::OpenAi, Wire::Anthropic);
    for (what, plan, events) in [
        ("anthropic -> chat", &to_chat, &anthropic),
        ("anthropic -> responses", &to_responses, &anthropic),
        ("gemini -> chat", &from_gemini, &gemini),
        ("chat -> anthropic", &to_anthropic, &openai),
    ] {
        translate(&format!("  {what}"), plan, events, false, n);
        translate(&format!("  {what} + answer"), plan, events, true, n);
    }

    println!("relayed as it is (usage tap; + the trace's answer assembled):");
    let chat_pieces = translated(&to_chat, &anthropic);
    let responses_pieces = translated(&to_responses, &anthropic);
    // The usage chunk the sidecar asked for is dropped, as for an app that did not ask.
    for (what, wire, events) in [
        ("chat", (Wire::OpenAi, false), &openai),
        ("chat, usage asked for", (Wire::OpenAi, true), &openai_usage),
        ("anthropic", (Wire::Anthropic, false), &anthropic),
        ("gemini", (Wire::Gemini, false), &gemini),
        ("responses", (Wire::Responses, false), &responses_pieces),
    ] {
        tap(&format!("  {what}"), wire, events, false, n);
        tap(&format!("  {what} + answer"), wire, events, true, n);
    }
    println!("held back until content, the whole stream in one read (probe and usage tap):");
    for (what, wire, events) in [
        ("chat", Wire::OpenAi, &openai),
        ("anthropic", Wire::Anthropic, &anthropic),
    ] {
        held(what, wire, events, n);
    }

    println!("a whole answer's usage and text (read apart, as the trace read it back; once):");
    for (what, wire, body) in [
        ("chat", Wire::OpenAi, streams::OPENAI_JSON),
        ("anthropic", Wire::Anthropic, streams::ANTHROPIC_JSON),
    ] {
        time(&format!("  {what}, apart"), 1, n, || {
            black_box(usage::of_body(wire, black_box(body)));
            black_box(transcript::output(Some(wire), false, black_box(body)));
        });
        time(&format!("  {what}, once"), 1, n, || {
            black_box(transcript::answer(wire, black_box(body)));
        });
    }

    println!("the cache's whole answer, gathered from the app's stream:");
    for (what, ingress, pieces) in [
        ("  chat (passthrough)", Wire::OpenAi, &openai),
        ("  chat (from anthropic)", Wire::OpenAi, &chat_pieces),
        (
            "  responses (from anthropic)",
            Wire::Responses,
            &responses_pieces,
        ),
        ("  anthropic (passthrough)", Wire::Anthropic, &anthropic),
    ] {
        time(what, pieces.len(), n, || {
            black_box(collect::whole(ingress, black_box(pieces), None));
        });
    }

    println!("the trace's output, read back from a capture (whole answers, cache hits):");
    let joined = |pieces: &[Bytes]| pieces.concat();
    for (what, format, bytes, events) in [
        ("  chat", Some(Wire::OpenAi), joined(&openai), openai.len()),
        (
            "  anthropic",
            Some(Wire::Anthropic),
            joined(&anthropic),
            anthropic.len(),
        ),
        (
            "  gemini",
            Some(Wire::Gemini),
            joined(&gemini),
            gemini.len(),
        ),
        (
            "  responses",
            Some(Wire::Responses),
            joined(&responses_pieces),
            responses_pieces.len(),
        ),
    ] {
        time(what, events, n, || {
            black_box(transcript::output(format, true, black_box(&bytes)));
        });
    }

    exporters(&openai, n / 4);
    requests(n);
}

/// The benchmark's streamed requests for a Claude model, in the chat and the Responses
/// form (as `bench/run.sh` sends them), translated into the Anthropic request: each time
/// from the body as the request path parsed it (one level deep).
fn requests(n: u32) {
    use respan_sidecar::translate::{request, Target};
    let bodies: [(&str, Wire, &[u8]); 2] = [
        (
            "  chat -> anthropic",
            Wire::OpenAi,
            br#"{"model":"claude-bench","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about foxes."}],"stream":true}"#,
        ),
        (
            "  responses -> anthropic",
            Wire::Responses,
            br#"{"model":"claude-bench","max_output_tokens":4096,"instructions":"You are a helpful assistant.","input":[{"role":"user","content":"Write one sentence about foxes."}],"stream":true}"#,
        ),
    ];
    println!("a request translated (the benchmark's, for a Claude model):");
    let target = Target {
        max_output_tokens: None,
        reasons: false,
        web_search: true,
    };
    for (what, ingress, body) in bodies {
        let parsed = JsonBody::parse(body).expect("the bench's body is JSON");
        let translate = || request(ingress, Wire::Anthropic, &parsed, "claude-bench", target);
        // Timed only once it translates: a failure would look like a gain.
        assert!(translate().is_ok(), "{what}");
        time(what, 1, n, || {
            black_box(translate().is_ok());
        });
    }
    println!("a coding agent's turn translated ({CALLS} calls so far, {TOOLS} tools with their schemas):");
    let agent_turns = [
        ("  chat -> anthropic", Wire::OpenAi, Wire::Anthropic),
        ("  responses -> anthropic", Wire::Responses, Wire::Anthropic),
        ("  anthropic -> chat", Wire::Anthropic, Wire::OpenAi),
        ("  chat -> gemini", Wire::OpenAi, Wire::Gemini),
    ];
    for (what, ingress, to) in agent_turns {
        let body = agent_turn(ingress);
        let parsed = JsonBody::parse(&body).expect("the agent's body is JSON");
        let translate = || request(ingress, to, &parsed, "agent-model", target);
        assert!(translate().is_ok(), "{what}");
        time(what, 1, n / 20, || {
            black_box(translate().is_ok());
        });
    }
    // What every model call's body goes through first, before its bound and shape check
    // (`dispatch::shape`, a scan of the text this parse validates) and any translation.
    let body = agent_turn(Wire::OpenAi);
    time("  parsed into its fields (chat)", 1, n / 20, || {
        black_box(JsonBody::parse(&body).is_ok());
    });
}

/// Tools in [`agent_turn`]: about what a coding agent offers (Claude Code and Codex send a
/// few dozen, with long descriptions and schemas).
const TOOLS: usize = 24;

/// Tool calls in [`agent_turn`]'s conversation so far.
const CALLS: usize = 20;

/// A coding agent's request in `ingress`'s form: [`CALLS`] calls of a tool and their results
/// (about 40 KB of file text), and [`TOOLS`] function tools, each with a schema of six
/// described properties (about 45 KB).
fn agent_turn(ingress: Wire) -> Vec<u8> {
    use serde_json::{json, Value};
    let prose = "Use this to inspect or change the files of the working tree. ".repeat(4);
    let schemas = (0..TOOLS).map(|i| {
        let properties: serde_json::Map<String, Value> = (0..6)
            .map(|p| {
                let kind = ["string", "integer", "boolean"][p % 3];
                (
                    format!("arg_{p}"),
                    json!({"type": kind, "description": prose}),
                )
            })
            .collect();
        let schema = json!({
            "type": "object",
            "properties": properties,
            "required": ["arg_0", "arg_1"],
            "additionalProperties": false,
        });
        (format!("tool_{i}"), schema)
    });
    let (system, user) = ("You are a coding agent.", "Fix the failing test.");
    // Each call's result is a file's worth of text, with the quotes and line ends it has.
    let result = "fn main() {\n    println!(\"hello\");\n}\n".repeat(48);
    let calls = (0..CALLS).map(|i| (format!("call_{i}"), json!({"path": format!("src/f{i}.rs")})));
    let mut conversation = Vec::new();
    for (id, input) in calls {
        let arguments = input.to_string();
        conversation.extend(match ingress {
            Wire::Anthropic => vec![
                json!({"role": "assistant", "content": [{"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": id, "name": "tool_0", "input": input}]}),
                json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": result}]}),
            ],
            Wire::Responses => vec![
                json!({"type": "function_call", "call_id": id, "name": "tool_0",
                    "arguments": arguments}),
                json!({"type": "function_call_output", "call_id": id, "output": result}),
            ],
            Wire::OpenAi | Wire::Gemini => vec![
                json!({"role": "assistant", "content": "Reading.", "tool_calls": [{"id": id,
                    "type": "function", "function": {"name": "tool_0", "arguments": arguments}}]}),
                json!({"role": "tool", "tool_call_id": id, "content": result}),
            ],
        });
    }
    let turns = |opening: Vec<Value>| [opening, conversation.clone()].concat();
    let body = match ingress {
        Wire::Anthropic => json!({
            "model": "m", "max_tokens": 4096, "stream": true, "system": system,
            "messages": turns(vec![json!({"role": "user", "content": user})]),
            "tools": schemas.map(|(name, schema)| json!({
                "name": name, "description": prose, "input_schema": schema,
            })).collect::<Vec<_>>(),
        }),
        Wire::Responses => json!({
            "model": "m", "stream": true, "instructions": system,
            "input": turns(vec![json!({"role": "user", "content": user})]),
            "tools": schemas.map(|(name, schema)| json!({
                "type": "function", "name": name, "description": prose, "parameters": schema,
            })).collect::<Vec<_>>(),
        }),
        Wire::OpenAi | Wire::Gemini => json!({
            "model": "m", "stream": true,
            "messages": turns(vec![
                json!({"role": "system", "content": system}),
                json!({"role": "user", "content": user}),
            ]),
            "tools": schemas.map(|(name, schema)| json!({
                "type": "function",
                "function": {"name": name, "description": prose, "parameters": schema},
            })).collect::<Vec<_>>(),
        }),
    };
    serde_json::to_vec(&body).expect("a Value writes")
}

/// The bench's chat stream as a finished request's record, its answer either assembled on
/// the way (`assembled`) or captured to be read back; its conversation copied from `input`,
/// as the request path copies it out of the body it parsed.
fn record(events: &[Bytes], assembled: bool, input: &InputText) -> RequestRecord {
    let mut r = RequestRecord::new();
    r.endpoint = "chat.completions";
    r.requested_model = Some("gpt-4o-mini".into());
    r.served.upstream_model = "gpt-4o-mini".into();
    r.served.provider = "mock".into();
    r.served.provider_type = "openai";
    r.status = 200;
    r.stream = true;
    r.usage = Some(TokenUsage {
        prompt_tokens: 12,
        completion_tokens: 10,
        total_tokens: 22,
        ..TokenUsage::default()
    });
    r.attempts.push(AttemptRecord {
        model: "gpt-4o-mini".into(),
        provider: "mock".into(),
        label: "gpt-4o-mini".into(),
        outcome: Outcome::Ok,
        status_code: Some(200),
        error: None,
        latency: Duration::from_micros(300),
    });
    r.input = Some(input.clone());
    r.format = Some(Wire::OpenAi);
    r.output.start(Some(Wire::OpenAi), true, 256 * 1024);
    // The relay's tap reads the stream either way (for its usage): the two records differ
    // only by the assembling.
    let mut tap = UsageTap::new(Wire::OpenAi, false);
    if assembled {
        tap.assemble(256 * 1024);
        r.output.assembling();
    }
    for e in events {
        r.output.push(&tap.feed(e.clone()));
    }
    if let Some(answer) = tap.transcript() {
        r.output.assembled(answer);
    }
    r
}

/// Each exporter's work for one trace of the chat stream (a fresh trace each time: its text,
/// ids and times are made once per trace, then shared; the record's JSON is written each
/// time), with the answer assembled on the request path or read back.
fn exporters(events: &[Bytes], n: u32) {
    // As many traces as an exporter sends at once at most.
    const BATCH: u32 = 256;
    let t = Transcriber {
        input: transcript::input,
        output: transcript::output,
    };
    // The request path parses the body whatever the exporters do: the record's part is the
    // conversation's copy.
    let body = Bytes::from_static(
        br#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about foxes."}],"stream":true,"customer_identifier":"bench"}"#,
    );
    let parsed = JsonBody::parse(&body).expect("the bench's body is JSON");
    let input = transcript::conversation(Wire::OpenAi, &parsed, &body)
        .expect("the bench's body has messages");
    println!("one trace of the chat stream, per exporter (the record's making included):");
    for (how, assembled) in [("read back", false), ("assembled", true)] {
        let trace = || {
            Arc::new(Trace::finish(
                "req".into(),
                record(events, assembled, &input),
            ))
        };
        time(
            &format!("  make the record ({how})"),
            events.len(),
            n,
            || {
                black_box(trace());
            },
        );
        // The exporter writes each record into its batch's buffer, kept from batch to batch.
        let mut line = Vec::new();
        time(&format!("  jsonl ({how})"), events.len(), n, || {
            line.clear();
            trace().write_json(&t, &mut line);
            black_box(line.len());
        });
        time(&format!("  otlp ({how})"), events.len(), n, || {
            black_box(otlp::protobuf(&[trace()], &t));
        });
        let batch = BATCH as usize;
        time_each(
            &format!("  otlp, {batch} a batch ({how})"),
            events.len(),
            n,
            BATCH,
            || {
                let traces: Vec<Arc<Trace>> = (0..batch).map(|_| trace()).collect();
                black_box(otlp::protobuf(&traces, &t));
            },
        );
        time(
            &format!("  otlp via prost's types ({how})"),
            events.len(),
            n,
            || {
                let batch = [trace()];
                black_box(prost::Message::encode_to_vec(&otlp::request(&batch, &t)));
            },
        );
        time(&format!("  respan ({how})"), events.len(), n, || {
            let trace = trace();
            black_box(serde_json::to_vec(&respan::log(&trace, &t)).unwrap());
        });
    }
}
