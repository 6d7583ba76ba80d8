"""``blendrl lab overopt``: see reward over-optimisation (Gao et al.) and what cures it (Coste et al.'s ensembles,
SALSA, χ²), in four stages, each cached in ``output_dir`` so a re-run continues where it stopped:

1. **labels** — the policy samples pairs on training prompts; the gold reward labels them; ``labels.flip`` of the
   labels are flipped at random → ``pairs.jsonl`` (+ clean held-out ``pairs_eval.jsonl``);
2. **proxies** — ``proxy.members`` reward models trained on those pairs with ``blendrl rm`` (seeds 0..k−1); and,
   for SALSA, ``salsa.sft_models`` SFT models on the pairs' preferred responses and their soup;
3. **best-of-n** — on held-out prompts, a pool of N samples each; for every objective (single proxy, mean, WCO,
   UWO) and every n ≤ N the unbiased best-of-n estimate of gold and proxy, at KL_bon = log n − (n−1)/n;
4. **PPO** — one ``blendrl ppo`` run per ``ppo.runs`` entry; every ``eval_every`` iterations its held-out samples
   are scored by gold and proxy, with their KL to the reference.
Then ``report.html`` + ``overopt.png``: gold and proxy against √KL, Gao et al.'s fitted forms overlaid.
"""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import torch

from ..config import ConfigError, PPORunConfig, to_dict
from ..config.lab_schema import OverOptLabConfig
from ..config.loader import apply_overrides, from_dict
from ..config.rm_schema import RMRunConfig
from ..data import load_prompt_set
from ..data.preferences import write_preferences
from ..eval.best_of_n import best_of_n, kl_bon
from ..eval.bon_run import default_ns
from ..core.fsutil import atomic_write_text
from ..functional.ensembles import ENSEMBLE_AGGREGATORS
from ..models import load_causal_lm, load_tokenizer, resolve_model
from ..rewards import Sample, build_reward, make_samples, score_batch
from ..rewards.shared_backbone import load_members
from ..rollout import SamplingParams, decode_responses
from ..rollout import GENERATORS

log = logging.getLogger("blendrl")


class Policy:
    """The lab's sampler: the initial policy, its tokenizer and prompts."""

    def __init__(self, cfg: OverOptLabConfig) -> None:
        from ..core.types import eos_ids

        path = resolve_model(cfg.model.name)
        self.tokenizer = load_tokenizer(path, cfg.model.hub)
        self.model = load_causal_lm(path, cfg.model.dtype, hub=cfg.model.hub)
        g, d = cfg.generation, cfg.data
        stop = eos_ids(self.tokenizer, self.model) if g.stop_at_eos else []
        self.generator = GENERATORS[g.backend](self.model, self.tokenizer.pad_token_id, stop, **g.options)
        self.params = SamplingParams(g.max_new_tokens, g.temperature, g.top_p)
        load = lambda src: load_prompt_set(src, self.tokenizer, d, d.system_prompt)  # noqa: E731
        self.prompts, self.eval_prompts = load(d.prompts), load(d.eval_prompts)

    def sample(self, prompts, k: int, gen: torch.Generator, batch_size: int = 16) -> list[list[Sample]]:
        """``k`` responses per prompt → one list of k samples per prompt (each knows whether it ended with EOS)."""
        flat = [p for p in prompts for _ in range(k)]
        samples: list[Sample] = []
        for i in range(0, len(flat), batch_size):
            out = self.generator.sample([p.input_ids for p in flat[i: i + batch_size]], self.params, gen)
            samples += make_samples(flat[i: i + batch_size], decode_responses(self.tokenizer, out), out.finished)
        return [samples[i * k: (i + 1) * k] for i in range(len(prompts))]


