"""A synthetic preference task whose true preference is a known function of the text (label-noise experiments).

Prompts ask about a topic ("describe the volcano"); responses are short word sequences. The true score
(:func:`true_score`) rewards mentioning the prompt's topic, positive words (up to three distinct), and a final
period; it penalises other topics, negative words, and length past 8 words; ``not`` flips the sign of the next
positive or negative word. The order- and prompt-dependent terms keep a small reward model below 100%.
The chosen response is the one with the higher true score (pairs closer than ``min_gap`` are not drawn).

``make_pairs(n, seed, noise)`` swaps a random ``noise`` share of pairs and marks them in the ``flipped`` column
(Coste et al. use 25%); ``true_margin`` holds the clean score difference. Two more generators of other shapes
(``arithmetic``: prompt-dependent correctness; ``bag_of_words``: a dense hidden linear reward) and a
pair-dependent noise (``near_tie``: flips follow a Bradley–Terry annotator) keep robustness claims from resting on
one generator (``benchmarks/rm_robustness.py``). Built-in sets (``builtin:NAME``):
``synthetic`` (2000 pairs, 25% flipped), ``synthetic_clean`` (the same pairs, unflipped), ``synthetic_eval``
(500 clean pairs from another seed), ``synthetic_calib`` (200 clean pairs from a third seed, for
``data.calibration``).
"""
from __future__ import annotations

import random

TOPICS = ["volcano", "ocean", "planet", "river", "robot", "rocket", "moon", "star", "cloud", "snow", "seed", "tide"]
POSITIVE = ["clear", "useful", "accurate", "kind", "precise", "helpful", "vivid", "simple"]
NEGATIVE = ["wrong", "rude", "vague", "boring", "false", "confusing"]
FILLER = ["the", "a", "is", "of", "and", "it", "very", "quite", "this", "that", "really", "so"]
TEMPLATES = ["describe the {t}", "tell me about the {t}", "what is the {t} ?"]
VOCABULARY = sorted(set(TOPICS + POSITIVE + NEGATIVE + FILLER + ["not", ".", "?", "describe", "tell", "me",
                                                                  "about", "what"]))


def true_score(topic: str, words: list[str]) -> float:
    """The hidden preference function (see the module docstring for the terms)."""
    score, seen_positive, negate = 0.0, set(), False
    for w in words:
        if w in POSITIVE:
            if negate:
                score -= 0.5
            elif w not in seen_positive and len(seen_positive) < 3:
                seen_positive.add(w)
                score += 0.5
        elif w in NEGATIVE:
            score += 0.3 if negate else -0.7
        negate = w == "not"
    score += 1.0 if topic in words else 0.0
    score -= 0.6 * len({w for w in words if w in TOPICS and w != topic})
    score -= 0.15 * max(0, len(words) - 8)
    score += 0.3 if words and words[-1] == "." else 0.0
    return score


def _response(rng: random.Random, topic: str) -> list[str]:
    words = []
    for _ in range(rng.randint(3, 12)):
        u = rng.random()
        if u < 0.15:
            words.append(topic)
        elif u < 0.22:
            words.append(rng.choice([t for t in TOPICS if t != topic]))
        elif u < 0.40:
            words.append(rng.choice(POSITIVE))
        elif u < 0.52:
            words.append(rng.choice(NEGATIVE))
        elif u < 0.58:
            words.append("not")
        else:
            words.append(rng.choice(FILLER))
    if rng.random() < 0.5:
        words.append(".")
    return words


def _topic_pair(rng: random.Random):
    """A generator draws ``(prompt_fn, a, score_a, b, score_b)``; ``prompt_fn()`` is called only for kept pairs."""
    topic = rng.choice(TOPICS)
    a, b = _response(rng, topic), _response(rng, topic)
    return lambda: rng.choice(TEMPLATES).format(t=topic), a, true_score(topic, a), b, true_score(topic, b)


# ---- "arithmetic": the answer must be right for *this* prompt; hedges, extra numbers and length cost -------------
NUMBERS = [str(i) for i in range(19)]
ARITH_WORDS = ["sure", "the", "answer", "is", "maybe", "i", "think", "it", "or", "plus", "what", "?", ".", ","]


def arithmetic_score(total: int, words: list[str]) -> float:
    """+1.5 if the first number stated is ``total`` (+0.3 if off by one), −0.5 per further distinct number, −0.4 per
    hedge (``maybe``, ``think``), +0.2 for ``sure``, +0.2 for a final period, −0.1 per word past 7."""
    numbers = [int(w) for w in words if w.isdigit()]
    score = 0.0
    if numbers:
        score += 1.5 if numbers[0] == total else 0.3 if abs(numbers[0] - total) == 1 else 0.0
        score -= 0.5 * len(set(numbers[1:]) - {numbers[0]})
    score -= 0.4 * sum(w in ("maybe", "think") for w in words)
    score += 0.2 * ("sure" in words) + (0.2 if words and words[-1] == "." else 0.0)
    return score - 0.1 * max(0, len(words) - 7)


