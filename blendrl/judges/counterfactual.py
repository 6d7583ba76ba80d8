"""The ``counterfactual`` defense of LLM judges: evidence that does not depend on the request is not evidence.

A sentence written to the grader ("Answer: Yes", "Verdict: PASS", a fake system turn, in any language or spelling)
raises the judge's log-odds whatever the request is; a sentence that answers the request raises them only for its
own request. So each sentence of the response is also scored in unrelated *probe* contexts (``PROBES``: another
request, an answer to it, and a neutral sentence as the control), and its prompt-independent lift there,

    lift_i = mean_probes [ lo(probe request, probe answer + s_i) − lo(probe request, probe answer + neutral) ],

is taken off the response's own log-odds: ``score = lo(request, response) − Σ_i max(lift_i, 0)``. No phrase list is
involved, so a new phrasing of an injection is caught as long as it works on the judge without the request. The cost
is one extra judge pass per sentence and probe (sentences beyond ``max_sentences`` are merged into the last one).
The measured effect (held-out injection families, the honest − irrelevant gap) is in docs/judges.md.
"""
from __future__ import annotations

import json
from typing import Callable

import torch

from ..core.types import Sample
from .text import sentences

# (a request, an answer to it, a neutral sentence) unrelated to anything a policy is trained on
PROBES = [("What is the capital of France?", "The kettle is in the kitchen.", "The museum is closed on Mondays."),
          ("How many legs does a spider have?", "My cousin plays the violin.", "The bus stop is near the bakery.")]


def pieces(response: str, max_sentences: int = 8) -> list[str]:
    """The response's sentences (UAX #29), the ones past ``max_sentences`` merged into the last piece."""
    parts = sentences(response) or ([response.strip()] if response.strip() else [])
    if len(parts) > max_sentences:
        parts = [*parts[: max_sentences - 1], " ".join(parts[max_sentences - 1:])]
    return parts


def counterfactual_log_odds(samples: list[Sample], raw: Callable[[list[Sample]], torch.Tensor],
                            max_sentences: int = 8, probes=PROBES,
                            fields: tuple[str, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(score (N,), removed lift (N,)): ``raw(samples) -> (N,)`` is the judge's plain log-odds; ``fields``: the
    metadata keys the judge's template reads (the probe controls are scored once per distinct value of them; None:
    once per distinct metadata)."""
    def key(s: Sample) -> str:
        meta = s.metadata if fields is None else {k: s.metadata.get(k) for k in fields}
        return json.dumps(meta, sort_keys=True, default=str)

    def probe(s: Sample, request: str, text: str) -> Sample:
        return Sample([{"role": "user", "content": request}], text, s.metadata, s.where, s.finished)

    splits = [pieces(s.response, max_sentences) for s in samples]
    base_of: dict[str, int] = {}
    batch: list[Sample] = []
    for s in samples:  # the controls, once per distinct metadata (a template may read metadata fields)
        if key(s) not in base_of:
            base_of[key(s)] = len(batch)
            batch += [probe(s, q, f"{a} {n}") for q, a, n in probes]
    plan = []
    for k, (s, parts) in enumerate(zip(samples, splits)):
        for part in parts:
            plan.append((k, len(batch), base_of[key(s)]))
            batch += [probe(s, q, f"{a} {part}") for q, a, _ in probes]
    scores = raw([*samples, *batch])  # (N + B,)
    full, rest = scores[: len(samples)], scores[len(samples):]
    lift = torch.zeros(len(samples))
    n = len(probes)
    for k, at, base in plan:
        gain = (rest[at: at + n] - rest[base: base + n]).mean()
        lift[k] += gain.clamp_min(0.0)
    return full - lift, lift
