//! A stream gathered into the whole answer it tells, in the same format: how the cache keeps
//! a streamed answer, so that it can be replayed to a request that streams and to one that
//! does not.
//!
//! Built on `serde_json::Value` rather than the typed structs: every field the stream carried
//! is kept (logprobs, citations, thinking signatures), not only those translation knows.
//! Runs once per stored stream, after the app has its last byte.

use super::anthropic::collect::AnthropicStream;
use super::gemini::collect::GeminiStream;
use super::openai::collect::OpenAiStream;
use super::responses::collect::ResponsesStream;
use super::sse::SseParser;
use crate::telemetry::record::TokenUsage;
use crate::wire::Wire;
use bytes::Bytes;

/// The whole answer (JSON, in the `ingress` format) of a stream the app got as `pieces`; none
/// if the stream did not end as a complete success (no end marker, an error event, an event
/// that could not be read). `usage` stands in for an OpenAI usage chunk the app did not ask
/// for (the gateway read it and dropped it on the way).
pub fn whole(ingress: Wire, pieces: &[Bytes], usage: Option<&TokenUsage>) -> Option<Vec<u8>> {
    let mut gathered = match ingress {
        Wire::OpenAi => Gathered::OpenAi(OpenAiStream::default()),
        Wire::Anthropic => Gathered::Anthropic(AnthropicStream::default()),
        Wire::Gemini => Gathered::Gemini(GeminiStream::default()),
        Wire::Responses => Gathered::Responses(ResponsesStream::default()),
    };
    let mut readable = true;
    let mut on_event = |e: &super::sse::Event| readable &= gathered.event(&e.data).is_some();
    let mut parser = SseParser::default();
    for piece in pieces {
        parser.feed(piece, &mut on_event).ok()?;
    }
    parser.finish(&mut on_event);
    if !readable {
        return None;
    }
    let whole = match gathered {
        Gathered::OpenAi(stream) => stream.into_whole(usage)?,
        Gathered::Anthropic(stream) => stream.into_whole()?,
        Gathered::Gemini(stream) => stream.into_whole()?,
        Gathered::Responses(stream) => stream.whole?,
    };
    serde_json::to_vec(&whole).ok()
}

enum Gathered {
    OpenAi(OpenAiStream),
    Anthropic(AnthropicStream),
    Gemini(GeminiStream),
    Responses(ResponsesStream),
}

