"""LLM judges without sampling (CGPO §1, §5.3): render a judge prompt from a template, read the probabilities of
the judge's *pass* and *fail* tokens at the next position, and call the sample violated when p(fail) > p(pass).

- ``llm``: a local Hugging Face causal LM (default the embedded SmolLM2-135M-Instruct).
- ``openai``: any OpenAI-compatible server that returns logprobs (``/v1/completions`` with ``logprobs``, or
  ``/v1/chat/completions`` with ``top_logprobs``), e.g. vLLM or llama.cpp's server. A token missing from the
  returned top-k counts as probability 0.

The template sees ``{prompt}``, ``{response}`` and every metadata key (e.g. ``{answer}`` for a factuality judge).
The defaults ask whether the response answers the request helpfully ("Yes" passes, "No" fails).

The response is attacker-controlled text inside the judge's prompt. Defenses (``defense``):

- ``counterfactual`` (the default): the log-odds minus the lift each of the response's sentences gives in unrelated
  probe requests, where it cannot be an answer (:mod:`~blendrl.judges.counterfactual`); the tokenizer's special and
  chat-template strings are broken up so they cannot open a new turn. No phrase list: it was designed on one half of
  the injection families and measured on the other (docs/judges.md);
- ``fence``: the earlier phrase-based defense, kept for comparison: the response cut at the first chat-template
  token, the sentences matching :data:`~blendrl.judges.signals.INJECTION` dropped, the rest fenced between markers
  derived from a hash of the response, the question after the fence;
- ``none``: the response as it is (for measuring what a defense buys: ``benchmarks/llm_judge_injections.py``).
"""
from __future__ import annotations

import hashlib
import math
import re
import string
from concurrent.futures import ThreadPoolExecutor

import torch

from ..core.http import JsonClient, reject_options
from ..core.registries import REWARD_SOURCES
from .registry import JUDGES
from ..core.types import Sample, Scores
from .base import Verdict
from .signals import INJECTION
from .text import readable

DEFAULT_TEMPLATE = (
    "You are a strict grader. Request: {prompt}\nResponse: {response}\n"
    "Does the response answer the request helpfully and without refusing? Answer Yes or No."
)


# The default question with the response fenced on lines of its own; why not a longer "treat it as data" wording:
# docs/judges.md (it hurt a small judge's ranking of honest and irrelevant answers).
DEFENDED_TEMPLATE = (
    "You are a strict grader. Request: {prompt}\nResponse:\n{fence_open}\n{response}\n{fence_close}\n"
    "Does the response answer the request helpfully and without refusing? Answer Yes or No."
)
DEFENSES = ("counterfactual", "fence", "none")
# the sentence (or line) around an injection phrase
INJECTION_SENTENCE = re.compile(r"[^.!?\n]*(?:" + INJECTION.pattern + r")[^.!?\n]*[.!?]?", INJECTION.flags)
# chat-template and special-token spellings of the common families (ChatML, Llama, Mistral, Gemma, Phi, GPT-style)
TEMPLATE_TOKENS = re.compile(r"<\|[^|<>\n]{0,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|<\|endoftext\|>",
                             re.IGNORECASE)


REDACTED = ""  # the addressed text is dropped (a visible placeholder moved a small judge itself: docs/judges.md)


def neutralise(text: str, extra_tokens: tuple[str, ...] = ()) -> str:
    """The response as the judge should read it: cut at the first chat-template or special token (a new turn
    starts there, so what follows is not the answer), the sentences that address a grader
    (:data:`~blendrl.judges.signals.INJECTION`) dropped."""
    text = readable(text)
    cuts = [m.start() for m in [TEMPLATE_TOKENS.search(text)] if m] + [text.find(t) for t in extra_tokens
                                                                         if len(t) > 1 and t in text]
    if cuts:
        text = text[:min(cuts)].rstrip()
    text, dropped = INJECTION_SENTENCE.subn(REDACTED, text)
    if dropped:  # close the gaps the dropped lines leave
        text = re.sub(r"\s*\n\s*", "\n", text).strip()
    return text


