"""The official openai SDK's Responses API through the sidecar to non-OpenAI models.

Run by tests/sdk.rs with SIDECAR_URL set; the Anthropic mock's scripted replies come
first (a tool call, then a thinking answer), its default answer ("mock answer") after; the
sidecar keeps responses (`responses.store`), so `previous_response_id` works.
"""
import json
import os
import sys

from openai import OpenAI

client = OpenAI(base_url=os.environ["SIDECAR_URL"], api_key="app-key", max_retries=0)
SHELL = {"type": "function", "name": "shell", "description": "Runs a command",
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                        "required": ["cmd"]}, "strict": False}


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def tool_round_trip():
    first = client.responses.create(model="claude-x", input="list files", tools=[SHELL],
                                    store=False)
    calls = [i for i in first.output if i.type == "function_call"]
    check(len(calls) == 1 and calls[0].name == "shell", f"a function call: {first.output}")
    check(json.loads(calls[0].arguments) == {"cmd": "ls"}, "its arguments")
    # What the Codex CLI does: the call and its output go back as input items.
    second = client.responses.create(
        model="claude-x", tools=[SHELL], store=False,
        input=[{"role": "user", "content": "list files"},
               {"type": "function_call", "call_id": calls[0].call_id, "name": "shell",
                "arguments": calls[0].arguments},
               {"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "a.txt"}])
    check(second.output_text == "mock answer", f"the answer after the tool: {second}")


def reasoning_carried_to_the_next_turn():
    first = client.responses.create(model="claude-x", input="think", store=False,
                                    include=["reasoning.encrypted_content"])
    reasoning = [i for i in first.output if i.type == "reasoning"]
    check(len(reasoning) == 1 and reasoning[0].encrypted_content, f"a reasoning item: {first}")
    check(first.output_text == "thought", "the answer text")
    items = [i.model_dump(exclude_none=True) for i in first.output]
    second = client.responses.create(model="claude-x", store=False,
                                     input=[{"role": "user", "content": "think"}, *items,
                                            {"role": "user", "content": "again"}])
    check(second.output_text == "mock answer", "the next turn")


def text_and_stream(model):
    r = client.responses.create(model=model, instructions="be brief", input="hi")
    check(r.object == "response" and r.status == "completed", f"{model}: {r}")
    check(r.output_text == "mock answer", f"{model}: text {r.output_text!r}")
    check(r.usage.total_tokens == 7, f"{model}: usage {r.usage}")
    with client.responses.stream(model=model, input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    check("".join(deltas) == "mock answer", f"{model}: deltas {deltas}")
    check(final.output_text == "mock answer", f"{model}: final {final}")
    check(final.usage.output_tokens == 2, f"{model}: stream usage {final.usage}")


def structured_output():
    r = client.responses.create(
        model="gemini-2.5-flash", input="give json",
        text={"format": {"type": "json_schema", "name": "answer", "strict": True,
                         "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    check(r.status == "completed", f"structured output: {r}")


def refused():
    try:
        client.responses.create(model="claude-x", input="hi", tools=[{"type": "file_search"}])
    except Exception as e:  # noqa: BLE001 - the SDK's BadRequestError
        check(getattr(e, "status_code", None) == 400 and "file_search" in str(e), f"refusal: {e}")
        return
    check(False, "a built-in tool on a claude model must be refused")


def previous_response_id_continues(model):
    first = client.responses.create(model=model, input="remember 7")
    second = client.responses.create(model=model, input="which number?",
                                     previous_response_id=first.id)
    check(second.output_text == "mock answer", f"{model}: the next turn {second}")
    kept = client.responses.retrieve(second.id)
    check(kept.id == second.id and kept.output_text == "mock answer", f"{model}: kept {kept}")
    items = client.responses.input_items.list(second.id)
    texts = [i.content[0].text for i in items.data]
    check(texts == ["which number?", "mock answer", "remember 7"], f"{model}: items {texts}")


tool_round_trip()
reasoning_carried_to_the_next_turn()
text_and_stream("claude-x")
text_and_stream("gemini-2.5-flash")
structured_output()
refused()
previous_response_id_continues("claude-x")
previous_response_id_continues("gemini-2.5-flash")
print("ok")