# ---------------------------------------------------------------------- 1. labels
def label_pairs(cfg: OverOptLabConfig, policy: Policy, gold, out: Path) -> dict:
    """Gold-labelled pairs with ``labels.flip`` of them flipped (train) and clean (eval). Returns counts."""
    gen = torch.Generator().manual_seed(cfg.train.seed)
    rng = random.Random(cfg.train.seed)
    counts = {}
    for split, prompts, flip in (("pairs", policy.prompts[: cfg.labels.prompts], cfg.labels.flip),
                                 ("pairs_eval", policy.eval_prompts, 0.0)):
        rows, ties = [], 0
        for p, samples in zip(prompts, policy.sample(prompts, 2 * cfg.labels.pairs_per_prompt, gen)):
            texts = [s.response for s in samples]
            scores = score_batch(gold, samples).total.tolist()
            for a in range(0, len(texts), 2):
                (ga, ta), (gb, tb) = (scores[a], texts[a]), (scores[a + 1], texts[a + 1])
                if ga == gb or not ta.strip() or not tb.strip():
                    ties += 1
                    continue
                chosen, rejected = (ta, tb) if ga > gb else (tb, ta)
                flipped = rng.random() < flip
                if flipped:
                    chosen, rejected = rejected, chosen
                rows.append({"prompt": p.messages, "chosen": chosen, "rejected": rejected,
                             "gold_margin": abs(ga - gb), "flipped": flipped})
        write_preferences(rows, out / f"{split}.jsonl")
        counts[split] = {"pairs": len(rows), "dropped_ties": ties, "flipped": sum(r["flipped"] for r in rows)}
    return counts


# ---------------------------------------------------------------------- 2. proxies
def proxy_config(cfg: OverOptLabConfig, i: int, out: Path) -> RMRunConfig:
    """Proxy ``i``'s ``blendrl rm`` config: ``proxy.rm``'s sections, seed ``seed + i``, the lab's pairs and folder
    (errors name the lab's key: ``proxy.rm.loss.recipe``)."""
    data = json.loads(json.dumps(cfg.proxy.rm))
    data.setdefault("model", {}).setdefault("name", cfg.model.name)
    data.setdefault("train", {})["seed"] = cfg.train.seed + i
    data["data"] = {"train": str(out / "pairs.jsonl"), "eval": str(out / "pairs_eval.jsonl")}
    data["logging"] = {"output_dir": str(out / "proxies" / f"m{i}"), "progress": False, "tensorboard": False}
    return from_dict(RMRunConfig, data, prefix="proxy.rm")


def sft_config(cfg: OverOptLabConfig, i: int, out: Path):
    """SFT model ``i``'s ``blendrl sft`` config: ``salsa.train`` with seed ``seed + i`` on the lab's ``sft.jsonl``."""
    from ..config.sft_schema import SFTRunConfig

    return from_dict(SFTRunConfig, {"model": to_dict(cfg.model), "data": str(out / "sft.jsonl"),
                                    "train": {**cfg.salsa.train, "seed": cfg.train.seed + i},
                                    "logging": {"output_dir": str(out / "sft" / f"s{i}"), "progress": False,
                                                "tensorboard": False}}, prefix="salsa")


def stage_configs(cfg: OverOptLabConfig, out: Path) -> tuple[list[Path], dict]:
    """Every config a stage will run, built and checked now (shapes, names, each kind's own checks), so a typo in
    ``proxy.rm``, ``salsa.train``, ``ppo.base`` or a run's ``set`` fails before any model loads, not when its stage
    starts. Returns the proxies' and SFT models' folders-to-be."""
    from ..training.names import check_names
    from ..training.rm.run import RM_NAMES

    finals = [out / "proxies" / f"m{i}" / "final" for i in range(cfg.proxy.members)]
    sft = {"sft": [out / "sft" / f"s{i}" / "final" for i in range(cfg.salsa.sft_models)],
           "soup": out / "sft" / "soup" if cfg.salsa.sft_models >= 2 else None}
    def checked(where: str, derived, more=None) -> None:  # ``derived`` built with ``where`` as its key prefix
        try:
            check_names(derived, more)
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None

    for i in range(cfg.proxy.members):
        checked("proxy.rm", proxy_config(cfg, i, out), RM_NAMES)
    for i in range(cfg.salsa.sft_models):
        checked("salsa", sft_config(cfg, i, out))
    for k, run in enumerate(cfg.ppo.runs):
        checked(f"ppo.runs[{k}]", ppo_config(cfg, run, finals, out, sft, prefix=f"ppo.runs[{k}]"))
    return finals, sft


