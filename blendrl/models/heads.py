"""Value and reward heads that plain transformers can load back.

The critic is an ``AutoModelForTokenClassification`` with one label: a scalar per token on the policy's (or a
reward model's) backbone. A reward model is an ``AutoModelForSequenceClassification``; blendrl reads its score at
the last real token itself, so a pad token equal to EOS (SmolLM2) does not move the read-out.
"""
from __future__ import annotations

import logging

import torch

from .lean import use_lean_layers
from .loading import ModelNotFoundError, torch_dtype


def load_critic(path: str, dtype: str = "float32", lean: bool = False):
    """A value model from a causal LM or a reward-model folder (its ``score`` head is reused when present);
    ``lean`` as :func:`~blendrl.models.loading.load_causal_lm`.

    Classifier dropout is 0 so that values are deterministic; the head has no bias so a sequence-classification
    reward model's ``score.weight`` carries over exactly.
    """
    from transformers import AutoConfig, AutoModelForTokenClassification

    try:
        config = AutoConfig.from_pretrained(path)
        config.num_labels = 1
        config.classifier_dropout = 0.0
        config.token_classification_bias = False
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # we report the one expected gap (a fresh head) ourselves
        try:
            critic, info = AutoModelForTokenClassification.from_pretrained(
                path, config=config, dtype=torch_dtype(dtype), output_loading_info=True
            )
        finally:
            hf_logging.set_verbosity(verbosity)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load critic from '{path}': {exc}") from None
    if info["missing_keys"]:
        logging.getLogger("blendrl").info(
            "critic: %s not in %s, initialised fresh", ", ".join(sorted(info["missing_keys"])), path
        )
    if critic.config.pad_token_id is None:  # 0 is a valid pad id
        critic.config.pad_token_id = critic.config.eos_token_id
    if lean:
        use_lean_layers(critic)
    return critic.eval()


def token_values(critic, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor):
    """Per-token values ``V`` for every position. Shapes: (B, L) → (B, L)."""
    return critic(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits[..., 0]


def _unwrapped(model):
    """The transformers model under a peft wrapper, else ``model``."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def backbone(model) -> torch.nn.Module:
    """The decoder (``last_hidden_state``) of a sequence-classification model or its peft wrapper."""
    inner = _unwrapped(model)
    return getattr(inner, inner.base_model_prefix)


def last_token_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Backbone hidden state of a sequence-classification model (or peft wrapper) at the last attended token of
    each right-padded row. Shapes: (B, L) → (B, H)."""
    hidden = backbone(model)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
    last = attention_mask.long().cumsum(1).argmax(1)  # (B,) index of the last 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last.to(hidden.device)]  # (B, H)


def score_head(model):
    """The scalar head ``score`` (the trainable copy under peft's modules_to_save)."""
    return _unwrapped(model).score


def last_token_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar score of a sequence-classification model at the last attended token of each right-padded row.

    Shapes: (B, L) → (B,).
    """
    return score_head(model)(last_token_hidden(model, input_ids, attention_mask))[:, 0].float()  # (B,)
