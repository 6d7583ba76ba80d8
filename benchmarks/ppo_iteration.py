"""Seconds per iteration and peak RSS: blendrl vs TRL on the same work, next to this machine's floor.

Same run, same settings for every row: SmolLM2-135M-Instruct (fp32, CPU), 8 prompts from the built-in set, 48
response tokens (EOS does not stop generation on either side: TRL ``stop_token=None`` / ``min_new_tokens``,
blendrl ``generation.stop_at_eos=false``), temperature 0.7, KL coefficient 0.05 (k1, in the reward), full
fine-tuning of the policy and of a critic initialised from the same reward model (SmolLM2 with a seeded scalar head).

Rows:
  blendrl PPO (1 and 4 epochs, and LoRA r=16 on policy and critic) vs ``trl.experimental.ppo.PPOTrainer`` (TRL 1.12);
  blendrl RLOO vs ``trl.RLOOTrainer`` (TRL 1.16), 8 prompts × 2 samples;
  every row on the defaults, which keep the frozen reference and reward model in files between uses
  (``model.offload_frozen: auto``), except: ``-in-mem`` keeps them in memory (``offload_frozen: false``);
  ``-ckpt`` adds ``model.gradient_checkpointing: true``; ``-mb8`` trains in micro-batches of 8 sequences (no-grad
  passes over all 16: ``forward_batch_size``); ``-mi`` rows run under mimalloc instead of glibc's malloc
  (``blendrl --allocator mimalloc``: the library preloaded).
The floor is measured in the same run, before the first row and after the last (this machine drifts by up to ~25%
within a run; the faster of the two counts, a floor being a lower bound): the passes each algorithm needs
(forwards, forward+backward+AdamW steps) timed on the same batch, plus decoding at the memory roofline (weight
bytes / measured read bandwidth per step).

Each row runs in its own process (peak RSS is that process's ru_maxrss); TRL runs in its own virtual environment
under ``.bench_venvs/`` that this script creates with pip (torch==2.13.0 from the local wheel).

    python benchmarks/ppo_iteration.py                # everything (17-60 min here, as the machine drifts)
    python benchmarks/ppo_iteration.py --skip-trl     # blendrl rows and the floor only
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".bench_venvs"
N_PROMPTS, RESPONSE_LEN, TEMPERATURE, KL_COEF = 8, 48, 0.7, 0.05
TRL_PINS = {"1.12.0": "trl==1.12.0", "1.16.0": "trl==1.16.0"}
SHARED_PINS = ["torch==2.13.0", "transformers==5.23.0", "accelerate==1.15.0", "peft==0.21.2", "datasets", "rich"]


# ----------------------------------------------------------------------------------------------- shared set-up
def bench_paths() -> dict:
    """Model folder, reward-model folder and prompt file (created once under the blendrl cache)."""
    sys.path.insert(0, str(ROOT))
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from blendrl.data.builtin import BUILTIN_PROMPTS
    from blendrl.models import cache_root, resolve_model

    model_dir = resolve_model("smollm2-135m-instruct")
    rm_dir = cache_root() / "bench" / "smollm2-rm-seed0"
    if not (rm_dir / "config.json").is_file():
        torch.manual_seed(0)
        rm = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
        rm.config.pad_token_id = rm.config.eos_token_id
        rm.save_pretrained(rm_dir)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(rm_dir)
    prompts = cache_root() / "bench" / "prompts.jsonl"
    rows = BUILTIN_PROMPTS["concise"]()[:N_PROMPTS]
    prompts.write_text("".join(json.dumps({"prompt": r["prompt"]}) + "\n" for r in rows))
    return {"model": model_dir, "rm": str(rm_dir), "prompts": str(prompts)}


def trl_python(version: str) -> str:
    """The interpreter of a venv holding TRL ``version`` (created on first use)."""
    venv = VENVS / f"trl-{version}"
    py = venv / "bin" / "python"
    if not (venv / ".ok").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *SHARED_PINS,
                        TRL_PINS[version]], check=True)
        (venv / ".ok").touch()
    return str(py)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# ----------------------------------------------------------------------------------------------- blendrl rows
def blendrl_worker(paths: dict, algo: str, epochs: int, lora: bool, iters: int, offload: bool | str | None = None,
                   ckpt: bool = False, micro: int | None = None, forward: int | None = None,
                   allocator: str = "glibc") -> dict:
    import torch

    from blendrl.core import malloc
    from blendrl.config import PPORunConfig, from_dict
    from blendrl.training.run import build_trainer

    active = malloc.active_allocator()
    if active != allocator:
        raise RuntimeError(f"this row needs allocator {allocator}; {active} serves malloc")

    torch.set_num_threads(os.cpu_count() or 2)
    k = 2 if algo == "rloo" else 1
    data = {
        "model": {"name": paths["model"], "gradient_checkpointing": ckpt,
                  **({} if offload is None else {"offload_frozen": offload}),  # None: the default (auto)
                  **({"lora": {"r": 16, "alpha": 32}} if lora else {})},
        "critic": {"init": "reward_model", "path": paths["rm"], "lr": 1e-6,
                   **({"lora": {"r": 16, "alpha": 32}} if lora else {})},
        "generation": {"max_new_tokens": RESPONSE_LEN, "temperature": TEMPERATURE, "stop_at_eos": False},
        "rewards": [{"kind": "hf_rm", "path": paths["rm"]}],
        "kl": {"kind": "k1", "coef": KL_COEF},
        "algorithm": {"name": algo, "epochs": epochs},
        "data": {"prompts": paths["prompts"], "eval_prompts": None},
        "train": {"iterations": iters + 1, "prompts_per_iteration": N_PROMPTS, "samples_per_prompt": k,
                  "micro_batch_size": micro or N_PROMPTS * k, "forward_batch_size": forward, "lr": 1e-6, "seed": 0},
        "logging": {"output_dir": tempfile.mkdtemp(), "tensorboard": False, "progress": False},
    }
    trainer = build_trainer(from_dict(PPORunConfig, data))
    times, parts = [], []
    for _ in range(iters + 1):  # the first iteration is warm-up
        t0 = time.perf_counter()
        m = trainer.step().metrics
        times.append(time.perf_counter() - t0)
        parts.append({k: m[k] for k in m if k.startswith("time/")})
    return {"s_per_iter": statistics.median(times[1:]), "all": times, "parts": parts[-1], "rss_gb": peak_rss_gb()}


# ----------------------------------------------------------------------------------------------- TRL rows
def _step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_train_begin(self, args, state, control, **kw):
            self.marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            self.marks.append(time.perf_counter())

    return StepTimer()


def trl_ppo_worker(paths: dict, epochs: int, iters: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    torch.set_num_threads(os.cpu_count() or 2)
    tok = AutoTokenizer.from_pretrained(paths["model"], padding_side="left")
    prompts = [json.loads(line)["prompt"] for line in open(paths["prompts"])]
    ids = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
    ids = [x["input_ids"] if isinstance(x, dict) or hasattr(x, "keys") else x for x in ids]
    ds = Dataset.from_dict({"input_ids": ids * (iters + 1)})
    policy = AutoModelForCausalLM.from_pretrained(paths["model"])
    ref = AutoModelForCausalLM.from_pretrained(paths["model"])
    rm = AutoModelForSequenceClassification.from_pretrained(paths["rm"], num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(paths["rm"], num_labels=1)
    args = PPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=N_PROMPTS, gradient_accumulation_steps=1,
        num_mini_batches=1, local_rollout_forward_batch_size=N_PROMPTS, num_ppo_epochs=epochs,
        response_length=RESPONSE_LEN, total_episodes=N_PROMPTS * (iters + 1), learning_rate=1e-6, stop_token=None,
        temperature=TEMPERATURE, kl_coef=KL_COEF, kl_estimator="k1", num_sample_generations=0, report_to="none",
        save_strategy="no", logging_steps=1, bf16=False, fp16=False, use_cpu=True, seed=0,
    )
    timer = _step_timer()
    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=rm,
                         train_dataset=ds, value_model=value, callbacks=[timer])
    trainer.train()
    steps = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
    return {"s_per_iter": statistics.median(steps[1:]), "all": steps, "rss_gb": peak_rss_gb()}


def trl_rloo_worker(paths: dict, iters: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import RLOOConfig, RLOOTrainer

    torch.set_num_threads(os.cpu_count() or 2)
    tok = AutoTokenizer.from_pretrained(paths["model"])
    prompts = [json.loads(line)["prompt"] for line in open(paths["prompts"])]
    ds = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in prompts] * (iters + 1)})
    rm = AutoModelForSequenceClassification.from_pretrained(paths["rm"], num_labels=1)
    rm_tok = AutoTokenizer.from_pretrained(paths["rm"])
    args = RLOOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=2 * N_PROMPTS, num_generations=2,
        gradient_accumulation_steps=1, max_completion_length=RESPONSE_LEN,
        generation_kwargs={"min_new_tokens": RESPONSE_LEN}, temperature=TEMPERATURE, beta=KL_COEF,
        num_iterations=1, learning_rate=1e-6, max_steps=iters + 1, logging_steps=1, report_to="none",
        save_strategy="no", bf16=False, fp16=False, use_cpu=True, seed=0, shuffle_dataset=False,
    )
    timer = _step_timer()
    model = AutoModelForCausalLM.from_pretrained(paths["model"])
    trainer = RLOOTrainer(model=model, reward_funcs=rm, args=args, train_dataset=ds, processing_class=tok,
                          reward_processing_classes=rm_tok, callbacks=[timer])
    trainer.train()
    steps = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
    return {"s_per_iter": statistics.median(steps[1:]), "all": steps, "rss_gb": peak_rss_gb()}


# ----------------------------------------------------------------------------------------------- the floor
def floor_worker(paths: dict, reps: int = 3) -> dict:
    """Time the passes on the PPO batch: LM forward, backbone forward, fwd+bwd+AdamW of each; decode roofline."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 2)
    tok = AutoTokenizer.from_pretrained(paths["model"])
    prompts = [json.loads(line)["prompt"] for line in open(paths["prompts"])]
    p_len = max(len(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                            tokenize=True, return_dict=True)["input_ids"]) for p in prompts)
    lm = AutoModelForCausalLM.from_pretrained(paths["model"])
    critic = AutoModelForTokenClassification.from_pretrained(paths["rm"], num_labels=1)

    def timed(fn):
        fn()
        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return min(out)

    result = {"prompt_len": p_len}
    for n_seq in (N_PROMPTS, 2 * N_PROMPTS):
        x = torch.randint(100, 1000, (n_seq, p_len + RESPONSE_LEN))
        opt_lm = torch.optim.AdamW(lm.parameters(), lr=1e-9, fused=True)
        opt_cr = torch.optim.AdamW(critic.parameters(), lr=1e-9, fused=True)

        def fwd_lm():
            with torch.no_grad():
                lm(input_ids=x, logits_to_keep=RESPONSE_LEN + 1)

        def fwd_bb():
            with torch.no_grad():
                critic(input_ids=x)

        def step(model, opt, **kw):
            def fn():
                out = model(input_ids=x, **kw).logits
                loss = out.float().logsumexp(-1).mean() if out.shape[-1] > 1 else out.mean()  # LM or critic head
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            return fn

        result[n_seq] = {
            "fwd_lm": timed(fwd_lm), "fwd_backbone": timed(fwd_bb),
            "step_lm": timed(step(lm, opt_lm, logits_to_keep=RESPONSE_LEN + 1)),
            "step_critic": timed(step(critic, opt_cr)),
        }
        del opt_lm, opt_cr
    # decode roofline per step: max(read every weight once at the measured bandwidth, FLOPs at measured peak)
    big = torch.ones(256 * 1024 * 1024 // 4)  # 256 MiB
    bw = big.numel() * 4 / timed(lambda: big.sum())
    a = torch.randn(2048, 2048)
    flops = 2 * 2048**3 / timed(lambda: a @ a)
    n_params = sum(p.numel() for p in lm.parameters())
    result["bandwidth_gb_s"], result["gflops"] = bw / 1e9, flops / 1e9
    for n_seq in (N_PROMPTS, 2 * N_PROMPTS):
        result[f"decode_step_s_{n_seq}"] = max(n_params * 4 / bw, 2 * n_seq * n_params / flops)
    result["decode_tokens_per_s_b16"] = 16 / max(n_params * 4 / bw, 2 * 16 * n_params / flops)
    return result


def fastest_floor(floors: list[dict]) -> dict:
    """The floor is a lower bound: of several measurements keep each pass's fastest time and the highest
    bandwidth and FLOP rate (so the decode roofline is the fastest too)."""
    best = json.loads(json.dumps(floors[0]))
    for other in floors[1:]:
        for key, value in other.items():
            if isinstance(value, dict):
                best[key] = {k: min(v, value[k]) for k, v in best[key].items()}
            elif key in ("bandwidth_gb_s", "gflops", "decode_tokens_per_s_b16"):
                best[key] = max(best[key], value)
            elif key.startswith("decode_step_s_"):
                best[key] = min(best[key], value)
    best["measurements"] = floors
    return best


def floor_for(fl: dict, algo: str, epochs: int) -> float:
    """Decode at the roofline + the passes the algorithm needs on its batch."""
    if algo == "rloo":  # 16 sequences: ref forward, RM forward, one policy step
        f = fl[str(2 * N_PROMPTS)]
        return RESPONSE_LEN * fl[f"decode_step_s_{2 * N_PROMPTS}"] + f["fwd_lm"] + f["fwd_backbone"] + f["step_lm"]
    # PPO: ref and RM forwards, then per epoch a policy and a critic step. V_old needs no pass of its own: it is
    # the first critic step's forward (blendrl does that; TRL runs a separate no-grad critic pass).
    f = fl[str(N_PROMPTS)]
    return (RESPONSE_LEN * fl[f"decode_step_s_{N_PROMPTS}"] + f["fwd_lm"] + f["fwd_backbone"]
            + epochs * (f["step_lm"] + f["step_critic"]))


# ----------------------------------------------------------------------------------------------- driver
ROWS = {
    # name: (worker kind, its parameters); TRL kinds run in their own venvs
    "blendrl-ppo-1": ("blendrl", {"algo": "ppo", "epochs": 1, "lora": False}),
    "trl-ppo-1": ("trl_ppo", {"epochs": 1}),
    "blendrl-ppo-4": ("blendrl", {"algo": "ppo", "epochs": 4, "lora": False}),
    "trl-ppo-4": ("trl_ppo", {"epochs": 4}),
    "blendrl-ppo-1-lora": ("blendrl", {"algo": "ppo", "epochs": 1, "lora": True}),
    "blendrl-ppo-1-in-mem": ("blendrl", {"algo": "ppo", "epochs": 1, "lora": False, "offload": False}),
    "blendrl-rloo": ("blendrl", {"algo": "rloo", "epochs": 1, "lora": False}),
    "blendrl-rloo-in-mem": ("blendrl", {"algo": "rloo", "epochs": 1, "lora": False, "offload": False}),
    "blendrl-rloo-ckpt": ("blendrl", {"algo": "rloo", "epochs": 1, "lora": False, "ckpt": True}),
    "blendrl-rloo-mb8": ("blendrl", {"algo": "rloo", "epochs": 1, "lora": False, "micro": 8, "forward": 2 * N_PROMPTS}),
    "blendrl-ppo-1-mi": ("blendrl", {"algo": "ppo", "epochs": 1, "lora": False, "allocator": "mimalloc"}),
    "blendrl-rloo-mi": ("blendrl", {"algo": "rloo", "epochs": 1, "lora": False, "allocator": "mimalloc"}),
    "trl-rloo": ("trl_rloo", {}),
    "floor": ("floor", {}),
}
# Rows of runs before 2026-12-02 evening, when offload_frozen defaulted to false (their "blendrl-rloo" and
# "blendrl-ppo-*" rows kept the frozen models in memory): what --table needs to print those files.
RETIRED_ROWS = {name: ("blendrl", {"algo": algo, "epochs": epochs}) for name, algo, epochs in [
    ("blendrl-ppo-1-offload", "ppo", 1), ("blendrl-ppo-1-off-rm", "ppo", 1), ("blendrl-ppo-4-offload", "ppo", 4),
    ("blendrl-rloo-offload", "rloo", 1), ("blendrl-rloo-off-ckpt", "rloo", 1), ("blendrl-rloo-off-mb8", "rloo", 1),
    ("blendrl-rloo-off-mi", "rloo", 1)]}


def run_worker(name: str, iters: int) -> dict:
    kind, params = ROWS[name]
    python = sys.executable
    if kind == "trl_ppo":
        python = trl_python("1.12.0")
    elif kind == "trl_rloo":
        python = trl_python("1.16.0")
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    from blendrl.core import malloc

    env = {**malloc.preload_env(params.get("allocator", "glibc")), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    cmd = [python, __file__, "--worker", name, "--iters", str(iters), "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1][:200]}
    return json.loads(out.read_text())


def worker_main(name: str, iters: int, out: str) -> None:
    kind, params = ROWS[name]
    paths = json.loads(os.environ["BLENDRL_BENCH_PATHS"])
    if kind == "blendrl":
        res = blendrl_worker(paths, iters=iters, **params)
    elif kind == "trl_ppo":
        res = trl_ppo_worker(paths, iters=iters, **params)
    elif kind == "trl_rloo":
        res = trl_rloo_worker(paths, iters=iters)
    else:
        res = floor_worker(paths)
    Path(out).write_text(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2, help="measured iterations per row (after one warm-up)")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--rows", nargs="*", default=list(ROWS))
    ap.add_argument("--worker")
    ap.add_argument("--out")
    ap.add_argument("--json", help="also write all results here")
    ap.add_argument("--table", metavar="JSON", help="print the table of a saved run (a --json file) and exit")
    ap.add_argument("--device", help="cuda[:N] (or cpu): blendrl's rows on that device with tokens/s and MFU "
                    "(benchmarks/ppo_device.py) instead of the CPU comparison with TRL")
    ap.add_argument("--arch", default="qwen2-0.5b", help="with --device: qwen2-0.5b or tiny (random weights)")
    ap.add_argument("--precision", default="bf16", help="with --device: train.mixed_precision")
    ap.add_argument("--peak-tflops", type=float, help="with --device: the device's peak for the MFU column")
    ap.add_argument("--tokenizer", help="with --device: a tokenizer folder (default SmolLM2's)")
    ap.add_argument("--prompts", default="builtin:concise", help="with --device: the prompt set")
    args = ap.parse_args()
    if args.device:
        sys.path.insert(0, str(ROOT))
        from benchmarks.ppo_device import run as run_device

        rows = run_device(args.device, args.arch, args.iters, args.precision, args.peak_tflops, args.tokenizer,
                          args.prompts)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    if args.worker:
        return worker_main(args.worker, args.iters, args.out)
    if args.table:
        results = json.loads(Path(args.table).read_text())
        return print_table(results, [r for r in results if r != "floor"])  # in the order the run wrote them
    os.environ["BLENDRL_BENCH_PATHS"] = json.dumps(bench_paths())
    rows = [r for r in args.rows if not (args.skip_trl and r.startswith("trl")) and r != "floor"]
    results, floors = {}, []
    for name in ["floor", *rows, "floor"]:  # the floor first and last: this machine drifts during a run
        t0 = time.time()
        res = run_worker(name, args.iters)
        if name == "floor":
            floors.append(res)
        else:
            results[name] = res
        print(f"  {name}: {json.dumps(res)[:300]}  ({time.time() - t0:.0f}s)", flush=True)
    results["floor"] = fastest_floor(floors)
    print_table(results, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def print_table(results: dict, rows: list[str]) -> None:
    fl = results["floor"]
    f8 = fl[str(N_PROMPTS)]
    print(f"\nfloor: bandwidth {fl['bandwidth_gb_s']:.1f} GB/s, {fl['gflops']:.0f} GFLOP/s fp32, decode roofline "
          f"{fl['decode_tokens_per_s_b16']:.0f} tok/s at batch 16; 8 seqs × {fl['prompt_len']}+{RESPONSE_LEN} tokens: "
          f"forward {f8['fwd_lm']:.2f} s, fwd+bwd+AdamW {f8['step_lm']:.2f} s\n")
    cols = ["row".ljust(22), "s/iter".rjust(7), "× floor".rjust(7), "peak RSS GB", "vs TRL speed", "RSS / TRL"]
    header = "| " + " | ".join(cols) + " |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name in rows:
        if name == "floor":
            continue
        r = results[name]
        if "error" in r:
            print(f"| {name:<22} | error: {r['error']}")
            continue
        _, params = ROWS[name] if name in ROWS else RETIRED_ROWS[name]
        algo = params.get("algo", "rloo" if "rloo" in name else "ppo")
        floor = floor_for(fl, algo, params.get("epochs", 1))
        peer = {}
        if name.startswith("blendrl"):  # compared with TRL's row of the same algorithm and epochs
            peer = results.get("trl-rloo" if algo == "rloo" else f"trl-ppo-{params.get('epochs', 1)}", {})
        speed = f"{peer['s_per_iter'] / r['s_per_iter']:.2f}×" if "s_per_iter" in peer else "-"
        rss = f"{r['rss_gb'] / peer['rss_gb']:.2f}" if "rss_gb" in peer else "-"
        print(f"| {name:<22} | {r['s_per_iter']:7.1f} | {r['s_per_iter'] / floor:7.2f} | {r['rss_gb']:11.2f} |"
              f" {speed:>12} | {rss:>9} |")


if __name__ == "__main__":
    main()