impl Gathered {
    /// Takes one event's data; none when it cannot be read or reports an error.
    fn event(&mut self, data: &str) -> Option<()> {
        match self {
            Gathered::OpenAi(stream) => stream.event(data),
            Gathered::Anthropic(stream) => stream.event(data),
            Gathered::Gemini(stream) => stream.event(data),
            Gathered::Responses(stream) => stream.event(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn gather(ingress: Wire, stream: &str, piece: usize) -> Option<Value> {
        let pieces: Vec<Bytes> = stream
            .as_bytes()
            .chunks(piece)
            .map(Bytes::copy_from_slice)
            .collect();
        let whole = whole(ingress, &pieces, None)?;
        serde_json::from_slice(&whole).ok()
    }

    const OPENAI: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: {\"request_breakdown\":{\"cost\":0}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn an_openai_stream_becomes_its_chat_completion_in_pieces_of_any_size() {
        for piece in [1, 7, 4096] {
            let whole = gather(Wire::OpenAi, OPENAI, piece).unwrap();
            assert_eq!(whole["id"], "chatcmpl-1");
            assert_eq!(whole["object"], "chat.completion");
            assert_eq!(whole["model"], "gpt-4o");
            let choice = &whole["choices"][0];
            assert_eq!(choice["message"]["content"], "Hello");
            assert_eq!(choice["finish_reason"], "tool_calls");
            let call = &choice["message"]["tool_calls"][0];
            assert_eq!(call["id"], "call_1");
            assert_eq!(call["function"]["name"], "get");
            assert_eq!(call["function"]["arguments"], "{\"a\":1}");
            assert_eq!(whole["usage"]["total_tokens"], 5);
        }
    }

    #[test]
    fn an_openai_stream_without_its_end_or_with_an_error_is_not_kept() {
        let cut = OPENAI.replace("data: [DONE]\n\n", "");
        assert!(gather(Wire::OpenAi, &cut, 64).is_none());
        let failed = OPENAI.replace(
            "data: [DONE]",
            "data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]",
        );
        assert!(gather(Wire::OpenAi, &failed, 64).is_none());
    }

    #[test]
    fn a_usage_chunk_the_app_did_not_get_is_filled_in() {
        let without = OPENAI.replace(
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
            "",
        );
        let usage = TokenUsage {
            prompt_tokens: 4,
            completion_tokens: 6,
            total_tokens: 10,
            ..TokenUsage::default()
        };
        let pieces = [Bytes::from(without)];
        let whole: Value =
            serde_json::from_slice(&whole(Wire::OpenAi, &pieces, Some(&usage)).unwrap()).unwrap();
        assert_eq!(whole["usage"]["total_tokens"], 10);
    }

    const ANTHROPIC: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn an_anthropic_stream_becomes_its_message_in_pieces_of_any_size() {
        for piece in [1, 13, 4096] {
            let whole = gather(Wire::Anthropic, ANTHROPIC, piece).unwrap();
            assert_eq!(whole["id"], "msg_1");
            assert_eq!(whole["stop_reason"], "tool_use");
            assert_eq!(whole["usage"]["input_tokens"], 9);
            assert_eq!(whole["usage"]["output_tokens"], 12);
            let content = whole["content"].as_array().unwrap();
            assert_eq!(content[0]["thinking"], "hmm");
            assert_eq!(content[0]["signature"], "sig");
            assert_eq!(content[1], json!({"type": "text", "text": "Hi there"}));
            assert_eq!(content[2]["input"], json!({"a": 1}));
        }
    }

    #[test]
    fn a_gemini_stream_becomes_its_whole_answer_once_it_finished() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"},{\"functionCall\":{\"name\":\"get\",\"args\":{}}}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"totalTokenCount\":7}}\r\n\r\n",
        );
        for piece in [1, 9, 4096] {
            let whole = gather(Wire::Gemini, stream, piece).unwrap();
            let candidate = &whole["candidates"][0];
            assert_eq!(
                candidate["content"]["parts"],
                json!([{"text": "Hello"}, {"functionCall": {"name": "get", "args": {}}}])
            );
            assert_eq!(candidate["content"]["role"], "model");
            assert_eq!(candidate["finishReason"], "STOP");
            assert_eq!(whole["usageMetadata"]["totalTokenCount"], 7);
            assert_eq!(whole["modelVersion"], "gemini-2.5-flash");
        }
        let unfinished = stream.replace(",\"finishReason\":\"STOP\"", "");
        assert!(gather(Wire::Gemini, &unfinished, 64).is_none());
    }

    #[test]
    fn hostile_events_are_refused_without_a_panic() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":5}}\n\n";
        for event in [
            "{\"type\":\"content_block_start\",\"index\":100000000000,\"content_block\":{\"type\":\"text\"}}",
            "{\"type\":\"content_block_start\",\"index\":18446744073709551615,\"content_block\":{\"type\":\"text\"}}",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":\"x\"}",
            "{\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":1}}",
        ] {
            let stream = format!("{start}data: {event}\n\ndata: {{\"type\":\"message_stop\"}}\n\n");
            let _ = gather(Wire::Anthropic, &stream, 64);
        }
    }

    #[test]
    fn an_anthropic_stream_cut_or_failed_is_not_kept() {
        let cut = ANTHROPIC.replace(
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            "",
        );
        assert!(gather(Wire::Anthropic, &cut, 64).is_none());
        let failed = ANTHROPIC.replace(
            "event: message_stop",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\nevent: message_stop",
        );
        assert!(gather(Wire::Anthropic, &failed, 64).is_none());
    }
}
