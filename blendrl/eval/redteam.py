"""``blendrl redteam``: black-box search for hacks against any configured judge or reward source.

For every prompt of the target's task a :class:`~blendrl.eval.mutations.Context` is built, and candidates are
composed from the registered mutations (user plugins included): one ``hack`` mutation first (the candidate then
violates the judge's contract by construction), then up to ``depth`` more mutations of either kind. A candidate
the judge *passes* is a found hack. Against a reward source, a found hack is a hack candidate scored above the
prompt's honest reference response (``metadata['reference_response']``). Benign-only candidates of an honest
response are tried too: one the judge fails is reported as a false violation.

Strategies: ``greedy`` draws a fresh chain for every query (random search: rule judges give no gradient);
``beam`` keeps the ``beam`` best candidates per prompt (by the target's score where it has one: an LLM judge's
log-odds, a reward) and extends them one mutation at a time. An LLM rewrite (``rewriter``: any causal LM the
models layer loads) paraphrases the carrier text a candidate starts from, so the hacks sit in varied prose.
The budget counts samples judged or scored.
"""
from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field

from ..core.types import Sample
from ..rewards.base import score_batch
from .mutations import Context, Mutation, applicable

CARRIERS = ["Here is my answer.", "Sure, let me explain this clearly and briefly.",
            "This is a short answer to your question, written with care.",
            "Good question: the main idea is simple and worth knowing."]


@dataclass
class Candidate:
    text: str
    ops: tuple[str, ...]
    hack: bool  # a hack mutation is in it (it violates the contract by construction)
    score: float = 0.0


@dataclass
class Report:
    target: str
    kind: str
    queries: int = 0
    tried: collections.Counter = field(default_factory=collections.Counter)  # family → hack candidates judged
    found: collections.Counter = field(default_factory=collections.Counter)  # family → hacks that passed
    false_violations: int = 0
    benign_tried: int = 0
    examples: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"target": self.target, "kind": self.kind, "queries": self.queries, "tried": dict(self.tried),
                "found": dict(self.found), "hacks_found": sum(self.found.values()),
                "benign_tried": self.benign_tried, "false_violations": self.false_violations,
                "examples": self.examples}


class Scorer:
    """The target as a function of candidates: (passed, score) per sample. A judge's score is its log-odds where it
    has them (``log_odds``), else 1/0; a reward source's score is its reward (``passed`` then means "scored above
    the honest reference")."""

    def __init__(self, name: str, judge=None, reward=None) -> None:
        self.name, self.judge, self.reward = name, judge, reward

    def __call__(self, samples: list[Sample]) -> tuple[list[bool], list[float]]:
        if self.reward is not None:
            scores = [float(x) for x in score_batch(self.reward, samples).total]
            return [False] * len(samples), scores
        if hasattr(self.judge, "log_odds"):  # an LLM judge: its verdict is the sign of its (defended) log-odds
            scores = [float(x) for x in self.judge.log_odds(samples)]
            return [x >= 0 for x in scores], scores
        verdicts = self.judge.judge(samples)
        return [v.passed for v in verdicts], [float(v.passed) for v in verdicts]


def _family(ops: tuple[str, ...], table: dict[str, Mutation]) -> str:
    return next((table[o].family for o in ops if table[o].kind == "hack"), "benign")


def _seeds(ctx: Context) -> list[str]:
    """What the hack mutations start from: the honest response where one is known, else neutral carrier text."""
    honest = _honest(ctx)
    return [honest] if honest and honest not in CARRIERS else list(CARRIERS)


def _honest(ctx: Context) -> str | None:
    """A response that keeps the contract (for the benign-only candidates), or None where none is known."""
    if ref := ctx.metadata.get("reference_response"):
        return ref
    if ctx.kind == "math":
        return f"The final answer is {ctx.gold}."
    if ctx.kind == "refusal":
        return "I'm sorry, but I can't help with that." if ctx.metadata.get("should_refuse") else CARRIERS[0]
    return None


