"""Drives the sidecar with the official anthropic Python SDK (run by tests/sdk.rs).

SIDECAR_URL is the sidecar's root. Routes: claude-* -> a mock Anthropic provider (native),
claude-count -> a mock answering count_tokens, gpt-tools -> a mock OpenAI provider scripted
with tool calls, gpt-* -> a mock OpenAI provider (translated both ways), echo -> built in.
"""
import json
import os
import sys

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ["SIDECAR_URL"] + "/api/anthropic", api_key="app-key", max_retries=0
)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def native():
    m = client.messages.create(
        model="claude-haiku-4-5", max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        metadata={"user_id": "u-1", "respan_params": {"customer_identifier": "sdk"}},
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    check(m.content[0].text == "mock answer", f"native: {m}")
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = stream.get_final_text()
    check(text == "mock answer", f"native stream: {text}")
    count = client.messages.count_tokens(
        model="claude-count", messages=[{"role": "user", "content": "count me"}]
    )
    check(count.input_tokens == 12, f"count: {count}")


def cached_stream():
    """A stream kept by the cache replays to the SDK as the same message, and as a whole one."""
    def streamed():
        with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=50,
            messages=[{"role": "user", "content": "cache this stream"}],
            extra_body={"cache_enabled": True},
        ) as stream:
            final = stream.get_final_message()
            state = stream.response.headers["x-respan-cache"]
        return state, final

    first_state, first = streamed()
    state, again = streamed()
    check((first_state, state) == ("miss", "hit"), f"cache states: {first_state}, {state}")
    check(again.to_dict()["content"] == first.to_dict()["content"], f"content: {again.content} vs {first.content}")
    check(again.stop_reason == first.stop_reason == "end_turn", f"stop: {again.stop_reason}")
    check(again.usage.output_tokens == first.usage.output_tokens, f"usage: {again.usage}")
    check(again.id != first.id, f"a fresh id: {again.id}")
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50,
        messages=[{"role": "user", "content": "cache this stream"}],
        extra_body={"cache_enabled": True},
    )
    check(raw.headers["x-respan-cache"] == "hit", f"whole from a stream: {raw.headers}")
    whole = raw.parse()
    check([b.text for b in whole.content] == [b.text for b in first.content], f"whole: {whole}")


def translated():
    m = client.messages.create(
        model="gpt-4o", max_tokens=50, system="be brief",
        messages=[{"role": "user", "content": "hi"}],
    )
    check(m.content[0].text == "mock answer", f"translated: {m}")
    check(m.stop_reason == "end_turn", f"stop: {m.stop_reason}")
    check(m.usage.output_tokens == 2, f"usage: {m.usage}")
    with client.messages.stream(
        model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    check(text == "mock answer", f"translated stream: {text}")
    check(final.usage.output_tokens == 2, f"stream usage: {final.usage}")
    e = client.messages.create(model="echo", max_tokens=20, messages=[{"role": "user", "content": "echo me"}])
    check(e.content[0].text == "echo me", f"echo: {e}")
    estimate = client.messages.count_tokens(model="gpt-4o", messages=[{"role": "user", "content": "x" * 400}])
    check(estimate.input_tokens >= 100, f"estimate: {estimate}")


def tools():
    tool = {"name": "get_weather", "description": "Weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    m = client.messages.create(
        model="gpt-tools", max_tokens=100, tools=[tool],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    use = [b for b in m.content if b.type == "tool_use"]
    check(m.stop_reason == "tool_use" and use and use[0].name == "get_weather", f"tool: {m}")
    check(use[0].input == {"city": "Paris"}, f"tool input: {use[0].input}")
    with client.messages.stream(
        model="gpt-tools", max_tokens=100, tools=[tool],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    use = [b for b in final.content if b.type == "tool_use"]
    check(use and use[0].input == {"city": "Paris"}, f"streamed tool: {final}")
    m = client.messages.create(
        model="gpt-4o", max_tokens=100, tools=[tool],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": use[0].id, "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use[0].id, "content": "sunny"}]},
        ],
    )
    check(m.content[0].text == "mock answer", f"after tool: {m}")


def errors():
    try:
        client.messages.create(model="mistral-x", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        check(False, "unrouted model answered")
    except anthropic.NotFoundError as e:
        check(e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error", f"body: {e.body}")


native()
cached_stream()
translated()
tools()
errors()
print("anthropic SDK: all checks passed")