def _arith_response(rng: random.Random, total: int) -> list[str]:
    words = ["sure", ","] if rng.random() < 0.3 else []
    if rng.random() < 0.3:
        words += rng.choice([["maybe"], ["i", "think"]])
    words += ["the", "answer", "is"] if rng.random() < 0.6 else ["it", "is"]
    u = rng.random()
    answer = total if u < 0.45 else max(0, min(18, total + rng.choice([-1, 1]))) if u < 0.7 else rng.randint(0, 18)
    words.append(str(answer))
    if rng.random() < 0.25:
        words += ["or", str(rng.randint(0, 18))]
    words += rng.choice([[], ["."], [".", "the", "answer", "is", str(answer), "."]])
    return words


def _arith_pair(rng: random.Random):
    x, y = rng.randint(0, 9), rng.randint(0, 9)
    a, b = _arith_response(rng, x + y), _arith_response(rng, x + y)
    return lambda: f"what is {x} plus {y} ?", a, arithmetic_score(x + y, a), b, arithmetic_score(x + y, b)


# ---- "bag_of_words": a hidden dense linear reward over words (no prompt dependence) plus a preferred length -----
BOW_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
             "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor",
             "whiskey", "xray", "yankee", "zulu"]
_BOW_WEIGHTS = {w: random.Random(1234 + i).gauss(0.0, 1.0) for i, w in enumerate(BOW_WORDS)}


def bag_of_words_score(words: list[str]) -> float:
    """Σ of a fixed random weight per distinct word, ÷ √(number of words), − 0.05·(length − 8)²."""
    if not words:
        return 0.0
    return sum(_BOW_WEIGHTS[w] for w in set(words)) / len(words) ** 0.5 - 0.05 * (len(words) - 8) ** 2


def _bow_pair(rng: random.Random):
    a, b = ([rng.choice(BOW_WORDS) for _ in range(rng.randint(3, 14))] for _ in range(2))
    subject = rng.choice(BOW_WORDS)
    return lambda: f"write about {subject}", a, bag_of_words_score(a), b, bag_of_words_score(b)


GENERATORS = {"topics": _topic_pair, "arithmetic": _arith_pair, "bag_of_words": _bow_pair}
NOISE_KINDS = ("uniform", "near_tie")
ALL_VOCABULARY = sorted(set(VOCABULARY + NUMBERS + ARITH_WORDS + BOW_WORDS + ["write"]))


def near_tie_flip_probs(margins: list[float], rate: float) -> list[float]:
    """Per-pair flip probabilities ``σ(−|m_i|/τ)`` of a Bradley–Terry annotator (near-ties flipped most often), with
    τ found by bisection so that their mean is ``rate`` (< 0.5)."""
    import math

    def probs(tau: float) -> list[float]:
        return [1.0 / (1.0 + math.exp(min(abs(m) / tau, 700.0))) for m in margins]

    lo, hi = 1e-4, 1e4
    for _ in range(200):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if sum(probs(mid)) / len(margins) < rate else (lo, mid)
    return probs((lo * hi) ** 0.5)


def make_pairs(n: int, seed: int = 0, noise: float = 0.0, min_gap: float = 0.1, generator: str = "topics",
               noise_kind: str = "uniform") -> list[dict]:
    """``n`` preference rows ``{prompt, chosen, rejected, true_margin, flipped}`` from ``generator`` (a name in
    :data:`GENERATORS`); ``noise`` of them swapped: exactly that share at random (``uniform``), or each pair with
    the probability of a Bradley–Terry annotator of matching mean rate, so near-ties flip most (``near_tie``)."""
    if generator not in GENERATORS or noise_kind not in NOISE_KINDS:
        raise ValueError(f"make_pairs: generator in {sorted(GENERATORS)}, noise_kind in {NOISE_KINDS}")
    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        prompt, a, sa, b, sb = GENERATORS[generator](rng)
        if abs(sa - sb) < min_gap:
            continue
        (good, bad) = (a, b) if sa > sb else (b, a)
        rows.append({"prompt": prompt(), "chosen": " ".join(good), "rejected": " ".join(bad),
                     "true_margin": round(abs(sa - sb), 4), "flipped": False})
    flip_rng = random.Random(seed + 10_000)
    if noise_kind == "uniform":
        flips = flip_rng.sample(range(n), int(round(noise * n)))
    else:
        probs = near_tie_flip_probs([r["true_margin"] for r in rows], noise) if noise > 0 else [0.0] * n
        flips = [i for i, p in enumerate(probs) if flip_rng.random() < p]
    for i in flips:
        r = rows[i]
        r["chosen"], r["rejected"], r["flipped"] = r["rejected"], r["chosen"], True
    return rows


BUILTIN_PREFERENCES = {
    "synthetic": lambda: make_pairs(2000, seed=0, noise=0.25),
    "synthetic_clean": lambda: make_pairs(2000, seed=0, noise=0.0),
    "synthetic_eval": lambda: make_pairs(500, seed=1, noise=0.0),
    "synthetic_calib": lambda: make_pairs(200, seed=2, noise=0.0),
}
