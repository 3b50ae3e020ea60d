"""The official openai Python SDK meets a limit (run by tests/sdk.rs).

Environment: SIDECAR_URL (base URL ending in /v1). The sidecar serves `echo` with a rule of
two requests a minute for every caller.
"""
import os
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["SIDECAR_URL"], api_key="app-key", max_retries=0)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def ask():
    return client.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "hi"}]
    )


first = ask()
check(first.headers.get("x-ratelimit-limit-requests") == "2", f"limit: {dict(first.headers)}")
check(first.headers.get("x-ratelimit-remaining-requests") == "1", f"remaining: {dict(first.headers)}")
ask()
try:
    ask()
    check(False, "the third request must be refused")
except openai.RateLimitError as e:
    check(e.status_code == 429, f"status: {e.status_code}")
    check(e.code == "rate_limit_exceeded", f"code: {e.code}")
    check("per-minute" in e.message, f"message names the rule: {e.message}")
    headers = e.response.headers
    check(headers.get("x-ratelimit-remaining-requests") == "0", f"headers: {dict(headers)}")
    check(int(headers.get("retry-after", "0")) >= 1, f"retry-after: {dict(headers)}")
print("ok")
