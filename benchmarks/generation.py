"""Decode throughput on SmolLM2-135M-Instruct (fp32, CPU): HF ``generate`` vs blendrl's sampling loop.

Same prompts, same batch, same number of new tokens (EOS does not stop either side), same temperature. Also
prints the memory roofline (weight bytes / measured read bandwidth per decode step) and checks that blendrl's
behaviour log-probs equal a training forward's (the exactness the trainer relies on).

    python benchmarks/generation.py [--batch 16] [--tokens 48] [--kernels] [--no-vllm]

Rows: HF generate; blendrl with the decode-step linears through ``F.linear`` (oneDNN-packed LM head), i.e.
``BLENDRL_CPU_KERNELS=0``; blendrl with its CPU kernel (:mod:`blendrl.rollout.cpu_gemm`). The two blendrl rows are
timed alternately, best of ``--reps``. ``--kernels`` adds the read bandwidth of each SmolLM2 projection shape.
With vLLM set up (``.venv-vllm``), a ``generation.backend: vllm`` row (fp32 engine, ``--vllm-threads`` threads) and
its start-up, weight-sync time, sync share of a rollout plus its sync, and the time of a training forward beside
the idle engine against the same forward once the engine is gone (what colocation costs the trainer).
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
from blendrl.rollout import HFGenerator, SamplingParams, cpu_gemm, left_pad  # noqa: E402
from blendrl.training.experience import Experience, response_logprobs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kernels", action="store_true", help="also time each projection shape alone")
    ap.add_argument("--no-vllm", action="store_true", help="no vLLM rows")
    ap.add_argument("--vllm-threads", type=int, default=torch.get_num_threads())
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

    def blendrl_sample(kernel: bool):
        cpu_gemm.ENABLED = kernel
        rollout[kernel] = gen.sample(ids, params, torch.Generator().manual_seed(0))

    candidates = [("HF generate", hf_generate),
                  ("blendrl, F.linear", lambda: blendrl_sample(False)),
                  ("blendrl, cpu_gemm", lambda: blendrl_sample(True))]
    if not cpu_gemm.available():
        candidates.pop()
        print("cpu_gemm is unavailable here: no kernel row")
    engine = None if args.no_vllm else _vllm(model, tok, args.vllm_threads)
    if engine is not None:
        candidates.append(("vLLM engine (fp32)", lambda: rollout.__setitem__(
            "vllm", engine.sample(ids, params, torch.Generator().manual_seed(0)))))
    for _, fn in candidates:
        fn()  # warm-up
    best = {name: float("inf") for name, _ in candidates}
    for _ in range(args.reps):  # alternate, so that a drifting machine favours no row
        for name, fn in candidates:
            best[name] = min(best[name], _timed(fn))
    rows = [(name, s, n_new / s) for name, s in best.items()]
    big = torch.ones(64 * 1024 * 1024)
    bw = big.numel() * 4 / min(_timed(lambda: big.sum()) for _ in range(3))
    a = torch.randn(2048, 2048)
    flops = 2 * 2048**3 / min(_timed(lambda: a @ a) for _ in range(3))
    n_params = sum(p.numel() for p in model.parameters())
    roofline = args.batch / max(n_params * 4 / bw, 2 * args.batch * n_params / flops)
    gaps = []
    for r in rollout.values():  # blendrl F.linear, blendrl cpu_gemm, vLLM (the rows' order)
        exp = Experience.from_rollout(r)
        with torch.no_grad():
            logp = response_logprobs(model, exp, args.temperature)
        gaps.append(((logp - exp.behaviour_logp).abs() * exp.response_mask).max().item())

    print(f"\nSmolLM2-135M fp32, batch {args.batch}, {args.tokens} new tokens, {torch.get_num_threads()} threads")
    print("| sampler               | seconds | tokens/s |")
    print("|-----------------------|---------|----------|")
    for name, s, tps in rows:
        print(f"| {name:<21} | {s:7.2f} | {tps:8.1f} |")
    print(f"| roofline ({bw / 1e9:.0f} GB/s, {flops / 1e9:.0f} GFLOP/s) | | {roofline:8.1f} |")
    print("\nspeed-up over HF generate: " + ", ".join(f"{n} {tps / rows[0][2]:.2f}x" for n, _, tps in rows[1:]))
    print("max |behaviour logp - training forward logp|: " + ", ".join(f"{g:.2e}" for g in gaps))
    if engine is not None:
        _vllm_costs(engine, model, rollout["vllm"], args.temperature, best["vLLM engine (fp32)"])
    if args.kernels:
        _kernel_table(model, args.batch)


def _vllm(model, tok, threads: int):
    """The vLLM generator on ``model``, or None (with why) when vLLM is not set up."""
    from blendrl.rollout.on_vllm import VLLMGenerator, vllm_python

    try:
        vllm_python()
    except RuntimeError as e:
        print(f"no vLLM rows: {e}")
        return None
    t0 = time.perf_counter()
    engine = VLLMGenerator(model, tok.pad_token_id, [], threads=threads, check_every=0)
    engine.startup_s = time.perf_counter() - t0
    return engine


def _vllm_costs(engine, model, rollout, temperature: float, rollout_s: float) -> None:
    sync = min(_timed(lambda: engine.sync_weights(model)) for _ in range(3))
    exp = Experience.from_rollout(rollout)

    def forward():
        with torch.no_grad():
            response_logprobs(model, exp, temperature)

    beside = min(_timed(forward) for _ in range(3))
    engine.close()
    alone = min(_timed(forward) for _ in range(3))
    print(f"\nvLLM {engine.info.get('vllm')}: start-up {engine.startup_s:.1f} s (engine {engine.info['startup_s']:.1f} "
          f"s), weight sync {sync:.2f} s (engine load {engine.sync_seconds:.2f} s), sync share of rollout + sync "
          f"{sync / (sync + rollout_s):.0%}; training forward of the batch {beside:.2f} s beside the idle engine, "
          f"{alone:.2f} s without it")


def _kernel_table(model, rows: int) -> None:
    """GB/s of weight read per projection shape of layer 0 and the LM head: F.linear, oneDNN packed, cpu_gemm.
    Each shape is timed over copies of its weight that together exceed the L3 share a decode step sees."""
    from blendrl.rollout.static_decode import _packed_linear

    layer = model.model.layers[0]
    shapes = {"q_proj": layer.self_attn.q_proj, "k_proj": layer.self_attn.k_proj,
              "gate_proj": layer.mlp.gate_proj, "down_proj": layer.mlp.down_proj,
              "lm_head": model.get_output_embeddings()}
    print(f"\n| projection (batch {rows}) |  N × K       | F.linear GB/s | oneDNN packed | cpu_gemm |")
    print("|------------------------|--------------|---------------|---------------|----------|")
    for name, lin in shapes.items():
        n, k = lin.weight.shape
        copies = [torch.nn.Linear(k, n, bias=False) for _ in range(max(2, int(600e6 // (n * k * 4))))]
        x = torch.randn(rows, k)
        fns = {"F.linear": [c.forward for c in copies], "packed": [_packed_linear(c, rows) for c in copies]}
        if cpu_gemm.available():
            fns["cpu_gemm"] = [cpu_gemm.LinearGroup([c], rows) for c in copies]
        speeds = {}
        with torch.no_grad():
            for label, calls in fns.items():
                best = min(_timed(lambda: [f(x) for f in calls]) for _ in range(3))
                speeds[label] = len(calls) * n * k * 4 / best / 1e9
        print(f"| {name:<22} | {n:>5} × {k:<5} | {speeds['F.linear']:13.1f} | {speeds['packed']:13.1f} | "
              f"{speeds.get('cpu_gemm', float('nan')):8.1f} |")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
