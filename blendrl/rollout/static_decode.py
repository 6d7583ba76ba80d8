"""A lean decode step for Llama-architecture causal LMs: static KV buffers and one Python pass over the layers.

HF's forward, called once per generated token, appends to a ``DynamicCache`` (a ``torch.cat`` of every layer's keys
and values: 6.6 ms per step at batch 16 on SmolLM2-135M), re-derives masks and builds output objects. Here the
prompt's keys and values (from HF's own prefill) are copied into buffers sized for the whole response, each step
writes one column in place and attends over a view. Everything else is computed by the layers' own modules —
projections (LoRA adapters included), norms, rotary embedding, activation — so the numbers are the HF forward's up
to fp32 rounding (tested against it). On CPU the LM head (49152 × 576 on SmolLM2, the largest matrix) runs through
oneDNN with its weight packed once per rollout.

Measured on SmolLM2-135M fp32, 2 cores, 48 tokens (2026-12-01): 62 → 48 ms per step at batch 8, 69 → 60 ms at
batch 16, before sampling (``benchmarks/generation.py`` has the whole sampler).

Models for which :func:`blendrl.models.layout.is_llama_layout` holds use it (Llama, and Qwen2 / Mistral without
sliding-window attention: the same layer); any other model takes HFGenerator's generic path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.layout import transformers_model


def _packed_linear(linear: torch.nn.Module, rows: int):
    """``linear`` as a oneDNN matmul with its weight reordered once for ``rows`` rows, or ``linear`` itself where
    that does not apply (not a plain fp32 ``nn.Linear`` on the CPU, or no oneDNN in this torch build)."""
    w = getattr(linear, "weight", None)
    if (type(linear) is not torch.nn.Linear or w.device.type != "cpu" or w.dtype != torch.float32
            or not torch.backends.mkldnn.is_available()):
        return linear
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(w.detach(), rows)
    except (AttributeError, RuntimeError):
        return linear
    bias = linear.bias

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

    return forward


class StaticKVDecoder:
    """Decode state for one rollout: per-layer key/value buffers (B, kv_heads, P + max_new_tokens, head_dim) filled
    with the prompt's cache, a key mask (B, 1, 1, P + max_new_tokens), and the next free column."""

    def __init__(self, model, cache, prompt_mask: torch.Tensor, max_new_tokens: int) -> None:
        base = transformers_model(model)
        self.inner, self.layers = base.model, base.model.layers
        B, P = prompt_mask.shape
        self.keys, self.values = [], []
        for i in range(len(self.layers)):
            k, v = cache.layers[i].keys, cache.layers[i].values  # (B, kv_heads, P, head_dim)
            kb = k.new_empty(B, k.shape[1], P + max_new_tokens, k.shape[3])
            vb = v.new_empty(B, v.shape[1], P + max_new_tokens, v.shape[3])
            kb[:, :, :P], vb[:, :, :P] = k, v
            self.keys.append(kb)
            self.values.append(vb)
        self.key_mask = torch.zeros(B, 1, 1, P + max_new_tokens, dtype=torch.bool, device=prompt_mask.device)
        self.key_mask[:, 0, 0, :P] = prompt_mask.bool()
        self.length = P
        self.lm_head = _packed_linear(base.get_output_embeddings(), B)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Feed ``tokens`` (B,) at ``positions`` (B, 1); → next-token logits (B, V)."""
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        t = self.length
        self.key_mask[:, 0, 0, t] = True
        mask = self.key_mask[..., : t + 1]  # (B, 1, 1, t+1)
        x = self.inner.embed_tokens(tokens[:, None])  # (B, 1, H)
        cos, sin = self.inner.rotary_emb(x, positions)  # (B, 1, head_dim)
        B = x.shape[0]
        for layer, kb, vb in zip(self.layers, self.keys, self.values):
            attn, mlp = layer.self_attn, layer.mlp
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(B, 1, -1, attn.head_dim).transpose(1, 2)  # (B, heads, 1, hd)
            k = attn.k_proj(h).view(B, 1, -1, attn.head_dim).transpose(1, 2)  # (B, kv_heads, 1, hd)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            kb[:, :, t : t + 1] = k
            vb[:, :, t : t + 1] = attn.v_proj(h).view(B, 1, -1, attn.head_dim).transpose(1, 2)
            o = F.scaled_dot_product_attention(q, kb[:, :, : t + 1], vb[:, :, : t + 1], attn_mask=mask,
                                               scale=attn.scaling, enable_gqa=True)  # (B, heads, 1, hd)
            x = x + attn.o_proj(o.transpose(1, 2).reshape(B, 1, -1))
            h = layer.post_attention_layernorm(x)
            x = x + mlp.down_proj(mlp.act_fn(mlp.gate_proj(h)) * mlp.up_proj(h))
        self.length = t + 1
        return self.lm_head(self.inner.norm(x))[:, -1]  # (B, V)