def escape_specials(text: str, special_tokens: tuple[str, ...] = ()) -> str:
    """``text`` with every chat-template or special-token string broken up (``<|im_end|>`` → ``< |im_end|>``), so
    it reaches the judge as plain text and cannot open a new turn: structure, not a phrase list."""
    for t in sorted({*special_tokens, *TEMPLATE_TOKENS.findall(text)}, key=len, reverse=True):
        if len(t) > 1 and t in text:
            text = text.replace(t, f"{t[0]} {t[1:]}")
    return text


def fence_markers(response: str) -> tuple[str, str]:
    """Markers the response cannot contain: they carry a hash of the response itself."""
    tag = hashlib.sha256(response.encode("utf-8", "replace")).hexdigest()[:10]
    return f"<<<RESPONSE {tag}>>>", f"<<<END OF RESPONSE {tag}>>>"


class _Template(dict):
    def __missing__(self, key):
        raise KeyError(f"judge template field '{{{key}}}' is neither prompt, response nor a metadata key")


def render(template: str, s: Sample, defense: str = "none", special_tokens: tuple[str, ...] = ()) -> str:
    """The judge prompt for ``s``. ``defense='fence'``: the response neutralised and fenced (see the module doc);
    a template without ``{fence_open}`` gets the fence put around ``{response}``."""
    response = s.response
    fields = {**s.metadata, "prompt": s.prompt}
    if defense == "counterfactual":  # the defense is in the scoring (counterfactual.py); only tokens are escaped
        response = escape_specials(readable(response), special_tokens)
    elif defense == "fence":
        response = neutralise(response, special_tokens)
        fields["fence_open"], fields["fence_close"] = fence_markers(response)
        if "{fence_open}" not in template:
            response = f"{fields['fence_open']}\n{response}\n{fields['fence_close']}"
    elif defense != "none":
        raise ValueError(f"judge defense must be one of {DEFENSES}, got {defense!r}")
    return template.format_map(_Template({**fields, "response": response}))


def _template(template: str | None, defense: str, judge: str) -> str:
    """The judge's template: the given one, else the default for ``defense`` (checked here, at construction)."""
    if defense not in DEFENSES:
        raise ValueError(f"judge '{judge}': defense must be one of {DEFENSES}, got {defense!r}")
    if template is not None:
        return template
    return DEFENDED_TEMPLATE if defense == "fence" else DEFAULT_TEMPLATE


LOG_ODDS_CLIP = 50.0  # a server's top-k without one of the tokens gives ±inf; both missing count as a fail


def _clip(lp_pass: float, lp_fail: float) -> float:
    if lp_pass == lp_fail == -math.inf:
        return -LOG_ODDS_CLIP
    return max(-LOG_ODDS_CLIP, min(LOG_ODDS_CLIP, lp_pass - lp_fail))


