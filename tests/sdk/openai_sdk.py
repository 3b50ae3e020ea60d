"""Drives the sidecar with the official openai Python SDK (run by tests/sdk.rs).

Environment: SIDECAR_URL (base URL ending in /v1). The sidecar routes `mock-*` to a mock
OpenAI provider and `echo*` to the built-in echo provider.
"""
import os
import sys
import time

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["SIDECAR_URL"], api_key="app-key", max_retries=0)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def plain():
    r = client.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"customer_identifier": "sdk-user", "metadata": {"a": "b"}},
    )
    check(r.choices[0].message.content == "mock answer", f"content: {r}")
    check(r.model == "mock-gpt", f"model: {r.model}")
    check(r.usage.total_tokens == 7, f"usage: {r.usage}")
    raw = client.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "raw headers"}]
    )
    check(raw.headers["x-respan-provider"] == "echo", f"headers: {raw.headers}")
    check(raw.parse().choices[0].message.content == "raw headers", "echo content")


def streaming():
    pieces = []
    finish = None
    stream = client.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "stream"}], stream=True
    )
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    check("".join(pieces) == "mock answer", f"stream text: {pieces}")
    check(finish == "stop", f"finish: {finish}")

    usage = None
    text = []
    for chunk in client.chat.completions.create(
        model="echo-stream",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage:
            usage = chunk.usage
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
    check("".join(text) == "one two three", f"echo stream: {text}")
    check(usage is not None and usage.completion_tokens == 3, f"usage: {usage}")


def cached_streams():
    """A stream kept by the cache replays to the SDK as the same stream, and as a whole answer."""
    def streamed(**extra):
        raw = client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=[{"role": "user", "content": "cache this stream"}],
            stream=True, extra_body={"cache_enabled": True}, **extra,
        )
        text, finish, ids, usage = [], None, set(), None
        for chunk in raw.parse():
            ids.add(chunk.id)
            usage = chunk.usage or usage
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
        return raw.headers["x-respan-cache"], "".join(text), finish, ids, usage

    first = streamed()
    # The first answer is stored just after its app has the last byte: a request in that
    # moment follows the first's stream (a hit with the same bytes, so the same id), not a
    # replay of the stored answer. Ask again until a replay answers (a fresh id).
    for _ in range(50):
        again = streamed()
        if again[3] != first[3]:
            break
        time.sleep(0.02)
    check(first[0] == "miss" and again[0] == "hit", f"cache states: {first[0]}, {again[0]}")
    check(again[1:3] == first[1:3] == ("mock answer", "stop"), f"replayed: {again} vs {first}")
    check(len(again[3]) == 1 and again[3] != first[3], f"ids: {again[3]} vs {first[3]}")
    check(again[4] is None, f"no usage chunk unless asked: {again[4]}")
    with_usage = streamed(stream_options={"include_usage": True})
    check(with_usage[4] is not None and with_usage[4].total_tokens == 7, f"usage: {with_usage[4]}")
    raw = client.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=[{"role": "user", "content": "cache this stream"}],
        extra_body={"cache_enabled": True},
    )
    whole = raw.parse()
    check(raw.headers["x-respan-cache"] == "hit", f"whole from a stream: {raw.headers}")
    check(whole.choices[0].message.content == "mock answer", f"whole: {whole}")
    check(whole.usage.total_tokens == 7, f"whole usage: {whole.usage}")


def embeddings_and_models():
    e = client.embeddings.create(model="echo-embed", input=["a", "b"])
    check(len(e.data) == 2 and len(e.data[0].embedding) == 8, f"embeddings: {e}")
    ids = [m.id for m in client.models.list()]
    check("echo" in ids, f"models: {ids}")


def reliability():
    extra = {"fallback_models": ["echo"], "retry_params": {"num_retries": 1, "retry_after": 0.01}}
    raw = client.chat.completions.with_raw_response.create(
        model="mock-down", messages=[{"role": "user", "content": "fall back"}], extra_body=extra
    )
    check(raw.headers["x-respan-provider"] == "echo", f"fallback provider: {raw.headers}")
    check(raw.headers["x-respan-attempts"] == "3", f"attempts: {raw.headers}")
    check(raw.parse().choices[0].message.content == "fall back", "fallback content")
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="mock-down", messages=[{"role": "user", "content": "stream fall back"}],
            stream=True, extra_body=extra,
        )
        if c.choices
    )
    check(text == "stream fall back", f"stream fallback: {text}")
    r = client.chat.completions.create(
        model="", messages=[{"role": "user", "content": "pooled"}],
        extra_body={"load_balance_group": {"group_id": "pool"}},
    )
    check(r.model in ("echo", "echo-2"), f"group member: {r.model}")


def errors():
    try:
        client.chat.completions.create(model="unrouted", messages=[{"role": "user", "content": "x"}])
        check(False, "unrouted model answered")
    except openai.NotFoundError as e:
        check(e.code == "model_not_found", f"code: {e.code}")
    try:
        client.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "x"}],
            extra_body={"fallback_models": "not-a-list"},
        )
        check(False, "bad parameter answered")
    except openai.BadRequestError as e:
        check(e.body["param"] == "fallback_models", f"param: {e.body}")


plain()
streaming()
cached_streams()
embeddings_and_models()
reliability()
errors()
print("openai SDK: all checks passed")
