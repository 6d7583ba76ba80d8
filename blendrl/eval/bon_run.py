"""``blendrl bon``: sample a pool of N responses per prompt, score them with the proxy reward (and a gold reward),
report the unbiased best-of-n estimate for every n with KL_bon, and write each prompt's best-of-N pick."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config.schema import BoNRunConfig
from ..data import load_prompt_set
from ..core.fsutil import atomic_write_text
from ..core.seeds import stream
from ..models import load_causal_lm, load_tokenizer, resolve_model
from ..rewards import Sample, build_reward, make_samples, score_batch
from ..rollout import SamplingParams, decode_responses
from ..rollout import GENERATORS
from .best_of_n import best_of_n, kl_bon


def default_ns(pool: int) -> list[int]:
    ns, n = [], 1
    while n < pool:
        ns.append(n)
        n *= 2
    return ns + [pool]


def run_bon(cfg: BoNRunConfig) -> dict:
    from ..core.types import eos_ids

    torch.manual_seed(cfg.train.seed)
    path = resolve_model(cfg.model.name)
    tokenizer, policy = load_tokenizer(path, cfg.model.hub), load_causal_lm(path, cfg.model.dtype, hub=cfg.model.hub)
    d = cfg.data
    prompts = load_prompt_set(d.prompts, tokenizer, d, d.system_prompt)
    prompts = prompts[: cfg.bon.prompts]
    g = cfg.generation
    generator = GENERATORS[g.backend](policy, tokenizer.pad_token_id, eos_ids(tokenizer, policy) if g.stop_at_eos
                                      else [], **g.options)
    params, gen = SamplingParams(g.max_new_tokens, g.temperature, g.top_p), stream(cfg.train.seed, "sampling")
    placement = cfg.model.placement(torch.device("cpu"))  # next to the policy, which samples on the CPU here
    proxy_rm = build_reward(cfg.rewards, placement)
    gold_rm = build_reward(cfg.gold, placement) if cfg.gold else None
    N = cfg.bon.pool
    ns = cfg.bon.ns or default_ns(N)
    sums = {n: [0.0, 0.0] for n in ns}
    picks = []
    for p in prompts:
        samples: list[Sample] = []
        for start in range(0, N, cfg.bon.batch_size):
            k = min(cfg.bon.batch_size, N - start)
            out = generator.sample([p.input_ids] * k, params, gen)
            samples += make_samples([p] * k, decode_responses(tokenizer, out), out.finished)
        texts = [s.response for s in samples]
        proxy = score_batch(proxy_rm, samples).total  # (N,)
        gold = score_batch(gold_rm, samples).total if gold_rm is not None else None
        for n in ns:
            e_proxy, e_gold = best_of_n(proxy, gold, n)
            sums[n][0] += e_proxy
            sums[n][1] += e_gold or 0.0
        best = int(torch.argmax(proxy))
        picks.append({"prompt": p.user_text, "response": texts[best], "proxy": float(proxy[best]),
                      **({"gold": float(gold[best])} if gold is not None else {})})
    generator.release()  # an engine process (generation.backend vllm) goes now
    table = [{"n": n, "kl_bon": kl_bon(n), "proxy": sums[n][0] / len(prompts),
              **({"gold": sums[n][1] / len(prompts)} if gold_rm is not None else {})} for n in ns]
    out_dir = Path(cfg.logging.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "bon.json", json.dumps({"pool": N, "prompts": len(prompts), "table": table},
                                                       indent=2))
    atomic_write_text(out_dir / "picks.jsonl", "".join(json.dumps(r) + "\n" for r in picks))
    return {"table": table, "picks": picks}


def format_bon(table: list[dict]) -> str:
    gold = "gold" in table[0]
    lines = ["     n   KL_bon   proxy" + ("     gold" if gold else "")]
    for r in table:
        lines.append(f"{r['n']:>6}  {r['kl_bon']:7.3f}  {r['proxy']:6.3f}" + (f"  {r['gold']:7.3f}" if gold else ""))
    return "\n".join(lines)