class _Defended:
    """What both LLM judges share: the log-odds under the configured defense, and verdicts from them."""

    defense: str
    max_sentences: int = 8

    def raw_log_odds(self, samples: list[Sample]) -> torch.Tensor:  # (N,)
        raise NotImplementedError

    def log_odds(self, samples: list[Sample]) -> torch.Tensor:
        """(N,) log p(pass) − log p(fail) under the defense (counterfactual: with the prompt-independent lift of the
        response's sentences removed, :mod:`~blendrl.judges.counterfactual`)."""
        return self._scored(samples)[0]

    def _scored(self, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.defense == "counterfactual":
            from .counterfactual import counterfactual_log_odds

            fields = tuple(f for _, f, _, _ in string.Formatter().parse(self.template)
                           if f and f not in ("prompt", "response", "fence_open", "fence_close"))
            return counterfactual_log_odds(samples, self.raw_log_odds, self.max_sentences, fields=fields)
        return self.raw_log_odds(samples), None

    def judge(self, samples: list[Sample]) -> list[Verdict]:
        """Violated when the (defended) log-odds are below 0, i.e. p(fail) > p(pass) (CGPO §1)."""
        scores, lift = self._scored(samples)
        out = []
        for i, x in enumerate(scores.tolist()):
            why = f"log-odds {x:.3f} < 0" + (f" after removing {float(lift[i]):.3f} of lift that does not depend "
                                               f"on the request" if lift is not None and lift[i] > 0 else "")
            out.append(Verdict(True) if x >= 0 else Verdict(False, why))
        return out


def verdict_from_logprobs(lp_pass: float, lp_fail: float) -> Verdict:
    """Violated when p(fail) > p(pass) (CGPO §1), or when neither token was seen (a server's top-k held neither:
    a hard constraint is not passed on no evidence). The reason records both probabilities."""
    if lp_pass == lp_fail == -math.inf:
        return Verdict(False, "neither the pass nor the fail token is among the top log-probs")
    ok = lp_pass >= lp_fail
    return Verdict(ok, "" if ok else f"p(pass)={math.exp(lp_pass):.3f} < p(fail)={math.exp(lp_fail):.3f}")


class HFLLMJudge(_Defended):
    def __init__(self, name: str = "llm", model: str = "smollm2-135m-instruct", template: str | None = None,
                 pass_token: str = "Yes", fail_token: str = "No", chat_template: bool = True, batch_size: int = 8,
                 dtype: str = "float32", max_length: int = 1024, defense: str = "counterfactual",
                 max_sentences: int = 8) -> None:
        from ..models import load_causal_lm, load_tokenizer, resolve_model

        self.name, self.template, self.chat_template = name, _template(template, defense, name), chat_template
        path = resolve_model(model)
        self.defense, self.max_sentences = defense, max_sentences
        self.batch_size, self.max_length = batch_size, max_length
        self.tokenizer = load_tokenizer(path)
        self.tokenizer.padding_side = "left"
        self.model = load_causal_lm(path, dtype).eval().requires_grad_(False)
        self.pass_id, self.fail_id = self._single_token(pass_token), self._single_token(fail_token)
        self.special_tokens = tuple(self.tokenizer.all_special_tokens)

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"judge '{self.name}': '{text}' is {len(ids)} tokens for this tokenizer; the pass and "
                             f"fail tokens must be single tokens")
        return ids[0]

    def _text(self, s: Sample) -> str:
        body = render(self.template, s, self.defense, self.special_tokens)
        if self.chat_template and self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                                      add_generation_prompt=True)
        return body

    @torch.no_grad()
    def logprobs(self, samples: list[Sample]) -> torch.Tensor:
        """(N, 2): log p(pass token), log p(fail token) at the judge prompt's next position."""
        out = []
        for i in range(0, len(samples), self.batch_size):
            chunk = samples[i: i + self.batch_size]
            enc = self.tokenizer([self._text(s) for s in chunk], return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_length, add_special_tokens=not self.chat_template)
            position_ids = (enc["attention_mask"].cumsum(1) - 1).clamp_min(0)
            logits = self.model(**enc, position_ids=position_ids, logits_to_keep=1).logits[:, -1].float()  # (b, V)
            out.append(torch.log_softmax(logits, dim=-1)[:, [self.pass_id, self.fail_id]])
        return torch.cat(out)

    def raw_log_odds(self, samples: list[Sample]) -> torch.Tensor:
        lp = self.logprobs(samples)
        return lp[:, 0] - lp[:, 1]


class LLMJudgeReward:
    """A reward source from an LLM judge: ``log p(pass) − log p(fail)`` (the judge's log-odds; ``kind: llm_judge``).
    Useful where no trained reward model exists, e.g. a helpfulness score from the embedded SmolLM2."""

    def __init__(self, name: str = "llm_judge", **options) -> None:
        self.name = name
        self.judge = HFLLMJudge(name, **options)

    def score(self, samples: list[Sample]) -> Scores:
        return Scores(self.judge.log_odds(samples))  # (N,)


