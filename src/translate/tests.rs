//! Whole translations through the public entry points, and robustness against bad input.

use super::*;
use crate::error::StreamFailure;
use serde_json::{json, Value};

/// A parsed body borrows its bytes; a test's few bytes are simply leaked.
fn body(v: Value) -> JsonBody<'static> {
    JsonBody::parse(serde_json::to_vec(&v).unwrap().leak()).unwrap()
}

fn stream_all(plan: &ResponsePlan, input: &[u8], piece: usize) -> Result<String, StreamFailure> {
    let mut t = StreamTranslator::new(plan);
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        t.feed(chunk, &mut out)?;
    }
    t.finish(&mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .unwrap()
}

#[test]
fn openai_requests_for_each_wire() {
    let b = body(
        json!({"model": "alias", "messages": [{"role": "user", "content": "hi"}], "stream": true,
        "stream_options": {"include_usage": true}}),
    );
    let t = request(
        Wire::OpenAi,
        Wire::Anthropic,
        &b,
        "claude-haiku-4-5",
        Target::default(),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        (v["model"].as_str(), v["stream"].as_bool()),
        (Some("claude-haiku-4-5"), Some(true))
    );
    assert!(t.plan.include_usage && !t.plan.is_identity());
    let t = request(
        Wire::OpenAi,
        Wire::Gemini,
        &b,
        "gemini-2.5-flash",
        Target::default(),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(v["contents"][0]["parts"][0]["text"], "hi");
    assert!(v.get("model").is_none());
}

#[test]
fn thinking_maps_to_each_providers_reasoning_settings() {
    let b = body(json!({"model": "m", "max_tokens": 32000,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "messages": [{"role": "user", "content": "hi"}]}));
    let sent = |wire, model, reasons| {
        let target = Target {
            max_output_tokens: None,
            reasons,
            web_search: true,
        };
        let t = request(Wire::Anthropic, wire, &b, model, target).unwrap();
        serde_json::from_slice::<Value>(&t.body).unwrap()
    };
    // To an OpenAI reasoning model an effort; to any other nothing (it would refuse it).
    let o3 = sent(Wire::OpenAi, "o3", true);
    assert_eq!(o3["reasoning_effort"], "medium");
    assert!(o3.get("thinking").is_none());
    assert!(sent(Wire::OpenAi, "gpt-4.1", false)
        .get("reasoning_effort")
        .is_none());
    // To Gemini the exact budget, with the thoughts.
    let gemini = sent(Wire::Gemini, "gemini-2.5-pro", false);
    assert_eq!(
        gemini["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 10000, "includeThoughts": true})
    );
    // From an OpenAI app's effort, Anthropic gets a budget that fits, and no temperature.
    let openai = body(json!({"model": "m", "max_tokens": 4000, "temperature": 0.2,
        "reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}]}));
    let t = request(
        Wire::OpenAi,
        Wire::Anthropic,
        &openai,
        "claude-sonnet-4-5",
        Target::default(),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 3999})
    );
    assert!(v.get("temperature").is_none());
}

#[test]
fn an_anthropic_max_tokens_is_a_ceiling_lowered_to_the_target_models_limit() {
    let b = body(
        json!({"model": "m", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let sent = |ingress, wire, ceiling| {
        let target = Target {
            max_output_tokens: ceiling,
            reasons: false,
            web_search: true,
        };
        let t = request(ingress, wire, &b, "gpt-4.1", target).unwrap();
        serde_json::from_slice::<Value>(&t.body).unwrap()
    };
    assert_eq!(
        sent(Wire::Anthropic, Wire::OpenAi, Some(32768))["max_completion_tokens"],
        32768
    );
    let gemini = sent(Wire::Anthropic, Wire::Gemini, Some(8192));
    assert_eq!(gemini["generationConfig"]["maxOutputTokens"], 8192);
    // Under the limit, or with no limit known, the request's own stands.
    assert_eq!(
        sent(Wire::Anthropic, Wire::OpenAi, Some(100_000))["max_completion_tokens"],
        64000
    );
    assert_eq!(
        sent(Wire::Anthropic, Wire::OpenAi, None)["max_completion_tokens"],
        64000
    );
    // An OpenAI app's limit is its own.
    let openai = body(
        json!({"model": "m", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let t = request(
        Wire::OpenAi,
        Wire::Anthropic,
        &openai,
        "claude-3-haiku",
        Target {
            max_output_tokens: Some(4096),
            reasons: false,
            web_search: true,
        },
    )
    .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&t.body).unwrap()["max_tokens"],
        64000
    );
}

#[test]
fn anthropic_requests_reach_openai_and_gemini() {
    let b = body(
        json!({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let t = request(
        Wire::Anthropic,
        Wire::OpenAi,
        &b,
        "gpt-4o-2024",
        Target::default(),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(v["model"], "gpt-4o-2024");
    assert_eq!(v["messages"][0], json!({"role": "user", "content": "hi"}));
    let t = request(
        Wire::Anthropic,
        Wire::Gemini,
        &b,
        "gemini-2.5-pro",
        Target::default(),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(v["generationConfig"]["maxOutputTokens"], 10);
    assert!(matches!(
        request(Wire::Gemini, Wire::OpenAi, &b, "x", Target::default()),
        Err(TranslateError::Invalid { .. })
    ));
}

#[test]
fn anthropic_stream_to_openai_with_usage_and_done() {
    let plan = ResponsePlan {
        include_usage: true,
        ..ResponsePlan::identity(Wire::OpenAi, "c")
    };
    let plan = ResponsePlan {
        from: Wire::Anthropic,
        ..plan
    };
    let sse = fixture("anthropic/stream_text.sse");
    let whole = stream_all(&plan, &sse, sse.len()).unwrap();
    for piece in [1, 7, 64] {
        assert_eq!(
            stream_all(&plan, &sse, piece).unwrap().len(),
            whole.len(),
            "piece {piece}"
        );
    }
    let events: Vec<&str> = whole.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let usage: Value =
        serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 25);
    let first: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(first["usage"], Value::Null);
    assert_eq!(first["object"], "chat.completion.chunk");
}

#[test]
fn without_include_usage_no_usage_appears() {
    let plan = ResponsePlan {
        from: Wire::Anthropic,
        ..ResponsePlan::identity(Wire::OpenAi, "c")
    };
    let out = stream_all(&plan, &fixture("anthropic/stream_text.sse"), 100).unwrap();
    assert!(!out.contains("usage"), "{out}");
    assert!(out.ends_with("data: [DONE]\n\n"));
}

#[test]
fn gemini_stream_to_anthropic_events() {
    let plan = ResponsePlan {
        from: Wire::Gemini,
        ..ResponsePlan::identity(Wire::Anthropic, "gemini-2.5-flash")
    };
    let out = stream_all(&plan, &fixture("gemini/stream_tool.sse"), 13).unwrap();
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert!(out.contains("\"type\":\"tool_use\""));
    assert!(out.contains("\"stop_reason\":\"tool_use\""));
    assert!(out.contains("\"output_tokens\":12"));
}

#[test]
fn a_cut_stream_is_a_failure_but_gemini_ends_at_eof() {
    let plan = ResponsePlan {
        from: Wire::Anthropic,
        ..ResponsePlan::identity(Wire::OpenAi, "c")
    };
    let sse = fixture("anthropic/stream_text.sse");
    assert!(stream_all(&plan, &sse[..sse.len() / 2], 50).is_err());
    let gemini = ResponsePlan {
        from: Wire::Gemini,
        ..plan
    };
    assert!(stream_all(&gemini, &fixture("gemini/stream_tool.sse"), 50).is_ok());
}

#[test]
fn whole_answers_both_ways() {
    let anthropic = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
    let plan = ResponsePlan {
        from: Wire::Anthropic,
        ..ResponsePlan::identity(Wire::OpenAi, "c")
    };
    let v: Value = serde_json::from_slice(&plan.translate_body(anthropic).unwrap()).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "hi");
    let plan = ResponsePlan {
        from: Wire::Gemini,
        ..ResponsePlan::identity(Wire::Anthropic, "g")
    };
    let gemini = br#"{"candidates":[{"content":{"parts":[{"text":"yo"}]},"finishReason":"STOP"}]}"#;
    let v: Value = serde_json::from_slice(&plan.translate_body(gemini).unwrap()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["content"][0]["text"].as_str()),
        (Some("message"), Some("yo"))
    );
    assert!(plan.translate_body(b"{oops").is_err());
}

/// Random, truncated and mangled upstream bytes never panic a translator: they translate,
/// or fail with an error.
#[test]
fn fuzzed_upstream_input_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let samples = [
        fixture("anthropic/stream_text.sse"),
        fixture("anthropic/stream_tool.sse"),
        fixture("gemini/stream_tool.sse"),
    ];
    let plans: Vec<ResponsePlan> = [Wire::OpenAi, Wire::Anthropic, Wire::Gemini]
        .into_iter()
        .flat_map(|from| {
            [Wire::OpenAi, Wire::Anthropic]
                .into_iter()
                .map(move |to| ResponsePlan {
                    from,
                    include_usage: true,
                    ..ResponsePlan::identity(to, "m")
                })
        })
        .collect();
    for round in 0..3000 {
        let sample = &samples[round % samples.len()];
        let mut bytes = sample.clone();
        match round % 4 {
            0 => bytes.truncate(rng.gen_range(0..bytes.len())),
            1 => {
                for _ in 0..rng.gen_range(1..20) {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] = rng.gen();
                }
            }
            2 => bytes = (0..rng.gen_range(0..400)).map(|_| rng.gen()).collect(),
            _ => {
                let cut = rng.gen_range(0..bytes.len());
                bytes.splice(
                    cut..cut,
                    b"data: {\"type\":\"content_block_delta\",\"index\":9,\"delta\":{}}\n\n"
                        .iter()
                        .copied(),
                );
            }
        }
        let plan = &plans[round % plans.len()];
        let _ = stream_all(plan, &bytes, rng.gen_range(1..50));
        let _ = plan.translate_body(&bytes);
        let _ = translate_error(plan.from, plan.to, 500, &bytes);
    }
}

#[test]
fn content_starts_after_the_preamble() {
    let plan = ResponsePlan {
        from: Wire::Anthropic,
        ..ResponsePlan::identity(Wire::OpenAi, "c")
    };
    let sse = String::from_utf8(fixture("anthropic/stream_text.sse")).unwrap();
    let preamble_end = sse.find("event: content_block_delta").unwrap();
    for (mut t, translating) in [
        (StreamTranslator::new(&plan), true),
        (StreamTranslator::probe(&plan), false),
    ] {
        let mut out = Vec::new();
        t.feed(&sse.as_bytes()[..preamble_end], &mut out).unwrap();
        assert!(
            !t.content_started(),
            "message_start, ping and an empty block are preamble"
        );
        t.feed(&sse.as_bytes()[preamble_end..], &mut out).unwrap();
        assert!(t.content_started());
        // A translator reads on to the end; a probe stops once content has started.
        assert_eq!(t.ended(), translating);
    }
    let mut probe = StreamTranslator::probe(&plan);
    let mut out = Vec::new();
    probe.feed(sse.as_bytes(), &mut out).unwrap();
    assert!(out.is_empty(), "a probe writes nothing");
    let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n";
    let mut t = StreamTranslator::probe(&plan);
    assert_eq!(t.feed(error.as_bytes(), &mut out).unwrap_err().status, 529);
}

#[test]
fn a_chunk_is_small_enough_to_be_moved_inline() {
    // A chunk is moved several times on its way through a translation; past 128 bytes each
    // move is a call to memcpy.
    let size = std::mem::size_of::<crate::translate::openai::ChatChunk>();
    assert!(size <= 128, "ChatChunk is {size} bytes");
}
