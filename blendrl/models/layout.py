"""What blendrl's fast paths need to know about a causal LM's layout, in one place.

- :func:`decoder_and_head`: the decoder (hidden states) and a plain LM head (``logits = hidden @ Wᵀ``, nothing
  after it) for model types known to compute logits that way — the training forwards then take log-probs from the
  hidden states in chunks (:func:`blendrl.models.logprob_head.token_logprobs`).
- :func:`is_llama_layout`: a full-attention Llama-layout decoder, which :mod:`blendrl.rollout.static_decode`
  steps layer by layer.
Anything else takes the generic path (the model's own ``forward``).
"""
from __future__ import annotations

import torch

PLAIN_HEAD_TYPES = ("llama", "qwen2", "mistral", "gpt2")  # logits = lm_head(last hidden state), no scaling/capping
LLAMA_LAYOUT_TYPES = ("llama", "qwen2", "mistral")


def transformers_model(model):
    """The transformers model under a LoRA peft wrapper, the model itself when unwrapped; None for other peft
    methods (they change the inputs in their own forward, so the decoder must not be called directly)."""
    get = getattr(model, "get_base_model", None)
    if not callable(get):
        return model
    configs = getattr(model, "peft_config", {})
    active = configs.get(getattr(model, "active_adapter", "default"))
    return get() if active is not None and str(getattr(active, "peft_type", "")).endswith("LORA") else None


def is_hf_rms_norm(norm: torch.nn.Module) -> bool:
    """One of transformers' RMSNorm modules (``LlamaRMSNorm``, ``Qwen2RMSNorm``, …): ``weight ·
    x / sqrt(mean(x²) + variance_epsilon)`` in fp32, with a float ``variance_epsilon`` and a ``weight``."""
    return (type(norm).__name__.endswith("RMSNorm") and isinstance(getattr(norm, "variance_epsilon", None), float)
            and isinstance(getattr(norm, "weight", None), torch.Tensor))


def is_sharded(model) -> bool:
    """The model is FSDP-sharded (``fully_shard``): its parameters are gathered by its own forward only, so the
    fast paths that call its parts directly step aside."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def decoder_and_head(model) -> tuple[torch.nn.Module, torch.nn.Linear] | None:
    """(decoder returning ``last_hidden_state``, LM head) when logits are exactly ``head(hidden)``, else None."""
    base = transformers_model(model)
    if base is None or is_sharded(model) or base.config.model_type not in PLAIN_HEAD_TYPES:
        return None
    head = base.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    return getattr(base, base.base_model_prefix), head


def decoder_and_value_head(critic) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(decoder, ``score`` head) of a token-classification critic whose values are exactly ``score(hidden)`` (its
    classifier dropout is off: p = 0 or eval mode), else None."""
    base = transformers_model(critic)
    head, dropout = getattr(base, "score", None), getattr(base, "dropout", None)
    if base is None or is_sharded(critic) or head is None or not isinstance(dropout, torch.nn.Dropout):
        return None
    if dropout.p != 0 and dropout.training:
        return None
    return getattr(base, base.base_model_prefix), head


def is_llama_layout(model) -> bool:
    """True for a full-attention Llama-layout causal LM (Llama; Qwen2 and Mistral without sliding windows)."""
    base = transformers_model(model)
    if base is None or base.config.model_type not in LLAMA_LAYOUT_TYPES or decoder_and_head(model) is None:
        return False
    cfg = base.config
    if getattr(cfg, "use_sliding_window", cfg.model_type == "mistral") and getattr(cfg, "sliding_window", None):
        return False
    if any(kind != "full_attention" for kind in (getattr(cfg, "layer_types", None) or [])):
        return False
    layer = base.model.layers[0]
    return not hasattr(layer.self_attn, "q_norm") and all(
        hasattr(layer.mlp, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn"))