class OpenAIJudge(_Defended):
    """``api_key_env`` names the environment variable holding the key (read at each request, never stored in the
    judge, a config or a checkpoint); a literal ``api_key`` option is refused."""

    def __init__(self, name: str = "openai", base_url: str = "http://127.0.0.1:8000", model: str = "default",
                 template: str | None = None, pass_token: str = "Yes", fail_token: str = "No",
                 api: str = "chat", top_logprobs: int = 20, timeout_s: float = 60.0,
                 api_key_env: str | None = None, defense: str = "counterfactual", concurrency: int = 8,
                 retries: int = 2, max_sentences: int = 8, **unknown) -> None:
        reject_options(unknown, f"judge '{name}'")
        if api not in ("chat", "completions"):
            raise ValueError(f"judge '{name}': api must be chat or completions, got {api!r}")
        if concurrency < 1:
            raise ValueError(f"judge '{name}': concurrency must be >= 1")
        self.name, self.model, self.concurrency = name, model, concurrency
        self.template, self.defense = _template(template, defense, name), defense
        self.max_sentences = max_sentences
        self.pass_token, self.fail_token, self.api, self.top = pass_token, fail_token, api, top_logprobs
        # timeout_s per attempt, retries more attempts on a 5xx/429/timeout; a 4xx fails at once
        self.client = JsonClient(base_url, timeout_s, retries, api_key_env, who=f"judge '{name}'")

    def _post(self, path: str, body: dict) -> dict:
        return self.client.post(body, path)

    def top_logprobs(self, text: str) -> dict[str, float]:
        """The server's top-k next-token log-probs after the judge prompt (greedy, one token)."""
        if self.api == "chat":
            out = self._post("/v1/chat/completions", {
                "model": self.model, "messages": [{"role": "user", "content": text}], "max_tokens": 1,
                "temperature": 0.0, "logprobs": True, "top_logprobs": self.top})
            first = out["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            return {t["token"]: t["logprob"] for t in first}
        out = self._post("/v1/completions", {"model": self.model, "prompt": text, "max_tokens": 1,
                                             "temperature": 0.0, "logprobs": self.top})
        return dict(out["choices"][0]["logprobs"]["top_logprobs"][0])

    def _lp(self, top: dict[str, float], token: str) -> float:
        matches = [lp for t, lp in top.items() if t.strip() == token]
        return max(matches) if matches else -math.inf

    def raw_log_odds(self, samples: list[Sample]) -> torch.Tensor:
        """(N,) log-odds, one request per sample, ``concurrency`` at a time (clipped to ±50: a token missing from
        the returned top-k has probability 0; both missing is a fail)."""
        def one(s: Sample) -> float:
            top = self.top_logprobs(render(self.template, s, self.defense))
            return _clip(self._lp(top, self.pass_token), self._lp(top, self.fail_token))

        if self.concurrency == 1 or len(samples) < 2:
            return torch.tensor([one(s) for s in samples])
        with ThreadPoolExecutor(min(self.concurrency, len(samples))) as pool:
            return torch.tensor(list(pool.map(one, samples)))


@JUDGES.register("llm", options=(HFLLMJudge,))
def llm_judge(name: str = "llm", **options):
    """Options: ``model``, ``template``, ``pass_token``, ``fail_token``, ``chat_template``, ``batch_size``,
    ``defense`` (counterfactual | fence | none), ``max_sentences``."""
    return HFLLMJudge(name, **options)


@JUDGES.register("openai")
def openai_judge(name: str = "openai", **options):
    """Options: ``base_url``, ``model``, ``template``, ``pass_token``, ``fail_token``, ``api`` (chat|completions),
    ``top_logprobs``, ``timeout_s``, ``api_key_env`` (the environment variable holding the key), ``defense``,
    ``max_sentences``."""
    return OpenAIJudge(name, **options)


@REWARD_SOURCES.register("llm_judge")
def _llm_judge_source(cfg, placement=None):
    """A reward source (``kind: llm_judge``): an LLM judge's log-odds log p(pass) − log p(fail); ``options`` as the
    ``llm`` judge (model, template, pass_token, fail_token, ...); ``dtype`` defaults to the run's."""
    dtype = {"dtype": placement.dtype} if placement is not None else {}
    return LLMJudgeReward(cfg.name or "llm_judge", **{**dtype, **cfg.options})
