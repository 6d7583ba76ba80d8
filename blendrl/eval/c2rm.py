"""``blendrl rm c2rm``: confidence-aware preference pairs for math (C2RM, He et al. 2025; docs/algorithms.md §5).

For every prompt of ``c2rm.prompts`` (rows with ``metadata.answer``, e.g. ``builtin:math``): sample ``k``
responses from ``c2rm.policy`` and read each one's final answer — ``final_sentence``: the math judge's "The final
answer is X" (a response without it is wrong and has no answer); ``last_number``: the last number in the
response. An answer is correct when ``math-verify`` finds it equal to the gold answer; its confidence is the
self-consistency of its answer among the k. Classes at ``threshold`` (1 correct & confident, 2 wrong & confident,
3 correct & unconfident, 4 wrong & unconfident) decide the pairs (``recipe``: ``c2rm`` 1 over 2/3/4;
``correctness`` 1,3 over 2,4; ``confidence`` 1,2 over 3,4). The pairs file feeds ``blendrl rm train``; the trained
folder is an ``hf_rm`` reward source for PPO and ``blendrl bon``.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

import torch

from ..config.rm_schema import C2RMConfig
from ..config.schema import DataConfig
from ..core.types import eos_ids
from ..data import DataError, load_prompt_set
from ..data.preferences import write_preferences
from ..functional.c2rm import C2RM_RECIPES, c2rm_class, self_consistency
from ..judges.math import final_answer
from ..judges.text import fold
from ..models import load_causal_lm, load_tokenizer, resolve_model
from ..rollout import SamplingParams, decode_responses
from ..rollout.hf import HFGenerator

_NUMBER = re.compile(r"-?\d+(?:[.,/]\d+)?")


def same_answer(a: str, b: str) -> bool:
    """Two answers are the same when they are equal strings or ``math-verify`` finds them equal."""
    if a.strip() == b.strip():
        return True
    from math_verify import parse, verify

    try:
        return bool(verify(parse(_as_math(a)), parse(_as_math(b))))
    except Exception:  # noqa: BLE001 - an unparseable answer equals only itself
        return False


def _as_math(text: str) -> str:
    """math-verify reads bare numbers and LaTeX in $…$; wrap plain text so both forms parse."""
    text = text.strip()
    return text if "$" in text or "\\" in text else f"${text}$"


def extract_answer(response: str, how: str) -> str | None:
    """The response's answer for self-consistency: the math judge's final answer (``final_sentence``), or its last
    number (``last_number``, on the look-alike-folded text)."""
    if how == "final_sentence":
        return final_answer(response)
    numbers = _NUMBER.findall(fold(response))
    return numbers[-1].replace(",", "") if numbers else None


@dataclass
class Question:
    """One prompt's k sampled responses with their answers, correctness, confidence and class."""

    prompt: object  # PromptExample
    responses: list[str]
    finished: list[bool]  # each response ended with EOS (not truncated)
    correct: list[bool]
    confidence: list[float]
    classes: list[int]


def sample_questions(c: C2RMConfig) -> list[Question]:
    """Sample ``k`` responses per prompt and classify them."""
    path = resolve_model(c.policy)
    tokenizer, policy = load_tokenizer(path), load_causal_lm(path)
    prompts = load_prompt_set(c.prompts, tokenizer, DataConfig(prompts=c.prompts), None)[: c.limit]
    generator = HFGenerator(policy, tokenizer.pad_token_id, eos_ids(tokenizer, policy))
    params, gen = SamplingParams(c.max_new_tokens, c.temperature, c.top_p), torch.Generator().manual_seed(c.seed)
    out = []
    for start in range(0, len(prompts), c.batch_prompts):
        batch = prompts[start: start + c.batch_prompts]
        flat = [p for p in batch for _ in range(c.k)]
        rollout = generator.sample([p.input_ids for p in flat], params, gen)
        texts, finished = decode_responses(tokenizer, rollout), rollout.finished.tolist()
        for q, prompt in enumerate(batch):
            if "answer" not in prompt.metadata:
                raise DataError(f"{prompt.source}, row {prompt.row}, field 'metadata.answer': missing (c2rm needs "
                                "the gold answer)")
            responses, ended = texts[q * c.k: (q + 1) * c.k], finished[q * c.k: (q + 1) * c.k]
            answers = [extract_answer(r, c.answer) for r in responses]
            gold = str(prompt.metadata["answer"])
            correct = [a is not None and same_answer(a, gold) for a in answers]
            confidence = self_consistency(answers, same_answer)
            out.append(Question(prompt, responses, ended, correct, confidence,
                                [c2rm_class(ok, conf, c.threshold) for ok, conf in zip(correct, confidence)]))
    return out


def question_pairs(questions: list[Question], recipe: str, max_pairs: int | None, seed: int) -> list[dict]:
    """Preference rows of ``recipe`` over every question (at most ``max_pairs`` each, drawn with ``seed``);
    a pair with an empty side is left out."""
    rng, rows = random.Random(seed), []
    for q in questions:
        pairs = [(i, j) for i, j in C2RM_RECIPES[recipe](q.classes)
                 if q.responses[i].strip() and q.responses[j].strip()]
        if max_pairs is not None and len(pairs) > max_pairs:
            pairs = rng.sample(pairs, max_pairs)
        rows += [{"prompt": q.prompt.messages, "chosen": q.responses[i], "rejected": q.responses[j],
                  "chosen_class": q.classes[i], "rejected_class": q.classes[j],
                  "chosen_confidence": round(q.confidence[i], 4), "rejected_confidence": round(q.confidence[j], 4),
                  "answer": q.prompt.metadata.get("answer")} for i, j in pairs]
    return rows


def build_c2rm_pairs(c: C2RMConfig) -> dict:
    """Sample, classify and pair; write ``c.output``. Returns counts (classes, pairs, accuracy)."""
    questions = sample_questions(c)
    rows = question_pairs(questions, c.recipe, c.max_pairs_per_prompt, c.seed)
    correct = [ok for q in questions for ok in q.correct]
    classes = Counter(k for q in questions for k in q.classes)
    stats = {"prompts": len(questions), "samples": len(correct), "accuracy": sum(correct) / max(len(correct), 1),
             "classes": {k: classes.get(k, 0) for k in (1, 2, 3, 4)}, "pairs": len(rows), "output": c.output}
    if not rows:
        raise DataError(f"c2rm: no pairs from {c.prompts} (classes {stats['classes']}); the recipe '{c.recipe}' "
                        "needs both of its sides among a prompt's k samples: raise c2rm.k or the temperature")
    write_preferences(rows, c.output)
    return stats
