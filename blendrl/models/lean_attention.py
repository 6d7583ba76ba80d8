"""transformers' ``sdpa`` attention with grouped-query keys and values handed to the kernel as they are.

With a padding mask transformers repeats each key/value head for its query heads (``repeat_kv``: on SmolLM2,
3 → 9 heads) before ``scaled_dot_product_attention``, because CUDA's fast kernels take no mask with ``enable_gqa``.
The CPU flash kernel does: it is faster without the copies, its outputs are bit for bit equal and the keys' and
values' gradients equal to float rounding (autograd sums the repeated heads' gradients in another order). The
repeated copies were also what autograd kept for backward: 2 × (tokens, 576) floats per layer instead of
2 × (tokens, 192) on SmolLM2 (docs/performance.md).

:func:`use_kernel_gqa` switches a model whose attention is ``sdpa`` and grouped (fewer key/value heads than query
heads) to the registered implementation ``blendrl_sdpa``: on CPU, for a masked attention over more than one
query, it calls the kernel with ``enable_gqa=True``; every other call (CUDA, no mask, one query, softcapping,
position bias, a paged cache) is transformers' ``sdpa`` itself. ``config._attn_implementation`` is not written by
``save_pretrained``: saved models load as plain ``sdpa`` models.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .layout import transformers_model

NAME = "blendrl_sdpa"


def _sdpa_with_kernel_gqa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                          **kwargs):
    # query (B, H, Tq, D); key, value (B, Hkv, Tk, D); attention_mask (B or 1, 1, Tq, Tk) bool or additive
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (query.device.type != "cpu" or getattr(module, "num_key_value_groups", 1) == 1 or attention_mask is None
             or query.shape[2] == 1 or any(kwargs.get(k) is not None for k in ("softcap", "position_bias", "cache"))
             or kwargs.get("output_attentions", False))
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    # a mask is given, so transformers' sdpa would pass is_causal=False too
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                         scale=scaling, enable_gqa=True)  # (B, H, Tq, D)
    return out.transpose(1, 2).contiguous(), None  # (B, Tq, H, D)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, _sdpa_with_kernel_gqa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # the masks transformers builds for sdpa


def use_kernel_gqa(model: torch.nn.Module) -> int:
    """Switch ``model`` (a transformers model, or a LoRA peft wrapper of one) from ``sdpa`` to :data:`NAME` when
    its attention is grouped; returns 1 if switched, else 0 (another implementation, as many key/value heads as
    query heads, or another peft method). Idempotent."""
    base = transformers_model(model)
    config = getattr(base, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return 0
    heads, kv_heads = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None)
    if not heads or not kv_heads or kv_heads == heads:
        return 0
    _register()
    base.set_attn_implementation(NAME)
    return int(config._attn_implementation == NAME)
