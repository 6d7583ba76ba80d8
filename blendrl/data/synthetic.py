"""A synthetic preference task whose true preference is a known function of the text (label-noise experiments).

Prompts ask about a topic ("describe the volcano"); responses are short word sequences. The true score
(:func:`true_score`) rewards mentioning the prompt's topic, positive words (up to three distinct), and a final
period; it penalises other topics, negative words, and length past 8 words; ``not`` flips the sign of the next
positive or negative word. The order- and prompt-dependent terms keep a small reward model below 100%.
The chosen response is the one with the higher true score (pairs closer than ``min_gap`` are not drawn).

``make_pairs(n, seed, noise)`` swaps a random ``noise`` share of pairs and marks them in the ``flipped`` column
(Coste et al. use 25%); ``true_margin`` holds the clean score difference. Built-in sets (``builtin:NAME``):
``synthetic`` (2000 pairs, 25% flipped), ``synthetic_clean`` (the same pairs, unflipped), ``synthetic_eval``
(500 clean pairs from another seed).
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


def make_pairs(n: int, seed: int = 0, noise: float = 0.0, min_gap: float = 0.1) -> list[dict]:
    """``n`` preference rows ``{prompt, chosen, rejected, true_margin, flipped}``; ``noise`` of them swapped."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        topic = rng.choice(TOPICS)
        a, b = _response(rng, topic), _response(rng, topic)
        sa, sb = true_score(topic, a), true_score(topic, b)
        if abs(sa - sb) < min_gap:
            continue
        (good, bad) = (a, b) if sa > sb else (b, a)
        rows.append({"prompt": rng.choice(TEMPLATES).format(t=topic), "chosen": " ".join(good),
                     "rejected": " ".join(bad), "true_margin": round(abs(sa - sb), 4), "flipped": False})
    flip_rng = random.Random(seed + 10_000)
    for i in flip_rng.sample(range(n), int(round(noise * n))):
        r = rows[i]
        r["chosen"], r["rejected"], r["flipped"] = r["rejected"], r["chosen"], True
    return rows


BUILTIN_PREFERENCES = {
    "synthetic": lambda: make_pairs(2000, seed=0, noise=0.25),
    "synthetic_clean": lambda: make_pairs(2000, seed=0, noise=0.0),
    "synthetic_eval": lambda: make_pairs(500, seed=1, noise=0.0),
}
