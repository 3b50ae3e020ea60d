//! Property tests over what the sidecar parses from outside: the config, request bodies and
//! their Respan parameters, each request translator, whole answers and streams (split at any
//! byte), the SSE framer, and the cache's collect and replay. No input may panic; where a
//! round trip holds, it is checked.
//!
//! Strategies are seeded from the test fixtures (mutated and cut at random). `.ci/run` runs
//! the default number of cases (256 a property); a longer run is
//! `PROPTEST_CASES=20000 cargo test --release --test fuzz`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use respan_sidecar::body::{nesting_within, JsonBody};
use respan_sidecar::params;
use respan_sidecar::translate::anthropic::request::JsonMode;
use respan_sidecar::translate::responses::ToolNames;
use respan_sidecar::translate::sse::SseParser;
use respan_sidecar::translate::{
    self, collect, replay, transcript, ResponsePlan, StreamTranslator, Target,
};
use respan_sidecar::wire::Wire;
use serde_json::Value;
use std::path::Path;

fn fixture(provider: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(provider)
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The fixtures of every provider among `names`, with the wire format each is in.
fn fixtures(names: &[&str]) -> Vec<(Wire, String)> {
    let mut out = Vec::new();
    for (wire, dir) in [
        (Wire::OpenAi, "openai"),
        (Wire::Anthropic, "anthropic"),
        (Wire::Gemini, "gemini"),
    ] {
        for name in names {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(dir)
                .join(name);
            if path.exists() {
                out.push((wire, fixture(dir, name)));
            }
        }
    }
    out
}

/// Every stream fixture.
fn streams() -> Vec<(Wire, String)> {
    fixtures(&[
        "stream_text.sse",
        "stream_tool.sse",
        "stream_web_search.sse",
    ])
}

/// Every whole-answer fixture.
fn answers() -> Vec<(Wire, String)> {
    fixtures(&[
        "text.json",
        "tool_call.json",
        "json_mode.json",
        "web_search.json",
    ])
}

fn plan(from: Wire, to: Wire) -> ResponsePlan {
    ResponsePlan {
        from,
        to,
        json_mode: JsonMode::Off,
        include_usage: true,
        usage_for_gateway: false,
        model: "fuzz-model".into(),
        tool_names: ToolNames::default(),
        web_search: None,
    }
}

/// A stream translated with its bytes cut at `cuts`; the events out, and whether it failed.
fn translate_cut(plan: &ResponsePlan, stream: &[u8], cuts: &[usize]) -> (Vec<u8>, bool) {
    let mut t = StreamTranslator::new(plan);
    let mut out = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    points.push(stream.len());
    for point in points {
        if t.feed(&stream[at..point], &mut out).is_err() {
            return (out, true);
        }
        at = point;
    }
    let failed = t.finish(&mut out).is_err();
    (out, failed)
}

/// Events as JSON with what is made afresh per stream (ids, times) blanked.
fn normalized(sse: &[u8]) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    let mut parser = SseParser::default();
    let mut on = |e: &translate::sse::Event| {
        let data = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data.clone()));
        events.push((e.name.clone(), blank(data)));
    };
    parser.feed(sse, &mut on).unwrap();
    parser.finish(&mut on);
    events
}

fn blank(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    if matches!(
                        k.as_str(),
                        "id" | "item_id" | "created" | "created_at" | "call_id"
                    ) {
                        *x = Value::Null;
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// The ingresses an answer in `wire` can be translated to.
fn targets(wire: Wire) -> Vec<Wire> {
    [Wire::OpenAi, Wire::Anthropic, Wire::Responses]
        .into_iter()
        .filter(|i| *i != wire)
        .collect()
}

/// Bytes of `text` with a few changed, inserted or removed at random.
fn mutated(text: String) -> impl Strategy<Value = Vec<u8>> {
    let len = text.len().max(1);
    proptest::collection::vec((0..len, any::<u8>(), 0u8..3), 0..8).prop_map(move |edits| {
        let mut bytes = text.clone().into_bytes();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len());
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        bytes
    })
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z_ ]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("system"),
            Just("tool"),
            Just("text"),
            Just("function"),
            Just("tool_use"),
            Just("web_search")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("role".to_string()),
                    Just("content".to_string()),
                    Just("type".to_string()),
                    Just("text".to_string()),
                    Just("tool_calls".to_string()),
                    Just("name".to_string()),
                    Just("arguments".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request body of an ingress's shape, with parts of any shape.
fn request_body() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(json_value(), 0..4),
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
    )
        .prop_map(|(messages, tools, extra, respan)| {
            let mut body = serde_json::json!({"model": "m", "max_tokens": 50, "messages": messages,
                "input": messages.clone(), "contents": messages});
            if let Some(tools) = tools {
                body["tools"] = tools;
            }
            if let Some(extra) = extra {
                body["tool_choice"] = extra;
            }
            if let Some(respan) = respan {
                body["respan_params"] = respan;
            }
            body
        })
}