def train_proxies(cfg: OverOptLabConfig, out: Path) -> list[Path]:
    """``proxy.members`` reward models on ``pairs.jsonl`` (seed i); already trained members are reused."""
    from ..training.rm.run import train_rm

    finals = []
    for i in range(cfg.proxy.members):
        rm_cfg = proxy_config(cfg, i, out)
        folder = Path(rm_cfg.logging.output_dir)
        if not (folder / "final").is_dir():
            train_rm(rm_cfg)
        finals.append(folder / "final")
    return finals


# ---------------------------------------------------------------------- 2b. SFT models and their soup (SALSA)
def train_sft_models(cfg: OverOptLabConfig, out: Path) -> dict:
    """``salsa.sft_models`` SFT models (seed i) on the preferred responses of ``pairs.jsonl`` and, with two or more,
    their equal-weight soup. Returns {"sft": [final folders], "soup": folder | None}; finished folders are reused."""
    from ..models.soups import soup_models
    from ..training.sft import run_sft

    n = cfg.salsa.sft_models
    data = out / "sft.jsonl"
    if n and not data.is_file():
        rows = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
        atomic_write_text(data, "".join(json.dumps({"prompt": r["prompt"], "response": r["chosen"]}) + "\n"
                                        for r in rows))
    finals = []
    for i in range(n):
        sft_cfg = sft_config(cfg, i, out)
        folder = Path(sft_cfg.logging.output_dir)
        if not (folder / "final").is_dir():
            run_sft(sft_cfg)
        finals.append(folder / "final")
    soup = out / "sft" / "soup"
    if n >= 2 and not soup.is_dir():
        soup_models([str(f) for f in finals], [1.0 / n] * n, soup, cfg.model.dtype)
    return {"sft": finals, "soup": soup if n >= 2 else None}


def aggregate(member_scores: torch.Tensor, objective: str, uwo_lam: float) -> torch.Tensor:
    """(k, N) member scores → (N,): member 0 (``single``) or an ensemble aggregator."""
    if objective == "single":
        return member_scores[0]
    return ENSEMBLE_AGGREGATORS[objective](member_scores, **({"lam": uwo_lam} if objective == "uwo" else {}))


# ---------------------------------------------------------------------- 3. best-of-n
def bon_curves(cfg: OverOptLabConfig, policy: Policy, gold, proxies) -> list[dict]:
    """Rows {objective, n, kl, proxy, gold}: unbiased best-of-n means over ``bon.prompts`` held-out prompts."""
    b = cfg.bon
    gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    ns = default_ns(b.pool)
    sums = {(o, n): [0.0, 0.0] for o in b.objectives for n in ns}
    prompts = policy.eval_prompts[: b.prompts]
    for p, samples in zip(prompts, policy.sample(prompts, b.pool, gen, b.batch_size)):
        g = score_batch(gold, samples).total  # (N,)
        members = proxies.member_scores(samples)  # (k, N)
        for o in b.objectives:
            proxy = aggregate(members, o, b.uwo_lam)
            for n in ns:
                e_proxy, e_gold = best_of_n(proxy, g, n)
                sums[(o, n)][0] += e_proxy
                sums[(o, n)][1] += e_gold
    return [{"objective": o, "n": n, "kl": kl_bon(n), "proxy": sums[(o, n)][0] / len(prompts),
             "gold": sums[(o, n)][1] / len(prompts)} for (o, n) in sums]


# ---------------------------------------------------------------------- 4. PPO
def proxy_reward(objective: str, proxies: list[Path], uwo_lam: float) -> dict:
    if objective == "single":
        return {"kind": "hf_rm", "name": "proxy", "path": str(proxies[0])}
    options = {"members": [str(p) for p in proxies], "aggregate": objective}
    if objective == "uwo":
        options["lam"] = uwo_lam
    return {"kind": "ensemble", "name": "proxy", "options": options}


def objective_score(objective: str, proxies, uwo_lam: float):
    """samples → (N,): the score a PPO run optimised, from the already-loaded proxies (the models ``proxy_reward``
    names)."""
    return lambda samples: aggregate(proxies.member_scores(samples), objective, uwo_lam)


