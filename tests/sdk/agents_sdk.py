"""The OpenAI Agents SDK (openai-agents) running an agent with one function tool on a
claude-* model through the sidecar: the SDK speaks the Responses API, the sidecar speaks
Anthropic's Messages to the mock. Run by tests/sdk.rs with SIDECAR_URL set.
"""
import os
import sys

from agents import (Agent, Runner, function_tool, set_default_openai_api,
                    set_default_openai_client, set_tracing_disabled)
from openai import AsyncOpenAI

set_tracing_disabled(True)
set_default_openai_api("responses")
set_default_openai_client(AsyncOpenAI(base_url=os.environ["SIDECAR_URL"], api_key="app-key",
                                      max_retries=0), use_for_tracing=False)

calls = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    calls.append(city)
    return f"sunny in {city}"


agent = Agent(name="assistant", instructions="Answer with the tool's help.", model="claude-x",
              tools=[get_weather])
result = Runner.run_sync(agent, "What is the weather in Paris?")
if calls != ["Paris"] or "sunny" not in str(result.final_output):
    print("FAILED:", calls, result.final_output)
    sys.exit(1)
print("ok:", result.final_output)