/// Whether a whole answer read once (when it is) gives what reading its text and its usage
/// apart gives.
fn read_once_as_apart(wire: Wire, bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Some((output, usage)) = transcript::answer(wire, bytes) {
        let apart = transcript::output(Some(wire), false, bytes);
        prop_assert_eq!(usage, translate::usage::of_body(wire, bytes));
        prop_assert_eq!(
            output.message.as_ref().map(|m| m.get()),
            apart.message.as_ref().map(|m| m.get())
        );
        prop_assert_eq!(output.finish_reasons, apart.finish_reasons);
        prop_assert_eq!(output.truncated, apart.truncated);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// A stream split at any byte boundaries translates to the same events as whole.
    #[test]
    fn streams_translate_the_same_however_they_are_cut(
        which in 0usize..64,
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let all = streams();
        let (wire, stream) = &all[which % all.len()];
        for to in targets(*wire) {
            let plan = plan(*wire, to);
            let (whole, whole_failed) = translate_cut(&plan, stream.as_bytes(), &[]);
            let (cut, cut_failed) = translate_cut(&plan, stream.as_bytes(), &cuts);
            prop_assert_eq!(whole_failed, cut_failed);
            prop_assert_eq!(normalized(&whole), normalized(&cut));
        }
    }

    /// Streams with bytes changed never panic a translator, cut anywhere.
    #[test]
    fn damaged_streams_never_panic(
        (which, bytes) in (0usize..64).prop_flat_map(|i| {
            let all = streams();
            let (_, s) = all[i % all.len()].clone();
            (Just(i), mutated(s))
        }),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let all = streams();
        let (wire, _) = all[which % all.len()];
        for to in targets(wire) {
            let _ = translate_cut(&plan(wire, to), &bytes, &cuts);
        }
    }

    /// Whole answers with bytes changed translate or fail cleanly; read once, for the
    /// trace's text and the usage together, they give what reading each apart gives.
    #[test]
    fn damaged_answers_never_panic(
        (which, bytes) in (0usize..64).prop_flat_map(|i| {
            let all = answers();
            let (_, s) = all[i % all.len()].clone();
            (Just(i), mutated(s))
        }),
    ) {
        let all = answers();
        let (wire, _) = all[which % all.len()];
        for to in targets(wire) {
            let _ = plan(wire, to).translate_body(&bytes);
        }
        read_once_as_apart(wire, &bytes)?;
    }

    /// An answer read once gives what reading apart gives, for answers still whole JSON
    /// with one field (of the answer, of its usage or of its first choice or block) of any
    /// shape, or wrapped in an array.
    #[test]
    fn a_reshaped_answer_read_once_is_read_as_its_two_readers_read_it(
        which in 0usize..64,
        field in prop_oneof![
            Just("choices"), Just("usage"), Just("type"), Just("content"), Just("stop_reason"),
            Just("message"), Just("finish_reason"), Just("input_tokens"), Just("prompt_tokens"),
        ],
        place in prop_oneof![Just(""), Just("/usage"), Just("/choices/0"), Just("/content/0")],
        value in json_value(),
        wrap in any::<bool>(),
    ) {
        let all = answers();
        let (wire, text) = &all[which % all.len()];
        let mut answer: Value = serde_json::from_str(text).unwrap();
        // The answer itself where the place is not an object of this answer.
        let place = if answer.pointer(place).is_some_and(Value::is_object) { place } else { "" };
        if let Some(object) = answer.pointer_mut(place).and_then(Value::as_object_mut) {
            object.insert(field.to_string(), value);
        }
        let answer = if wrap { Value::Array(vec![answer]) } else { answer };
        let bytes = serde_json::to_vec(&answer).unwrap();
        read_once_as_apart(*wire, &bytes)?;
    }

    /// The SSE framer takes any bytes in any pieces; well-formed events come back as sent.
    #[test]
    fn the_sse_framer_reads_what_was_written(
        datas in proptest::collection::vec("[^\r\n]{0,40}", 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        noise in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut text = Vec::new();
        for d in &datas {
            translate::sse::write_data(&mut text, d.as_bytes());
        }
        let mut got = Vec::new();
        let mut parser = SseParser::default();
        let mut at = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
        points.sort_unstable();
        points.push(text.len());
        for p in points {
            parser.feed(&text[at..p], &mut |e| got.push(e.data.clone())).unwrap();
            at = p;
        }
        parser.finish(&mut |e| got.push(e.data.clone()));
        prop_assert_eq!(got, datas);
        let mut noisy = SseParser::default();
        let _ = noisy.feed(&noise, &mut |_| {});
        noisy.finish(&mut |_| {});
    }

    /// Any body: parsed, its Respan parameters taken out, its nesting measured, and
    /// translated for every provider, without a panic.
    #[test]
    fn request_bodies_never_panic(body in request_body(), depth in 1usize..80) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let _ = nesting_within(&bytes, depth);
        for ingress in [Wire::OpenAi, Wire::Anthropic, Wire::Responses, Wire::Gemini] {
            let Ok(mut parsed) = JsonBody::parse(&bytes) else { continue };
            if params::extract(&mut parsed, [("X-Data-Respan-Params", None), ("X-Data-Keywordsai-Params", None)], ingress).is_err() {
                continue;
            }
            for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
                let target = Target { max_output_tokens: Some(100), reasons: false, web_search: true };
                let _ = translate::request(ingress, wire, &parsed, "m", target);
            }
        }
    }

    /// Raw bytes as a body, a header parameter or a nesting scan never panic.
    #[test]
    fn raw_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = nesting_within(&bytes, 8);
        if let Ok(mut body) = JsonBody::parse(&bytes) {
            let _ = params::extract(&mut body, [("X-Data-Respan-Params", Some(&bytes)), ("X-Data-Keywordsai-Params", None)], Wire::OpenAi);
        }
    }

    /// The config parser answers every text with a config or its problems.
    #[test]
    fn the_config_parser_never_panics(text in mutated(fixture_conf())) {
        if let Ok(text) = String::from_utf8(text) {
            let _ = respan_sidecar::config::parse(&text, Path::new("."), &|_| None);
        }
    }

    /// The cache keeps a stream however it came in pieces, and tells it again as a stream
    /// that gathers back to the same answer.
    #[test]
    fn the_cache_collects_and_replays_any_cut(
        which in 0usize..64,
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let all = streams();
        let (wire, stream) = &all[which % all.len()];
        for to in targets(*wire) {
            let (told, failed) = translate_cut(&plan(*wire, to), stream.as_bytes(), &[]);
            if failed {
                continue;
            }
            let pieces = |cuts: &[usize]| {
                let mut points: Vec<usize> = cuts.iter().map(|c| c % (told.len() + 1)).collect();
                points.sort_unstable();
                points.push(told.len());
                let mut at = 0;
                let mut out = Vec::new();
                for p in points {
                    out.push(Bytes::copy_from_slice(&told[at..p]));
                    at = p;
                }
                out
            };
            let whole = collect::whole(to, &pieces(&[]), None);
            let cut = collect::whole(to, &pieces(&cuts), None);
            prop_assert_eq!(&whole, &cut);
            let Some(whole) = whole else { continue };
            let again = replay::stream(to, &whole, true).unwrap();
            let gathered = collect::whole(to, &[Bytes::from(again)], None).unwrap();
            let a: Value = serde_json::from_slice(&whole).unwrap();
            let b: Value = serde_json::from_slice(&gathered).unwrap();
            prop_assert_eq!(blank(a), blank(b));
        }
    }
}

fn fixture_conf() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/example-full.yaml");
    std::fs::read_to_string(path).unwrap()
}

/// The properties above are not vacuous: every fixture stream translates without failing,
/// and every translated stream gathers into a whole answer.
#[test]
fn every_fixture_translates_and_gathers() {
    let mut gathered = 0;
    for (wire, stream) in streams() {
        for to in targets(wire) {
            let (told, failed) = translate_cut(&plan(wire, to), stream.as_bytes(), &[]);
            assert!(!failed, "{wire:?} -> {to:?}");
            assert!(!normalized(&told).is_empty());
            if collect::whole(to, &[Bytes::from(told)], None).is_some() {
                gathered += 1;
            }
        }
    }
    assert!(gathered >= 2 * streams().len(), "only {gathered} gathered");
}
