"""Reward models: a sequence-classification head (1 label) on a causal-LM backbone, read at the last real token.

Training and scoring render a conversation the same way (:func:`render_conversation`), so a folder written by
:func:`save_reward_model` scores in ``blendrl ppo`` (reward source ``hf_rm``) exactly as it did in training.
"""
from __future__ import annotations

import copy
from pathlib import Path

from ..core.fsutil import atomic_dir
from .lean import use_lean_layers
from .loading import ModelNotFoundError, resolve_model, torch_dtype
from .lora import is_peft

# Config attributes that hold dropout probabilities across common architectures.
_DROPOUT_KEYS = ("attention_dropout", "hidden_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob",
                 "resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout", "classifier_dropout")


def render_conversation(tokenizer, prompt: list[dict], response: str) -> str:
    """The text a reward model reads: the chat template over prompt + assistant response (or lines joined)."""
    messages = [*prompt, {"role": "assistant", "content": response}]
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return "\n".join(m["content"] for m in messages)


def load_rm_tokenizer(path: str):
    """Tokenizer of a reward model: right padding (the score is read at the last real token), pad = EOS if unset."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load tokenizer of '{path}': {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_reward_model(name: str, dtype: str = "float32", dropout: float | None = None, lean: bool = False):
    """``(model, tokenizer)``: ``AutoModelForSequenceClassification(num_labels=1)`` from a backbone or RM folder.

    A causal-LM backbone gets a fresh ``score`` head (HF init). ``dropout`` overrides every dropout knob of the
    config (None keeps the model's own values); ``lean`` as :func:`~blendrl.models.loading.load_causal_lm` (for a
    model that trains); the model is returned in eval mode.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(path)
        config.num_labels = 1
        if dropout is not None:
            for key in _DROPOUT_KEYS:
                if hasattr(config, key):
                    setattr(config, key, dropout)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "score.weight newly initialized" is expected for a backbone
        try:
            model = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch_dtype(dtype))
        finally:
            hf_logging.set_verbosity(verbosity)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load reward model '{name}': {exc}") from None
    tokenizer = load_rm_tokenizer(path)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if lean:
        use_lean_layers(model)
    return model.eval(), tokenizer


ADAPTER_DIR = "adapter"  # where a LoRA reward model's unmerged adapter (+ its head) is kept, inside its folder


def save_reward_model(model, tokenizer, folder: Path, base_name: str | None = None) -> Path:
    """``save_pretrained`` (safetensors) + tokenizer into ``folder`` atomically, dropout reset to 0 so that a plain
    transformers load scores deterministically even in train mode.

    A LoRA model is saved merged (a copy) and also unmerged in ``folder/adapter`` (peft ``save_pretrained``, with
    ``base_name`` — e.g. the alias ``smollm2-135m-instruct`` — as its base model), so that an ensemble of LoRA reward
    models can share one base in memory (:mod:`blendrl.rewards.shared_backbone`)."""
    with atomic_dir(Path(folder)) as tmp:
        if is_peft(model):
            model.save_pretrained(tmp / ADAPTER_DIR)
            if base_name:
                _set_json(tmp / ADAPTER_DIR / "adapter_config.json", base_model_name_or_path=base_name)
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _zero_saved_dropout(tmp)
    return Path(folder)


def _set_json(file: Path, **values) -> None:
    import json

    data = json.loads(file.read_text())
    data.update(values)
    file.write_text(json.dumps(data, indent=2, sort_keys=True))


def _zero_saved_dropout(folder: Path) -> None:
    import json

    cfg_file = folder / "config.json"
    cfg = json.loads(cfg_file.read_text())
    for key in _DROPOUT_KEYS:
        if isinstance(cfg.get(key), (int, float)):
            cfg[key] = 0.0
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True))
