"""Tiny random models and a locally built tokenizer, so unit tests run in milliseconds without downloads."""
from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)
WORDS = (
    "the a an is of to in and what why how explain describe answer at most words child matter yes no "
    "volcano gravity planet ocean sun moon star river seed robot rocket snow cloud tide map wheel "
    "0 1 2 3 4 5 6 7 8 9 10 11 12 15 , . ? : ! hello world good bad blue red green cat dog"
).split()
SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "user", "assistant", "system"]


def _rm_words() -> list[str]:
    from blendrl.data.synthetic import VOCABULARY

    return WORDS + [w for w in VOCABULARY if w not in WORDS]


def build_tokenizer(words: list[str] | None = None):
    """The tiny word-level tokenizer over ``words`` (default WORDS; ``"rm"`` adds the synthetic preference task's
    vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = _rm_words() if words == "rm" else (words or WORDS)
    vocab = {tok: i for i, tok in enumerate(SPECIALS + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>",
        chat_template=CHAT_TEMPLATE,
    )


def build_model(tokenizer, seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    return LlamaForCausalLM(cfg).eval()


def save_tiny(folder: Path, seed: int = 0, words=None, **shape) -> Path:
    """A tiny model and its tokenizer in ``folder``; ``shape``: :func:`build_model`'s hidden/layers/heads/kv_heads
    (vLLM's CPU attention needs head_dim >= 32: ``hidden=64, heads=2, kv_heads=1``)."""
    tokenizer = build_tokenizer(words)
    model = build_model(tokenizer, seed, **shape)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_config(model_dir: Path, out_dir: Path, **overrides):
    """A PPORunConfig on the tiny model with a dense rule reward (share of 'yes' tokens)."""
    from blendrl.config import PPORunConfig, apply_overrides, from_dict

    data = {
        "model": {"name": str(model_dir)},
        "generation": {"max_new_tokens": 8, "temperature": 1.0},
        "rewards": [{"kind": "callable", "name": "tests.tiny:yes_share"}],
        "kl": {"coef": 0.0},
        "algorithm": {"name": "ppo", "epochs": 2, "vf_coef": 0.5},
        "critic": {"lr": 1e-3},
        "data": {"prompts": "builtin:concise", "eval_prompts": "builtin:concise_eval", "max_prompt_tokens": 64},
        "train": {"iterations": 4, "prompts_per_iteration": 4, "samples_per_prompt": 2, "lr": 3e-3,
                  "micro_batch_size": 4, "seed": 0},
        "logging": {"output_dir": str(out_dir), "tensorboard": False, "progress": False, "eval_prompts": 8},
    }
    apply_overrides(data, [f"{k}={v}" for k, v in overrides.items()])
    return from_dict(PPORunConfig, data)


def learn_yes(model_dir: Path, out_dir: Path, **overrides) -> tuple[float, float]:
    """30 iterations of :func:`tiny_config` with ``overrides``: the held-out reward before and after."""
    from blendrl.training.run import run

    res = run(tiny_config(model_dir, out_dir, **{"train.iterations": 30, **overrides}))
    return res["before"].metrics["eval/reward/mean"], res["after"].metrics["eval/reward/mean"]


def yes_share(prompt: str, response: str, metadata: dict) -> float:
    """Share of response words that are 'yes' (a dense reward a random tiny model can learn)."""
    words = response.split()
    return sum(w == "yes" for w in words) / max(1, len(words))


def slow_yes_share(prompt: str, response: str, metadata: dict) -> float:
    """``yes_share`` that takes 40 ms per sample, so a test can kill a run between checkpoints."""
    import time

    time.sleep(0.04)
    return yes_share(prompt, response, metadata)


# words the random tiny model often writes: a judge that forbids them fails most of its samples at the start
FORBID = ["no", "snow", "rocket", "robot", "seed"]


def tiny_cgpo_config(model_dir: Path, out_dir: Path, **overrides):
    """A CGPORunConfig on the tiny model: three tasks that all reward 'yes' and forbid the words of ``FORBID`` (a
    judge), one per optimizer (CRPG, CRRAFT with generated baselines, CODPO)."""
    from blendrl.config import apply_overrides, from_dict
    from blendrl.config.cgpo_schema import CGPORunConfig

    def task(name, optimizer, baseline="none"):
        return {"name": name, "prompts": "builtin:concise", "eval_prompts": "builtin:concise_eval",
                "rewards": [{"kind": "callable", "name": "tests.tiny:yes_share"}],
                "judges": [{"kind": "format", "name": "no_no", "options": {"forbid": FORBID, "max_repetition": None}}],
                "optimizer": {"name": optimizer, "kl_max": 50.0}, "calibration": {"baseline": baseline},
                "samples_per_prompt": 4, "prompts_per_iteration": 2}

    data = {
        "model": {"name": str(model_dir)},
        "generation": {"max_new_tokens": 8, "temperature": 1.0},
        "data": {"max_prompt_tokens": 64},
        "tasks": [task("crpg", "crpg"), task("crraft", "crraft", "generate"), task("codpo", "codpo")],
        "train": {"iterations": 4, "lr": 3e-3, "micro_batch_size": 4, "seed": 0},
        "logging": {"output_dir": str(out_dir), "tensorboard": False, "progress": False, "eval_prompts": 8},
    }
    apply_overrides(data, [f"{k}={v}" for k, v in overrides.items()])
    return from_dict(CGPORunConfig, data)


def die_once_share(prompt: str, response: str, metadata: dict) -> float:
    """:func:`yes_share`, but the first call on prompt 'q3' kills its process (tests of a worker that dies); the
    file ``metadata['die_marker']`` records that it did."""
    import os
    from pathlib import Path

    marker = Path(metadata["die_marker"])
    if prompt == "q3" and not marker.exists():
        marker.write_text("died")
        os._exit(1)
    return yes_share(prompt, response, metadata)


def word_share(prompt: str, response: str, metadata: dict) -> float:
    """Longer is better: the response's word count over 8 (a reward that pushes against a short-answer judge)."""
    return len(response.split()) / 8.0


def launch(command: list[str], config: Path, *extra: str):
    """``python -m blendrl.cli.main COMMAND --config CONFIG EXTRA...`` from the repository root, output captured."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.Popen([sys.executable, "-m", "blendrl.cli.main", *command, "--config", str(config), *extra],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_once_checkpointed(proc, run_dir: Path, name: str, timeout: float = 120) -> None:
    """SIGKILL ``proc`` as soon as ``run_dir`` holds checkpoint ``name`` or a later one, before it finishes."""
    import signal
    import time

    latest = run_dir / "checkpoints" / "latest"
    deadline = time.time() + timeout
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= name):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (run_dir / "final").exists(), "the run finished before it was killed"


def finish(proc, timeout: float = 300) -> str:
    """Wait for a :func:`launch` ed run; its output (asserting it succeeded)."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out