def ppo_config(cfg: OverOptLabConfig, run, proxies: list[Path], out: Path, sft: dict | None = None,
               prefix: str = "") -> PPORunConfig:
    """The run's PPO config (``ppo.base`` with the run's settings and ``set``; ``prefix``: the key its errors
    name); ``start: sft`` / ``salsa`` put SFT model 0 / the soup in as policy and reference."""
    data = json.loads(json.dumps(cfg.ppo.base))
    data.update({"model": to_dict(cfg.model), "generation": to_dict(cfg.generation), "data": to_dict(cfg.data),
                 "rewards": [proxy_reward(run.objective, proxies, cfg.ppo.uwo_lam)], "perf": to_dict(cfg.perf)})
    if run.start == "sft":
        data["model"]["name"] = str(sft["sft"][0])
    elif run.start == "salsa":
        data["model"]["name"] = str(sft["soup"])
        data["reference"] = {**data.get("reference", {}), "kind": "soup", "paths": [str(f) for f in sft["sft"]]}
    data.setdefault("kl", {})["coef"] = run.kl_coef
    data.setdefault("train", {}).setdefault("seed", cfg.train.seed)
    data["logging"] = {**data.get("logging", {}), "output_dir": str(out / "ppo" / run.name),
                       "eval_every": cfg.ppo.eval_every, "eval_prompts": cfg.ppo.eval_prompts, "progress": False}
    return from_dict(PPORunConfig, apply_overrides(data, list(run.set)), prefix=prefix)


def ppo_curve(run_dir: Path, policy: Policy, gold, proxy_score) -> list[dict]:
    """Points {iteration, kl, proxy, gold} from a finished run's logged held-out evaluations."""
    kl = {}
    for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()):
        if "eval/kl/seq_k1" in m:
            kl[m["iteration"]] = m["eval/kl/seq_k1"]
    by_text = {p.user_text: p for p in policy.eval_prompts}
    rows: dict[int, list] = {}
    for r in map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines()):
        if r.get("tag") == "eval":
            rows.setdefault(r["iteration"], []).append(r)
    points = []
    for it in sorted(rows):
        samples = make_samples([by_text[r["prompt"]] for r in rows[it]], [r["response"] for r in rows[it]],
                               [r["finished"] for r in rows[it]])
        points.append({"iteration": it, "kl": max(kl.get(it, 0.0), 0.0),
                       "proxy": proxy_score(samples).mean().item(),
                       "gold": score_batch(gold, samples).total.mean().item()})
    return points


def run_lab(cfg: OverOptLabConfig) -> dict:
    from ..training.run import run as run_ppo
    from ..training.run import set_up_torch
    from .report import write_report

    out = Path(cfg.logging.output_dir)
    stage_configs(cfg, out)  # every stage's config, checked before anything runs
    set_up_torch(cfg.train.threads, cfg.train.seed, cfg.perf)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(to_dict(cfg), indent=1))
    policy = Policy(cfg)
    gold = build_reward(cfg.gold, cfg.model.placement(torch.device("cpu")))  # next to the lab's CPU sampler
    result: dict = {}
    if not (out / "labels.json").is_file():
        atomic_write_text(out / "labels.json", json.dumps(label_pairs(cfg, policy, gold, out), indent=1))
    result["labels"] = json.loads((out / "labels.json").read_text())
    log.info("labels: %s", result["labels"])
    finals = train_proxies(cfg, out)
    result["proxy_accuracy"] = [json.loads((f.parent / "eval.json").read_text()).get("accuracy") for f in finals]
    sft = train_sft_models(cfg, out)
    proxies = load_members(finals)  # head-only proxies: one backbone pass scores all of them
    if not (out / "bon.json").is_file():
        atomic_write_text(out / "bon.json", json.dumps(bon_curves(cfg, policy, gold, proxies), indent=1))
    result["bon"] = json.loads((out / "bon.json").read_text())
    result["ppo"] = {}
    for run in cfg.ppo.runs:
        ppo_cfg = ppo_config(cfg, run, finals, out, sft)
        run_dir = Path(ppo_cfg.logging.output_dir)
        if not (run_dir / "final").is_dir():
            run_ppo(ppo_cfg)
        result["ppo"][run.name] = ppo_curve(run_dir, policy, gold,
                                            objective_score(run.objective, proxies, cfg.ppo.uwo_lam))
    atomic_write_text(out / "curves.json", json.dumps({k: result[k] for k in ("labels", "proxy_accuracy", "bon",
                                                                             "ppo")}, indent=1))
    result["report"] = write_report(result, out)
    return result
