"""Atomic checkpoints that plain transformers can load, and exact resume.

Layout of ``<output_dir>/checkpoints/iter-000012/``::

    policy/            save_pretrained (safetensors) + tokenizer; LoRA runs hold the adapter folder
    critic/            save_pretrained of the value model (when the algorithm has one)
    cost_critic/       save_pretrained of PPO-Lagrangian's cost value model
    reference/         EMA reference weights (only when the reference moves)
    optim.pt           optimizer and LR-scheduler states
    trainer_state.pt   iteration, KL controller, reward statistics, prompt sampler, every RNG state
    config.yaml        the run's config (secrets never: API keys are named by environment variable)

Loading never executes code: the two ``.pt`` files hold tensors and plain containers only and are read with
``torch.load(weights_only=True)``; a file that needs anything else (a pickled object from elsewhere) is refused with
:class:`UnsafeCheckpointError`.

A checkpoint is written into a hidden temporary folder beside it and renamed into place, then ``latest`` (a text
file naming it) is replaced atomically; a run killed at any moment leaves either the old or the new checkpoint.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml

from ..core.fsutil import atomic_dir, atomic_write_text

LATEST = "latest"


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file that cannot be read without executing code."""


def rng_state(sampling_generator: torch.Generator) -> dict:
    """Every RNG state as tensors and plain Python values (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "sampling": sampling_generator.get_state(),
    }


def set_rng_state(state: dict, sampling_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    sampling_generator.set_state(state["sampling"])


def write_checkpoint(root: Path, name: str, fill, config: dict, trainer_state: dict, optim_state: dict,
                     keep: int = 2) -> Path:
    """Write checkpoint ``root/name`` atomically: ``fill(tmp)`` saves the models, then optim.pt, trainer_state.pt
    and config.yaml; then ``latest`` names it and only the newest ``keep`` checkpoints of the same prefix stay."""
    final = root / name
    with atomic_dir(final) as tmp:
        fill(tmp)
        torch.save(optim_state, tmp / "optim.pt")
        torch.save(trainer_state, tmp / "trainer_state.pt")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(root / LATEST, final.name)
    prefix = name.rsplit("-", 1)[0]
    for old in sorted(root.glob(f"{prefix}-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_checkpoint(
    root: Path, iteration: int, *, policy, tokenizer, critics: dict, reference, optim_state: dict,
    trainer_state: dict, config: dict, keep: int = 2, state_dicts: dict | None = None,
) -> Path:
    """Write the RL checkpoint ``iter-{iteration:06d}`` under ``root`` (see :func:`write_checkpoint`).
    ``critics``: folder name (``critic``, ``cost_critic``) → value model. ``state_dicts``: ``{"policy": ...,
    "critic": ...}`` whole weights to write instead of the models' own (a sharded model's, gathered)."""
    sd = state_dicts or {}

    def fill(tmp: Path) -> None:
        policy.save_pretrained(tmp / "policy", state_dict=sd.get("policy"))
        tokenizer.save_pretrained(tmp / "policy")
        for name, critic in critics.items():
            critic.save_pretrained(tmp / name, state_dict=sd.get(name))
        if reference is not None and reference.needs_saving:
            reference.save(tmp / "reference")

    return write_checkpoint(root, f"iter-{iteration:06d}", fill, config, trainer_state, optim_state, keep)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from ``--resume``: the folder itself, a ``checkpoints/`` folder, or a run folder."""
    path = Path(path)
    for root in (path, path / "checkpoints"):
        if (root / "trainer_state.pt").is_file():
            return root
        if (root / LATEST).is_file():
            ckpt = root / (root / LATEST).read_text().strip()
            if (ckpt / "trainer_state.pt").is_file():
                return ckpt
    raise FileNotFoundError(f"--resume {path}: no checkpoint found (expected trainer_state.pt or a 'latest' file)")


def load_state_file(path: Path) -> dict:
    """A ``.pt`` state file read without executing code (``weights_only=True``), or :class:`UnsafeCheckpointError`."""
    import pickle

    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path}: refusing to load: it needs more than tensors and plain containers, so reading it could "
            f"execute code (a checkpoint blendrl did not write?). {str(exc).splitlines()[0][:200]}") from None


def load_trainer_state(ckpt: Path) -> tuple[dict, dict]:
    """``(trainer_state, optim_state)`` of a checkpoint folder, read without executing code."""
    return load_state_file(ckpt / "trainer_state.pt"), load_state_file(ckpt / "optim.pt")


def load_weights(module, folder: Path) -> None:
    """Load a checkpoint's weights into an already built model (full model or LoRA adapters)."""
    from safetensors.torch import load_file

    from ..models.lora import is_peft

    if is_peft(module):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(module, load_file(str(folder / "adapter_model.safetensors")))
        return
    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(f)))
    missing, unexpected = module.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {folder} does not match the model: missing {missing}, unexpected {unexpected}")
