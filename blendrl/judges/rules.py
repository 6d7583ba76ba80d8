"""Rule judges: format and length, missing EOS, and a rule-based refusal detector (CGPO §5.3 uses an LLM classifier
for false refusals; this is the cheap rule version, and ``llm`` judges give the classifier version).

Every rule reads :func:`~blendrl.judges.text.visible_text` of the response (no zero-width characters, no Latin
look-alikes), and the format judge fails degenerate repetition (``max_repetition``, the share of repeated word
trigrams: "yes yes yes …" padding past ``min_words`` is a violation, not a pass)."""
from __future__ import annotations

import re

from ..core.types import Sample
from ..core.text import count_words
from ..core.registries import JUDGES
from .base import RuleJudge, Verdict
from .signals import repetition
from .text import visible_text

# Phrases that open or carry a refusal; matched case-insensitively on the response's first 200 characters.
REFUSAL_PATTERNS = [
    r"\bI(?:'m| am) (?:sorry|afraid)\b", r"\bI can(?:not|'t)\b (?:help|assist|provide|answer|do|comply|fulfil)",
    r"\bI(?:'m| am) (?:not able|unable) to\b", r"\bI (?:won't|will not) (?:help|assist|provide|answer)",
    r"\bAs an AI\b", r"\bI must decline\b", r"\bI do not feel comfortable\b", r"\bI don't feel comfortable\b",
    r"\bcannot fulfill\b", r"\bnot appropriate for me\b",
    r"\bI(?:'m| am) (?:not going|unwilling) to\b", r"\bI(?:'d| would) rather not\b", r"\bI (?:must|have to) refuse\b",
    r"\b(?:that|this|it)(?:'s| is) not something I (?:can|will|am able to)\b",
    r"\bI(?:'m| am) not (?:allowed|permitted)\b",
    r"\bI cannot and will not\b", r"\bunable to (?:help|assist|comply|provide)\b", r"\bmy apologies, but\b",
    r"\bI can ?not (?:help|assist|provide|answer|do|comply|fulfil)",
]


@JUDGES.register("format")
def format_judge(name: str = "format", regex: str | None = None, max_words: int | None = None,
                 min_words: int | None = None, max_chars: int | None = None, forbid: list[str] | None = None,
                 max_repetition: float | None = 0.5):
    """Format and length rules, all optional: ``regex`` must be found (re.search, DOTALL), ``min_words`` ≤ words ≤
    ``max_words``, at most ``max_chars`` characters, none of the ``forbid`` substrings, at most ``max_repetition`` of
    the word trigrams repeated (None: no limit). Options may also come from the prompt's ``metadata['format']``
    dict, which overrides these."""
    defaults = {"regex": regex, "max_words": max_words, "min_words": min_words, "max_chars": max_chars,
                "forbid": forbid or [], "max_repetition": max_repetition}

    def check(s: Sample) -> Verdict:
        rules = {**defaults, **(s.metadata.get("format") or {})}
        text = visible_text(s.response)
        words = count_words(text)
        if rules["regex"] and not re.search(rules["regex"], text, re.DOTALL):
            return Verdict(False, f"does not match {rules['regex']!r}")
        if rules["max_words"] is not None and words > rules["max_words"]:
            return Verdict(False, f"{words} words > {rules['max_words']}")
        if rules["min_words"] is not None and words < rules["min_words"]:
            return Verdict(False, f"{words} words < {rules['min_words']}")
        if rules["max_chars"] is not None and len(text) > rules["max_chars"]:
            return Verdict(False, f"{len(text)} chars > {rules['max_chars']}")
        for bad in rules["forbid"]:
            if bad in text:
                return Verdict(False, f"contains forbidden {bad!r}")
        if rules["max_repetition"] is not None and (rep := repetition(text)) > rules["max_repetition"]:
            return Verdict(False, f"{rep:.0%} of its word trigrams repeat (> {rules['max_repetition']:.0%})")
        return Verdict(True)

    return RuleJudge(name, check)


@JUDGES.register("eos")
def eos_judge(name: str = "eos"):
    """Violated when the response hit ``max_new_tokens`` without emitting EOS (a truncated answer)."""
    return RuleJudge(name, lambda s: Verdict(True) if s.finished else Verdict(False, "no EOS before max_new_tokens"))


@JUDGES.register("refusal")
def refusal_judge(name: str = "refusal", patterns: list[str] | None = None, window: int | None = None):
    """Violated when the response refuses (``REFUSAL_PATTERNS`` or the given ``patterns``, case-insensitive, in the
    first ``window`` characters; None, the default: anywhere, so a refusal after a padded preamble still counts).
    Put it on prompts that deserve an answer (CGPO's false-refusal judge). A prompt with
    ``metadata['should_refuse'] = true`` inverts it: then *not* refusing is the violation."""
    compiled = [re.compile(p, re.IGNORECASE) for p in (patterns or REFUSAL_PATTERNS)]

    def check(s: Sample) -> Verdict:
        head = visible_text(s.response)[:window]
        refused = any(p.search(head) for p in compiled)
        if s.metadata.get("should_refuse"):
            return Verdict(True) if refused else Verdict(False, "answered a prompt that should be refused")
        return Verdict(False, "refused") if refused else Verdict(True)

    return RuleJudge(name, check)
