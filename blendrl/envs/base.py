"""The environment seam (``environment:`` of ``blendrl ppo``; docs/environments.md): what answers the policy's turns.

An environment is registered by kind in ``ENVIRONMENTS`` and built as ``ENVIRONMENTS[kind](**options)``. It has

- ``tools``: JSON schemas of the tools it offers (``[{"type": "function", "function": {name, description,
  parameters}}]``), handed to the chat template (``tools=``); empty for an environment without tools;
- ``reset(prompt) -> state``: a new episode for a prompt row (its ``messages`` and ``metadata``);
- ``step(state, text) -> Step``: the environment's answer to the policy's turn ``text``: an observation (a
  message with ``role``) or the end of the episode (``observation=None``), and what it counted (``stats``).

:class:`ToolEnvironment` is the one for tools: it parses the turn's ``<tool_call>`` blocks strictly
(:mod:`blendrl.core.tool_calls`), answers each call with the tool's output or an error that says what was wrong,
and ends the episode on a turn with no call (the policy's answer) or when its call budget is spent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..core.registry import Registry
from ..core.tool_calls import MalformedCall, parse_tool_calls

ENVIRONMENTS: Registry = Registry("environment", options_from_entry=True, builtins=("blendrl.envs.builtin",))


@dataclass
class Step:
    """``observation``: the environment's message (None: the episode ends after this turn); ``role``: its chat role
    (``tool`` for tool output, ``user`` for a game's reply); ``stats``: counts this step adds to the episode's
    (``tool_calls``, ``malformed_calls``, ``tool_errors``, ...); ``calls``: the turn's calls as parsed."""

    observation: str | None
    role: str = "tool"
    stats: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)


class Environment(Protocol):
    tools: list[dict]

    def reset(self, prompt): ...

    def step(self, state, text: str) -> Step: ...


class Tool(Protocol):
    """One tool: ``name``, ``schema`` (its JSON-schema ``function`` entry) and ``run(arguments) -> (text,
    stats)``; a tool that cannot do what was asked returns the error as its text and counts ``tool_errors``."""

    name: str
    schema: dict

    def run(self, arguments: dict) -> tuple[str, dict]: ...


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (an observation the policy can read)."""
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters cut]"


class ToolEnvironment:
    """Tool calls answered by ``tools`` (name → :class:`Tool`). Each call's output (at most ``max_output_chars``)
    comes back in a ``<tool_response>`` block of one ``tool`` message per turn. A malformed call, an unknown tool or
    arguments a tool rejects is answered with an error message and counted; after ``max_calls`` calls in an episode
    the episode ends (``call_budget_spent``). A turn without a call is the answer: the episode ends."""

    def __init__(self, tools: list, max_calls: int = 8, max_output_chars: int = 2000) -> None:
        if max_calls < 1 or max_output_chars < 1:
            raise ValueError("max_calls and max_output_chars must be >= 1")
        self.by_name = {t.name: t for t in tools}
        self.tools = [{"type": "function", "function": t.schema} for t in tools]
        self.max_calls, self.max_output_chars = max_calls, max_output_chars

    def reset(self, prompt) -> dict:
        return {"calls": 0, "metadata": dict(getattr(prompt, "metadata", {}) or {})}

    def step(self, state: dict, text: str) -> Step:
        calls, _ = parse_tool_calls(text)
        if not calls:
            return Step(None, calls=calls)
        stats: dict[str, float] = {"tool_calls": float(len(calls))}
        out = []
        for call in calls:
            if state["calls"] >= self.max_calls:
                stats["call_budget_spent"] = 1.0
                return Step(None, stats=stats, calls=calls)
            state["calls"] += 1
            if isinstance(call, MalformedCall):
                stats["malformed_calls"] = stats.get("malformed_calls", 0.0) + 1
                result = f"error: malformed tool call ({call.reason}); write <tool_call>{{\"name\": ..., " \
                         f"\"arguments\": {{...}}}}</tool_call>"
            elif call.name not in self.by_name:
                stats["tool_errors"] = stats.get("tool_errors", 0.0) + 1
                result = f"error: there is no tool {call.name!r}; the tools are {sorted(self.by_name)}"
            else:
                result, more = self.by_name[call.name].run(call.arguments)
                for k, v in more.items():
                    stats[k] = stats.get(k, 0.0) + v
            out.append(f"<tool_response>\n{truncate(result, self.max_output_chars)}\n</tool_response>")
        return Step("\n".join(out), "tool", stats, calls)
