"""Multi-turn rollouts that keep the tokens the policy sampled (docs/environments.md).

An episode is the prompt's tokens, then the policy's first turn exactly as sampled, then the environment's answer
spliced in through the chat template (the end-of-turn text after the policy's EOS, the observation's message, the
header of the next assistant turn), then the policy's next turn sampled after all of it, and so on. Nothing the
policy wrote is decoded and tokenized again: the tokens trained on are the tokens sampled, so the update's
log-probs are the sampler's. The loss mask is 1 on the policy's tokens only; the environment's are attended to.

``finished`` is True only when the policy ended the episode itself (an answer the environment accepts as the last
turn, closed by EOS); a turn cut at its token limit, the episode's token budget or the turn limit leaves it False,
so the judges see a truncated episode as one.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace

import torch

from ..core import dist
from ..core.tool_calls import ToolCall
from ..core.types import Rollout, Transcript
from ..rollout.base import left_pad

TOOL_INSTRUCTIONS = (
    "You can call these tools:\n{tools}\nTo call one, write <tool_call>{{\"name\": NAME, \"arguments\": {{...}}}}"
    "</tool_call> and stop; its output comes back in <tool_response> tags. When you have the answer, write it "
    "without a tool call.")


@dataclass
class EpisodeSettings:
    """``max_turns`` policy turns; ``max_tokens_per_turn`` sampled per turn; ``max_total_tokens`` of the policy's
    over the episode; ``stop_ids``: tokens that end a turn as EOS does (the generator stops at them too)."""

    max_turns: int = 4
    max_tokens_per_turn: int = 48
    max_total_tokens: int = 192
    stop_ids: tuple = ()  # tokens that end a turn besides EOS (a single-token end of a tool call)


class EpisodeRunner:
    """Runs episodes of ``env`` with ``generator`` (any backend of the generator seam: it is handed each turn's
    whole token prefix) and ``tokenizer``'s chat template."""

    def __init__(self, generator, tokenizer, env, settings: EpisodeSettings) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("environment: the tokenizer has no chat template, so the environment's turns cannot be "
                             "spliced in as messages")
        self.generator, self.tok, self.env, self.settings = generator, tokenizer, env, settings
        probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        self._base = tokenizer.apply_chat_template(probe, tokenize=False)
        self._probe = probe
        self._after_content = self._base[self._base.rindex("y") + 1:]  # the end-of-turn text after an answer

    # ------------------------------------------------------------------ tokens
    def prompt_ids(self, prompt) -> list[int]:
        """The prompt with the environment's tools: through the template's ``tools=`` when it renders them, else
        as a system message describing them and the call format. Without tools, the prompt's own tokens."""
        tools = getattr(self.env, "tools", [])
        if not tools:
            return list(prompt.input_ids)
        messages = [dict(m) for m in prompt.messages]
        noted = self.with_tool_note(messages)
        text = self.tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True) \
            if noted is None else self.tok.apply_chat_template(noted, tokenize=False, add_generation_prompt=True)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def with_tool_note(self, messages: list[dict]) -> list[dict] | None:
        """``messages`` with the system message that lists the environment's tools and the call format, for a
        chat template that ignores ``tools=`` (SmolLM2's); None when the template renders the tools itself. The
        episodes' prompts are these, so a supervised warm start on tool use trains on them too."""
        tools = getattr(self.env, "tools", [])
        plain = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if self.tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True) != plain:
            return None
        note = TOOL_INSTRUCTIONS.format(tools="\n".join(json.dumps(t["function"]) for t in tools))
        messages = [dict(m) for m in messages]
        if messages[0]["role"] == "system":
            messages[0]["content"] = f"{messages[0]['content']}\n\n{note}"
        else:
            messages.insert(0, {"role": "system", "content": note})
        return messages

    def observation_ids(self, role: str, content: str, last_token: int) -> list[int]:
        """The tokens between the policy's turn (ending with ``last_token``, its EOS) and its next turn: what the
        template writes after an answer past the EOS, the environment's message, the next assistant header."""
        with_obs = self.tok.apply_chat_template(self._probe + [{"role": role, "content": content}], tokenize=False,
                                                add_generation_prompt=True)
        if not with_obs.startswith(self._base):
            raise ValueError(f"environment: the chat template does not render a {role!r} message after an assistant "
                             f"turn by appending to it, so it cannot be spliced in")
        eos_text = self.tok.decode([last_token])
        gap = self._after_content[len(eos_text):] if self._after_content.startswith(eos_text) else \
            self._after_content
        return self.tok(gap + with_obs[len(self._base):], add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------------ episodes
    def sample(self, prompts: list, params, generator: torch.Generator, shard=None) -> Rollout:
        """One episode per prompt record (``.input_ids``, ``.messages``, ``.metadata``). ``shard``: these rows are
        rows ``shard.rows`` of a batch sampled by several ranks; every rank takes each turn together, so the
        episodes are those one process would sample."""
        s, B = self.settings, len(prompts)
        base = [self.prompt_ids(p) for p in prompts]
        resp, keep, logp = [[] for _ in range(B)], [[] for _ in range(B)], [[] for _ in range(B)]
        turns, stats = [[] for _ in range(B)], [Counter() for _ in range(B)]
        states = [self.env.reset(p) for p in prompts]
        open_, finished, spent = [True] * B, [False] * B, [0] * B
        turn_params = replace(params, max_new_tokens=s.max_tokens_per_turn, stop_ids=tuple(s.stop_ids))
        for turn in range(s.max_turns):
            act = [i for i in range(B) if open_[i]]
            turn_shard = self._turn_shard(act, B) if shard is not None else None
            if (turn_shard.total if turn_shard is not None else len(act)) == 0:
                break
            r = self.generator.sample([base[i] + resp[i] for i in act], turn_params, generator, shard=turn_shard)
            for j, i in enumerate(act):
                n = int(r.response_mask[j].sum())
                ids, lps = r.response_ids[j, :n].tolist(), r.logp[j, :n].tolist()
                room = s.max_total_tokens - spent[i]
                cut = n > room
                ids, lps = ids[:room], lps[:room]
                resp[i] += ids
                keep[i] += [1.0] * len(ids)
                logp[i] += lps
                spent[i] += len(ids)
                stats[i]["turns"] += 1
                text = self.tok.decode(ids, skip_special_tokens=True)
                if cut or not bool(r.finished[j]):  # the turn hit a token limit: a truncated episode
                    turns[i].append({"role": "assistant", "content": text})
                    stats[i]["truncated"] += 1
                    open_[i] = False
                    continue
                step = self.env.step(states[i], text)
                calls = [{"name": c.name, "arguments": c.arguments} for c in step.calls if isinstance(c, ToolCall)]
                turns[i].append({"role": "assistant", "content": text, "tool_calls": calls})
                stats[i].update(step.stats)
                if step.observation is None:  # the environment takes this turn as the last
                    open_[i], finished[i] = False, True
                    continue
                turns[i].append({"role": step.role, "content": step.observation, "stats": dict(step.stats)})
                if turn == s.max_turns - 1 or spent[i] >= s.max_total_tokens:  # no turn left to answer in
                    stats[i]["truncated"] += 1
                    open_[i] = False
                    continue
                obs = self.observation_ids(step.role, step.observation, ids[-1])
                resp[i] += obs
                keep[i] += [0.0] * len(obs)
                logp[i] += [0.0] * len(obs)
        return self._rollout(base, resp, keep, logp, finished, turns, stats, shard is not None)

    def _turn_shard(self, act: list[int], n: int):
        """This rank's open rows as rows of the batch of every rank's open rows (in rank order)."""
        flags = torch.zeros(n, dtype=torch.long)
        flags[act] = 1
        every, first = dist.gather_rows(flags)
        position = every.cumsum(0) - 1  # each open row's place among the open rows
        return dist.Shard(position[first: first + n][flags.bool()], int(every.sum()))

    def _rollout(self, base, resp, keep, logp, finished, turns, stats, sharded: bool) -> Rollout:
        pad = self.tok.pad_token_id
        prompt_ids, prompt_mask = left_pad(base, pad)
        width = max(1, max(len(r) for r in resp))
        if sharded:  # every rank's responses as wide as the widest (the batch's statistics gather them by rows)
            width = int(dist.all_max(float(width)))

        def right(rows, value, dtype):
            out = torch.full((len(rows), width), value, dtype=dtype)
            for i, r in enumerate(rows):
                out[i, : len(r)] = torch.tensor(r, dtype=dtype)
            return out

        ids = right(resp, pad, torch.long)
        attention = right([[1] * len(r) for r in resp], 0, torch.long)
        transcripts = [Transcript(next((t["content"] for t in reversed(ts) if t["role"] == "assistant"), ""), ts,
                                  dict(st)) for ts, st in zip(turns, stats)]
        rollout = Rollout(prompt_ids, prompt_mask, ids, right(keep, 0.0, torch.float32),
                          right(logp, 0.0, torch.float32), torch.tensor(finished, dtype=torch.bool), attention,
                          transcripts)
        model = getattr(self.generator, "model", None)  # the rollout lives where the generator's rollouts do
        return rollout.to(next(model.parameters()).device) if model is not None else rollout
