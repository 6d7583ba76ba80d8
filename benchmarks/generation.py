"""Decode throughput on SmolLM2-135M-Instruct (fp32, CPU): HF ``generate`` vs blendrl's sampling loop.

Same prompts, same batch, same number of new tokens (EOS does not stop either side), same temperature. Also
prints the memory roofline (weight bytes / measured read bandwidth per decode step) and checks that blendrl's
behaviour log-probs equal a training forward's (the exactness the trainer relies on).

    python benchmarks/generation.py [--batch 16] [--tokens 48]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blendrl.data import load_prompts  # noqa: E402
from blendrl.models import load_causal_lm, load_tokenizer, resolve_model  # noqa: E402
from blendrl.rollout import HFGenerator, SamplingParams, left_pad  # noqa: E402
from blendrl.training.experience import Experience, response_logprobs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    path = resolve_model("smollm2-135m-instruct")
    tok, model = load_tokenizer(path), load_causal_lm(path)
    prompts, _ = load_prompts("builtin:concise", tok, 256)
    ids = [p.input_ids for p in prompts[: args.batch]]
    n_new = args.batch * args.tokens

    def hf_generate():
        input_ids, mask = left_pad(ids, tok.pad_token_id)
        with torch.no_grad():
            model.generate(input_ids=input_ids, attention_mask=mask, do_sample=True, temperature=args.temperature,
                           top_k=0, top_p=1.0, max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                           pad_token_id=tok.pad_token_id)

    gen = HFGenerator(model, tok.pad_token_id, eos_ids=[])
    params = SamplingParams(args.tokens, args.temperature, 1.0)
    rollout = {}

    def blendrl_sample():
        rollout["r"] = gen.sample(ids, params, torch.Generator().manual_seed(0))

    rows = []
    for name, fn in [("HF generate", hf_generate), ("blendrl HFGenerator", blendrl_sample)]:
        fn()  # warm-up
        best = min(_timed(fn) for _ in range(args.reps))
        rows.append((name, best, n_new / best))
    big = torch.ones(64 * 1024 * 1024)
    bw = big.numel() * 4 / min(_timed(lambda: big.sum()) for _ in range(3))
    a = torch.randn(2048, 2048)
    flops = 2 * 2048**3 / min(_timed(lambda: a @ a) for _ in range(3))
    n_params = sum(p.numel() for p in model.parameters())
    roofline = args.batch / max(n_params * 4 / bw, 2 * args.batch * n_params / flops)
    exp = Experience.from_rollout(rollout["r"])
    with torch.no_grad():
        logp = response_logprobs(model, exp, args.temperature)
    gap = ((logp - exp.behaviour_logp).abs() * exp.response_mask).max().item()

    print(f"\nSmolLM2-135M fp32, batch {args.batch}, {args.tokens} new tokens, {torch.get_num_threads()} threads")
    print("| sampler               | seconds | tokens/s |")
    print("|-----------------------|---------|----------|")
    for name, s, tps in rows:
        print(f"| {name:<21} | {s:7.2f} | {tps:8.1f} |")
    print(f"| roofline ({bw / 1e9:.0f} GB/s, {flops / 1e9:.0f} GFLOP/s) | | {roofline:8.1f} |")
    print(f"\nspeed-up over HF generate: {rows[1][2] / rows[0][2]:.2f}x; "
          f"max |behaviour logp - training forward logp| = {gap:.2e}")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
