"""Tool calls in a policy's turn, in the format chat models are trained on (Hermes, Qwen, SmolLM3):
``<tool_call>{"name": "...", "arguments": {...}}</tool_call>``, parsed strictly.

A call is exactly one JSON object with a string ``name`` and an object ``arguments`` (nothing else) between the two
tags. Anything else that opens a ``<tool_call>`` (bad JSON, a missing or unclosed tag, extra keys, arguments that
are not an object) is a :class:`MalformedCall` with the reason, which the environment answers as an observation
and counts; it is never guessed at.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict = field(default_factory=dict)

    def key(self) -> str:
        """The call as canonical text (sorted keys): two identical calls have the same key."""
        return json.dumps({"name": self.name, "arguments": self.arguments}, sort_keys=True)


@dataclass(frozen=True)
class MalformedCall:
    text: str
    reason: str


def parse_tool_calls(text: str) -> tuple[list[ToolCall | MalformedCall], str]:
    """The calls of a turn in order (each a :class:`ToolCall` or a :class:`MalformedCall`) and the turn's text
    outside the well-formed ones (a malformed call's text stays in it)."""
    calls: list[ToolCall | MalformedCall] = []
    outside, pos = [], 0
    for m in _BLOCK.finditer(text):
        outside.append(text[pos: m.start()])
        pos = m.end()
        calls.append(_one(m.group(1)))
        if isinstance(calls[-1], MalformedCall):
            outside.append(m.group(0))  # a malformed call stays in the text a judge reads
    rest = text[pos:]
    if OPEN in rest or CLOSE in rest:  # an unclosed call, or a closing tag with no call: kept in the outside text,
        cut = min(i for i in (rest.find(OPEN), rest.find(CLOSE)) if i >= 0)  # where a judge can still read it
        calls.append(MalformedCall(rest[cut:][:200], "a <tool_call> tag without its pair"))
    outside.append(rest)
    return calls, "".join(outside)


def _one(body: str) -> ToolCall | MalformedCall:
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        return MalformedCall(body[:200], f"not JSON ({exc.msg})")
    if not isinstance(obj, dict) or set(obj) != {"name", "arguments"}:
        return MalformedCall(body[:200], 'expected {"name": ..., "arguments": {...}} and nothing else')
    if not isinstance(obj["name"], str) or not obj["name"]:
        return MalformedCall(body[:200], "name: expected a tool's name")
    if not isinstance(obj["arguments"], dict):
        return MalformedCall(body[:200], "arguments: expected an object")
    return ToolCall(obj["name"], obj["arguments"])


def format_call(call: ToolCall) -> str:
    """The text of a call as the policy writes it (for tests and scripted policies)."""
    return f"{OPEN}{json.dumps({'name': call.name, 'arguments': call.arguments})}{CLOSE}"
