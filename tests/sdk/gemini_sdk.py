"""Drives the sidecar with the official google-genai Python SDK (run by tests/sdk.rs).

SIDECAR_URL is the sidecar's root; gemini-* goes to a mock Gemini provider, whose first
scripted answers are a function call and a token count (in this order).
"""
import os
import sys

from google import genai
from google.genai import types

client = genai.Client(
    api_key="app-key",
    http_options=types.HttpOptions(base_url=os.environ["SIDECAR_URL"] + "/api/google/gemini"),
)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


weather = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)])
r = client.models.generate_content(
    model="gemini-2.5-flash", contents="Weather in Paris?",
    config=types.GenerateContentConfig(tools=[weather], automatic_function_calling={"disable": True}),
)
calls = r.function_calls or []
check(calls and calls[0].name == "get_weather" and calls[0].args == {"city": "Paris"}, f"call: {r}")

count = client.models.count_tokens(model="gemini-2.5-flash", contents="count me")
check(count.total_tokens == 5, f"count: {count}")

r = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
check(r.text == "mock answer", f"text: {r}")

text = "".join(c.text or "" for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
check(text == "mock answer", f"stream: {text}")

v1 = genai.Client(
    api_key="app-key",
    http_options=types.HttpOptions(base_url=os.environ["SIDECAR_URL"] + "/gemini", api_version="v1"),
)
r = v1.models.generate_content(model="gemini-2.5-flash", contents="hi")
check(r.text == "mock answer", f"v1: {r}")

try:
    client.models.generate_content(model="gpt-4o", contents="hi")
    check(False, "a non-Gemini model answered on the Gemini path")
except genai.errors.ClientError as e:
    check(e.code == 400, f"error: {e}")
print("google-genai SDK: all checks passed")