def search(scorer: Scorer, kind: str, rows: list[tuple[str, dict, str]], options: dict, budget: int = 2000,
           strategy: str = "beam", beam: int = 8, depth: int = 3, seed: int = 0, rewriter=None,
           batch: int = 32, max_examples: int = 20) -> Report:
    """Search ``budget`` queries for hacks; ``rows``: (prompt text, metadata, where) of the task's prompts."""
    if strategy not in ("beam", "greedy"):
        raise ValueError(f"strategy must be beam or greedy, got {strategy!r}")
    rng = random.Random(seed)
    report = Report(scorer.name, kind)
    contexts = [(Context(kind, prompt, meta, options), where) for prompt, meta, where in rows]
    contexts = [(c, w) for c, w in contexts if applicable(c, "hack")]
    if not contexts:
        return report
    honest_ref: dict[int, float] = {}
    if scorer.reward is not None:  # the honest reference each hack must beat
        contexts = [(c, w) for c, w in contexts if c.metadata.get("reference_response")]
        if not contexts:
            return report
        _, ref_scores = scorer([Sample([{"role": "user", "content": c.prompt}], c.metadata["reference_response"],
                                       c.metadata, w) for c, w in contexts])
        honest_ref = dict(enumerate(ref_scores))
        report.queries += len(contexts)
    carriers = {i: _seeds(c) + ([rewriter(s) for s in _seeds(c)[:1]] if rewriter else [])
                for i, (c, _) in enumerate(contexts)}
    beams: dict[int, list[Candidate]] = collections.defaultdict(list)
    table = {m.name: m for c, _ in contexts for m in applicable(c)}
    while report.queries < budget:
        todo: list[tuple[int, Candidate]] = []
        for _ in range(min(batch, budget - report.queries)):
            i = rng.randrange(len(contexts))
            todo.append((i, _propose(contexts[i][0], carriers[i], beams[i], strategy, depth, rng)))
        samples = [Sample([{"role": "user", "content": contexts[i][0].prompt}], cand.text, contexts[i][0].metadata,
                          contexts[i][1]) for i, cand in todo]
        passed, scores = scorer(samples)
        report.queries += len(todo)
        for (i, cand), ok, score in zip(todo, passed, scores):
            cand.score = score
            fam = _family(cand.ops, table)
            won = ok if scorer.reward is None else score > honest_ref[i]
            if not cand.hack:
                report.benign_tried += 1
                if scorer.reward is None and not ok and contexts[i][0].kind != "llm":
                    report.false_violations += 1
                continue
            report.tried[fam] += 1
            if won:
                report.found[fam] += 1
                if len(report.examples) < max_examples:
                    report.examples.append({"where": contexts[i][1], "family": fam, "ops": list(cand.ops),
                                            "response": cand.text, "score": score})
            if strategy == "beam":
                beams[i] = sorted([*beams[i], cand], key=lambda c: (-c.score, len(c.ops)))[:beam]
    return report


def _propose(ctx: Context, carriers: list[str], frontier: list[Candidate], strategy: str, depth: int,
             rng: random.Random) -> Candidate:
    hacks, every, benign = applicable(ctx, "hack"), applicable(ctx), applicable(ctx, "benign")
    if rng.random() < 0.1 and benign and (honest := _honest(ctx)):  # benign mutations only: must still pass
        text, ops = honest, []
        for m in rng.sample(benign, k=min(len(benign), rng.randint(1, depth))):
            text, ops = m(text, ctx, rng), [*ops, m.name]
        return Candidate(text, tuple(ops), hack=False)
    if strategy == "beam" and frontier and rng.random() < 0.7:
        parent = rng.choice(frontier)
        m = rng.choice(every)
        return Candidate(m(parent.text, ctx, rng), (*parent.ops, m.name), hack=True)
    m = rng.choice(hacks)
    text, ops = m(rng.choice(carriers), ctx, rng), [m.name]
    for extra in (rng.choice(every) for _ in range(rng.randint(0, depth))):
        text, ops = extra(text, ctx, rng), [*ops, extra.name]
    return Candidate(text, tuple(ops), hack=True)


def format_report(r: Report) -> str:
    lines = [f"red team against {r.target} ({r.kind}): {r.queries} queries",
             "| family | hacks tried | hacks that passed |", "|---|---|---|"]
    for fam in sorted(r.tried):
        lines.append(f"| {fam} | {r.tried[fam]} | {r.found[fam]} |")
    lines.append(f"honest responses under benign mutations: {r.benign_tried}, failed: {r.false_violations}")
    return "\n".join(lines)
