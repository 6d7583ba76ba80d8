"""The members of a reward-model ensemble, scored with as few backbones as their folders allow (issue #5).

Three ways to hold k members, each with ``member_scores(samples) -> (k, B)``:

- :class:`SeparateMembers` — k independent reward sources (k backbones in memory, k passes);
- :class:`SharedHeads` — members that differ only in their ``score`` head (``model.trainable: head``): one
  backbone in memory, **one** backbone pass, then a stacked (k, H) head. Identity of everything but the head is
  checked tensor by tensor, so a member that is not head-only is never silently scored with another's backbone;
- :class:`SharedLoRA` — LoRA reward models (``model.trainable: lora``) from the unmerged adapters that
  :func:`~blendrl.models.reward_model.save_reward_model` writes to ``final/adapter``: one base model in memory with
  k named peft adapters (each with its own head); k passes, one set of base weights.

:func:`load_members` picks one (``share: auto`` tries lora, then heads, then separate) or obeys an explicit choice.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..models.offload import mapped
from ..models.reward_model import ADAPTER_DIR, load_reward_model, load_rm_tokenizer
from .base import RewardError, Sample, score_batch
from .hf_rm import HFRewardModel

HEAD_PREFIX = "score."  # the sequence-classification head of every AutoModelForSequenceClassification we write


class SeparateMembers:
    """k reward sources, each scoring on its own."""

    def __init__(self, members: list) -> None:
        self.members = members

    def __len__(self) -> int:
        return len(self.members)

    def member_scores(self, samples: list[Sample]) -> torch.Tensor:
        return torch.stack([score_batch(m, samples).total for m in self.members])  # (k, B)


def _weights_files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise RewardError(f"{folder}: no *.safetensors weights (expected a save_pretrained reward-model folder)")
    return files


def _tensors(folder: Path) -> dict:
    """name → (file, lazily readable) for every tensor of a folder's safetensors shards."""
    return {key: file for file in _weights_files(folder) for key in _keys(file)}


def _keys(file: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        return list(f.keys())


def _read(file: Path, key: str) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        return f.get_tensor(key)


def backbone_mismatch(first: Path, other: Path) -> str | None:
    """Why ``other`` does not share ``first``'s backbone (first differing tensor), or None when everything but the
    ``score`` head is identical."""
    a, b = _tensors(first), _tensors(other)
    body_a = {k for k in a if not k.startswith(HEAD_PREFIX)}
    body_b = {k for k in b if not k.startswith(HEAD_PREFIX)}
    if body_a != body_b:
        return f"different tensor names (e.g. {sorted(body_a ^ body_b)[0]})"
    for key in sorted(body_a):
        if not torch.equal(_read(a[key], key), _read(b[key], key)):
            return f"tensor {key} differs"
    return None


class SharedHeads:
    """Head-only members on one backbone: one pass gives the (B, H) features, a stacked (k, H) head the scores."""

    def __init__(self, folders: list[Path], **options) -> None:
        folders = [Path(f) for f in folders]
        for f in folders[1:]:
            why = backbone_mismatch(folders[0], f)
            if why:
                raise RewardError(f"{f} does not share the backbone of {folders[0]} ({why}); use share: none")
        self.rm = HFRewardModel(str(folders[0]), name="shared-backbone", **options)
        heads = []
        for f in folders:
            files = _tensors(f)
            weight = [k for k in files if k.startswith(HEAD_PREFIX) and k.endswith("weight")]
            if len(weight) != 1 or any(k.startswith(HEAD_PREFIX) and k != weight[0] for k in files):
                raise RewardError(f"{f}: expected one bias-free head '{HEAD_PREFIX}weight', found "
                                  f"{sorted(k for k in files if k.startswith(HEAD_PREFIX))}")
            heads.append(_read(files[weight[0]], weight[0]).reshape(-1))  # (H,)
        self.heads = torch.stack(heads).float()  # (k, H)

    def __len__(self) -> int:
        return self.heads.shape[0]

    @torch.no_grad()
    def member_scores(self, samples: list[Sample]) -> torch.Tensor:
        out = []
        with mapped(self.rm.offloaded):  # the backbone's weights, read back when offloaded
            for enc, chunk in self.rm.batches(samples):
                hidden = self.rm.last_hidden(enc, chunk).float()  # (B, H)
                out.append(self.heads @ hidden.T)  # (k, B)
        return torch.cat(out, dim=1)  # (k, B)


def adapter_base(folder: Path) -> str | None:
    """The base model named by ``folder/adapter/adapter_config.json``, or None when there is no adapter."""
    cfg = Path(folder) / ADAPTER_DIR / "adapter_config.json"
    return json.loads(cfg.read_text()).get("base_model_name_or_path") if cfg.is_file() else None


class SharedLoRA:
    """LoRA members as named peft adapters on one base model; ``member_scores`` switches the active adapter."""

    def __init__(self, folders: list[Path], dtype: str = "float32", **options) -> None:
        from peft import PeftModel

        folders = [Path(f) for f in folders]
        bases = {adapter_base(f) for f in folders}
        if None in bases or len(bases) != 1:
            raise RewardError(f"share: lora needs every member to hold {ADAPTER_DIR}/ on one base model; "
                              f"bases found: {sorted(map(str, bases))}")
        base, _ = load_reward_model(bases.pop(), dtype)
        tokenizer = load_rm_tokenizer(str(folders[0]))  # the tokenizer the members were trained with
        self.names = [f"m{i}" for i in range(len(folders))]
        model = PeftModel.from_pretrained(base, str(folders[0] / ADAPTER_DIR), adapter_name=self.names[0])
        for name, f in zip(self.names[1:], folders[1:]):
            model.load_adapter(str(f / ADAPTER_DIR), adapter_name=name)
        self.rm = HFRewardModel(str(folders[0]), name="shared-lora", loaded=(model.eval(), tokenizer), **options)

    def __len__(self) -> int:
        return len(self.names)

    def member_scores(self, samples: list[Sample]) -> torch.Tensor:
        out = []
        for name in self.names:
            self.rm.model.set_adapter(name)
            out.append(self.rm.score(samples).total)
        return torch.stack(out)  # (k, B)


SHARE_MODES = ("auto", "lora", "heads", "none")


def load_members(folders: list, share: str = "auto", **options):
    """The k members at ``folders`` as one scorer. ``share``: ``lora`` (adapters on one base), ``heads`` (one
    backbone, k heads), ``none`` (k separate models) or ``auto`` (default: lora if every folder holds an adapter on
    the same base, else heads if the backbones are identical, else none). ``options`` go to each reward model
    (``batch_size``, ``max_length``, ``dtype``)."""
    if share not in SHARE_MODES:
        raise ValueError(f"ensemble share: expected one of {', '.join(SHARE_MODES)}, got {share!r}")
    folders = [Path(f) for f in folders]
    for f in folders:
        if not f.is_dir():
            raise RewardError(f"ensemble member {f} is not a folder")
    if share == "auto":
        bases = {adapter_base(f) for f in folders}
        if None not in bases and len(bases) == 1:
            share = "lora"
        else:
            try:
                return SharedHeads(folders, **options)  # checks the backbones once, tensor by tensor
            except RewardError as exc:
                logging.getLogger("blendrl").info("ensemble: %s; loading the members separately", exc)
                share = "none"
    if share == "lora":
        return SharedLoRA(folders, **options)
    if share == "heads":
        return SharedHeads(folders, **options)
    return SeparateMembers([HFRewardModel(str(f), name=f"rm{i}", **options) for i, f in enumerate(folders)])
