"""Rule rewards a person can read, registered by name for ``kind: rule`` reward sources."""
from __future__ import annotations

from typing import Callable

from ..core.registry import Registry
from ..core.text import count_words

RULES: Registry = Registry("rule reward")



@RULES.register("concise_mention")
def concise_mention(prompt: str, response: str, metadata: dict) -> float:
    """1 point for mentioning ``metadata['key_term']`` (case-insensitive) plus up to 1 point for brevity:
    ``min(1, max_words / words)`` with ``metadata['max_words']`` (default 12). Range [0, 2]."""
    key = str(metadata.get("key_term", "")).lower()
    limit = int(metadata.get("max_words", 12))
    words = count_words(response)
    mention = 1.0 if key and key in response.lower() else 0.0
    brevity = 1.0 if words <= limit else limit / words
    return mention + brevity


@RULES.register("contains")
def contains(prompt: str, response: str, metadata: dict, text: str = "") -> float:
    """1 if ``text`` (an option) or ``metadata['target']`` occurs in the response, else 0."""
    target = text or str(metadata.get("target", ""))
    return 1.0 if target and target in response else 0.0


@RULES.register("length_penalty")
def length_penalty(prompt: str, response: str, metadata: dict, max_words: int = 50) -> float:
    """−(words beyond ``max_words``) / ``max_words``, 0 when within the limit."""
    return -max(0, count_words(response) - max_words) / max_words


def rule(name: str, **options) -> Callable[[str, str, dict], float]:
    """The rule ``name`` with its options bound."""
    fn = RULES[name]
    return (lambda p, r, m: fn(p, r, m, **options)) if options else fn
