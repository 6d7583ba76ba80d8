"""Precise instruction-following judge (CGPO §5.3: closed-form instruction types stored as prompt metadata).

The prompt's metadata carries IFEval's own fields: ``instruction_id_list`` (e.g. ``["punctuation:no_comma",
"length_constraints:number_words"]``) and ``kwargs`` (one dict per instruction). Two modes:

- ``strict`` (the default, for training): the response is screened first (an invisible code point or a
  mixed-script word is a violation naming the character, :func:`~blendrl.judges.text.screen`), then every
  instruction must pass both IFEval's check and blendrl's strict checker
  (:mod:`~blendrl.judges.ifeval`), which fails closed wherever the reference waves a response through, and
  a response whose word trigrams repeat past ``max_repetition`` (0.5) fails;
- ``reference``: IFEval's published strict scoring, on the response exactly as generated (for evaluation and
  comparison with published numbers; no screening, no repetition rule).

Checkers come from the ``if-verifiable`` package (Google's IFEval checkers). Offline: two IFEval checkers load NLTK's
``punkt`` data, which is downloaded on first use. Here ``length_constraints:number_sentences`` counts sentences with
NLTK's Punkt tokenizer at its built-in (untrained) parameters and ``change_case:capital_word_frequency`` tokenises
words with NLTK's Treebank tokenizer; neither needs downloaded data. An unknown instruction id is a data error
naming the prompt, never a silent pass.
"""
from __future__ import annotations

import functools

from ..core.types import Sample
from .registry import JUDGES
from .base import JudgeDataError, RuleJudge, Verdict, require_metadata
from .signals import repetition
from .ifeval import STRICT
from .text import fold, screen

MODES = ("strict", "reference")


@functools.lru_cache(maxsize=1)
def instruction_registry() -> dict:
    """IFEval's instruction id → checker class, with the two NLTK-data checkers made offline."""
    from if_verifiable.ifeval import instructions, instructions_registry
    from langdetect import DetectorFactory
    from nltk.tokenize import TreebankWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    DetectorFactory.seed = 0  # language:response_language is random without a seed
    sentences, words = PunktSentenceTokenizer(), TreebankWordTokenizer()

    class NumberOfSentences(instructions.NumberOfSentences):
        def check_following(self, value):
            n = len(sentences.tokenize(value))
            return n < self._num_sentences_threshold if self._comparison_relation == "less than" \
                else n >= self._num_sentences_threshold

    class CapitalWordFrequency(instructions.CapitalWordFrequencyChecker):
        def check_following(self, value):
            n = sum(w.isupper() for w in words.tokenize(value))
            return n < self._frequency if self._comparison_relation == "less than" else n >= self._frequency

    registry = dict(instructions_registry.INSTRUCTION_DICT)
    registry["length_constraints:number_sentences"] = NumberOfSentences
    registry["change_case:capital_word_frequency"] = CapitalWordFrequency
    return registry


def check_instruction(instruction_id: str, kwargs: dict, prompt: str, response: str) -> bool:
    """IFEval's (published, "strict") check of one instruction."""
    checker = instruction_registry()[instruction_id](instruction_id)
    checker.build_description(**{k: v for k, v in (kwargs or {}).items() if v is not None})
    args = checker.get_instruction_args()
    if args and "prompt" in args:  # e.g. combination:repeat_prompt needs the original prompt
        checker.build_description(prompt=prompt)
    return bool(response.strip()) and bool(checker.check_following(response))  # as IFEval's evaluation_lib


def instructions_of(s: Sample, judge: str) -> list[tuple[str, dict]]:
    ids = require_metadata(s, "instruction_id_list", judge)
    kwargs = s.metadata.get("kwargs") or [{} for _ in ids]
    if not isinstance(ids, list) or not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise JudgeDataError(f"judge '{judge}': prompt {s.where or '?'}: 'kwargs' must be a list with one dict per "
                             f"entry of 'instruction_id_list'")
    known = instruction_registry()
    for i, kw in zip(ids, kwargs):
        if i not in known:
            raise JudgeDataError(f"judge '{judge}': prompt {s.where or '?'}: unknown instruction id '{i}' in "
                                 f"'instruction_id_list'; known: {sorted(known)}")
        # IFEval picks a *random* value for a missing argument: refuse instead of judging a made-up constraint.
        missing = [k for k in known[i](i).get_instruction_args_keys()
                   if k != "prompt" and (kw or {}).get(k) is None]
        if missing:
            raise JudgeDataError(f"judge '{judge}': prompt {s.where or '?'}: instruction '{i}' needs kwargs "
                                 f"{missing}")
    return list(zip(ids, kwargs))


@JUDGES.register("instructions")
def instruction_judge(name: str = "instructions", mode: str = "strict", max_repetition: float | None = 0.5):
    """``mode``: ``strict`` (fail closed; the default) or ``reference`` (IFEval's published scoring)."""
    if mode not in MODES:
        raise ValueError(f"judge '{name}': mode must be one of {MODES}, got {mode!r}")

    def check(s: Sample) -> Verdict:
        text = s.response
        todo = instructions_of(s, name)
        if mode == "reference":
            failed = [i for i, kw in todo if not check_instruction(i, kw, s.prompt, text)]
            return Verdict(False, "failed " + ", ".join(failed)) if failed else Verdict(True)
        if reason := screen(text):
            return Verdict(False, reason)
        if not text.strip():
            return Verdict(False, "empty response")
        for i, kw in todo:
            if not check_instruction(i, kw, s.prompt, text):
                return Verdict(False, f"failed {i} (IFEval's check)")
            if reason := STRICT[i](text, {k: v for k, v in (kw or {}).items() if v is not None}, s.prompt):
                return Verdict(False, f"failed {i}: {reason}")
        if max_repetition is not None and (rep := repetition(fold(text))) > max_repetition:
            return Verdict(False, f"{rep:.0%} of its word trigrams repeat (> {max_repetition:.0%})")
        return Verdict(True)

    return RuleJudge(name, check)
