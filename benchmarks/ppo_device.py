"""``python benchmarks/ppo_iteration.py --device cuda``: blendrl's PPO iteration on an accelerator, with tokens/s and
model FLOP utilisation (MFU) next to seconds per iteration.

The model is a random-initialised architecture built from its config (no download): ``--arch qwen2-0.5b`` (the
Qwen2-0.5B shape: 24 layers, hidden 896, 14 heads / 2 key-value heads, vocabulary 151936), or ``tiny`` (for a
CPU check of this script). Policy, critic and reward model are that architecture; 8 prompts of the built-in set,
48 response tokens, ``train.mixed_precision`` (default bf16), every row in this process one after another. With
vLLM set up, an RLOO row samples through ``generation.backend: vllm`` (a colocated engine, bfloat16 on a GPU,
float32 on the CPU; its log-probs recomputed by the trainer), the engine's start-up not counted.

Tokens/s counts the sampled tokens and every token of each training-side pass. MFU is the model FLOPs of one
iteration over its seconds and the device's peak: 2·N FLOPs per token of a forward (sampling, reference, reward
model, the critic's values), 6·N per token of a forward+backward (the policy's and the critic's updates, per
epoch), N the parameters without the embedding; ``--peak-tflops`` (default: 989 for an H100/H200 in bf16 dense).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

ARCHS = {
    "qwen2-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096,
                       tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, vocab_size=49152, max_position_embeddings=512, tie_word_embeddings=True),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def build_models(arch: str, tokenizer_dir: str, folder: Path) -> tuple[str, str]:
    """A random policy (causal LM) and reward model (sequence classification) of ``arch`` with the tokenizer of
    ``tokenizer_dir``, saved under ``folder``."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = dict(pad_token_id=tok.pad_token_id or tok.eos_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    policy, rm = folder / "policy", folder / "rm"
    Qwen2ForCausalLM(Qwen2Config(**ARCHS[arch], **ids)).save_pretrained(policy)
    Qwen2ForSequenceClassification(Qwen2Config(**ARCHS[arch], **ids, num_labels=1)).save_pretrained(rm)
    for f in (policy, rm):
        tok.save_pretrained(f)
    return str(policy), str(rm)


def _has_vllm() -> bool:
    from blendrl.rollout.on_vllm import vllm_python

    try:
        vllm_python()
        return True
    except RuntimeError as e:
        print(f"no vLLM row: {e}")
        return False


def iteration_flops(n_params: int, batch: int, prompt: int, response: int, epochs: int, critic: bool) -> float:
    tokens = batch * (prompt + response)
    forward = 2 * n_params * (batch * prompt + batch * response)  # sampling: prefill + decode
    forward += 2 * n_params * tokens * (2 + (1 if critic else 0))  # reference, reward model, critic values
    train = 6 * n_params * tokens * epochs * (2 if critic else 1)  # policy (+ critic) updates
    return float(forward + train)


def run(device: str, arch: str, iters: int, precision: str, peak_tflops: float | None, tokenizer: str | None,
        prompts: str) -> list[dict]:
    import torch

    from blendrl.config import PPORunConfig, from_dict
    from blendrl.models import resolve_model
    from blendrl.training.run import build_trainer

    folder = Path(tempfile.mkdtemp())
    policy, rm = build_models(arch, tokenizer or resolve_model("smollm2-135m-instruct"), folder)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    peak = peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    rows = []
    cases = [("PPO, 1 epoch", "ppo", 1, 1, "hf"), ("PPO, 4 epochs", "ppo", 4, 1, "hf"),
             ("RLOO (8×2)", "rloo", 1, 2, "hf")]
    if _has_vllm():
        cases.append(("RLOO (8×2), vLLM engine", "rloo", 1, 2, "vllm"))
    vllm_options = {"dtype": "bfloat16" if device.startswith("cuda") else "float32", "check_every": 0}
    for label, algo, epochs, k, backend in cases:
        data = {
            "model": {"name": policy, "device": device},
            "critic": {"init": "reward_model", "path": rm},
            "generation": {"max_new_tokens": 48, "temperature": 0.7, "stop_at_eos": False, "backend": backend,
                           "options": vllm_options if backend == "vllm" else {}},
            "rewards": [{"kind": "hf_rm", "path": rm}],
            "algorithm": {"name": algo, "epochs": epochs},
            "data": {"prompts": prompts, "eval_prompts": None},
            "train": {"iterations": iters + 1, "prompts_per_iteration": 8, "samples_per_prompt": k,
                      "micro_batch_size": 8 * k, "mixed_precision": precision, "lr": 1e-6, "seed": 0},
            "logging": {"output_dir": str(folder / algo / str(epochs)), "tensorboard": False, "progress": False},
        }
        trainer = build_trainer(from_dict(PPORunConfig, data))
        n = sum(p.numel() for n_, p in trainer.m.policy.named_parameters() if "embed" not in n_)
        times = []
        for _ in range(iters + 1):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        s = statistics.median(times[1:])
        batch = 8 * k
        prompt = 44  # the built-in prompts with the chat template, SmolLM2's tokenizer (about 44 tokens)
        flops = iteration_flops(n, batch, prompt, 48, epochs, algo == "ppo")
        passes = 2 + (1 if algo == "ppo" else 0) + epochs * (2 if algo == "ppo" else 1)  # ref, RM, values, updates
        tokens = batch * 48 + batch * (prompt + 48) * passes
        rows.append({"row": f"blendrl {label}", "s_per_iter": s, "tokens_per_s": tokens / s,
                     "mfu": None if peak is None else flops / s / (peak * 1e12), "params": n})
        if backend == "vllm":
            trainer.generator.close()
        del trainer
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    print(f"device: {name}; arch {arch}; mixed precision {precision}; peak {peak} TFLOP/s")
    print("| row | s/iter | tokens/s | MFU |\n|---|---|---|---|")
    for r in rows:
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        print(f"| {r['row']} | {r['s_per_iter']:.2f} | {r['tokens_per_s']:.0f} | {mfu} |")
    return rows
