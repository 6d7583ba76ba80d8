"""A lean decode step for Llama-architecture causal LMs: static KV buffers and one Python pass over the layers.

HF's forward, called once per generated token, appends to a ``DynamicCache`` (a ``torch.cat`` of every layer's keys
and values: 6.6 ms per step at batch 16 on SmolLM2-135M), re-derives masks and builds output objects. Here the
prompt's keys and values (from HF's own prefill) are copied into buffers sized for the whole response, each step
writes one column in place and attends over a view. The step computes what the HF layer computes, in fewer ops:

- projections: on the CPU, plain fp32 ones run through blendrl's skinny-GEMM kernel (:mod:`.cpu_gemm`), q/k/v
  and gate/up each as one call into one buffer; otherwise (GPU, LoRA-wrapped layers, no compiler) the modules' own
  forwards, and the LM head (49152 × 576 on SmolLM2, the largest matrix) through oneDNN with its weight packed once;
- RMSNorm as ``F.rms_norm`` with the module's weight and epsilon (HF's RMSNorm classes compute the same in fp32);
- the rotary embedding on the query and key heads together (HF's ``rotate_half`` formula);
- attention for one query as two small matmuls and a softmax over the grouped heads, as the fused layer does it
  (inside a decode step this costs about what SDPA's flash path did: ~115-120 µs a layer at batch 8, mostly
  reading the cache back after the weights have streamed through the caches).

With the kernel the whole layer is one call (:class:`.cpu_gemm.LlamaLayers`: the same steps in C++, one OpenMP
region); without it, or for layers it does not cover, the steps above run as torch ops. Either way the numbers are
the HF forward's up to fp32 rounding (tested against it on every path). Speed against HF ``generate``:
``benchmarks/generation.py`` (docs/performance.md).

Models for which :func:`blendrl.models.layout.is_llama_layout` holds use it (Llama, and Qwen2 / Mistral without
sliding-window attention: the same layer); any other model takes HFGenerator's generic path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.layout import is_hf_rms_norm, transformers_model
from . import cpu_gemm


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


def _projector(linears: list[torch.nn.Module], rows: int):
    """h (B, K) → ``torch.cat([m(h) for m in linears], -1)`` (B, ΣN): one :class:`cpu_gemm.LinearGroup` call when
    the kernel takes every module (its output buffer is overwritten by the next call), else each module's forward."""
    if all(cpu_gemm.supports(m, rows) for m in linears):
        return cpu_gemm.LinearGroup(linears, rows)
    if len(linears) == 1:
        return linears[0]
    return lambda h: torch.cat([m(h) for m in linears], dim=-1)


def _lm_head(linear: torch.nn.Module, rows: int):
    """h (B, K) → logits (B, V): the kernel, else the oneDNN-packed weight, else the module."""
    if cpu_gemm.supports(linear, rows):
        return cpu_gemm.LinearGroup([linear], rows)
    return _packed_linear(linear, rows)


def _rms_norm(norm: torch.nn.Module):
    """``norm`` as one ``F.rms_norm`` call when it is one of HF's RMSNorm modules (weight, ``variance_epsilon``),
    else the module."""
    if not is_hf_rms_norm(norm):
        return norm
    shape, weight, eps = (norm.weight.shape[0],), norm.weight, norm.variance_epsilon
    return lambda x: F.rms_norm(x, shape, weight, eps)


class StaticKVDecoder:
    """Decode state for one rollout: per-layer key/value buffers (B, kv_heads, P + max_new_tokens, head_dim) filled
    with the prompt's cache, an additive key mask (B, 1, 1, P + max_new_tokens) of 0 / -inf, and the next free
    column."""

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
        dtype = self.keys[0].dtype if self.keys else torch.float32
        self.key_bias = torch.full((B, 1, 1, P + max_new_tokens), float("-inf"), dtype=dtype,
                                   device=prompt_mask.device)
        self.key_bias[:, 0, 0, :P].masked_fill_(prompt_mask.bool(), 0.0)
        self.length = P
        attn = self.layers[0].self_attn
        self.head_dim, self.scaling = attn.head_dim, attn.scaling
        self.heads, self.kv_heads = attn.config.num_attention_heads, attn.config.num_key_value_heads
        self.final_norm = _rms_norm(self.inner.norm)
        self.lm_head = _lm_head(base.get_output_embeddings(), B)
        self.fused = None  # every layer in one kernel call each, where the kernel computes every layer
        if self.keys and self.keys[0].dtype == torch.float32 and all(
                cpu_gemm.fusable_llama_layer(layer, B) for layer in self.layers):
            self.fused = cpu_gemm.LlamaLayers(self.layers, self.keys, self.values, self.key_bias, B)
            return
        self.norms, self.qkv, self.o, self.gate_up, self.down = [], [], [], [], []  # the torch-ops step
        for layer in self.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.norms.append((_rms_norm(layer.input_layernorm), _rms_norm(layer.post_attention_layernorm)))
            self.qkv.append(_projector([attn.q_proj, attn.k_proj, attn.v_proj], B))
            self.o.append(_projector([attn.o_proj], B))
            self.gate_up.append(_projector([mlp.gate_proj, mlp.up_proj], B))
            self.down.append(_projector([mlp.down_proj], B))

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Feed ``tokens`` (B,) at ``positions`` (B, 1); → next-token logits (B, V), which the next step may
        overwrite (consume them first)."""
        t = self.length
        self.key_bias[:, 0, 0, t] = 0.0
        x = self.inner.embed_tokens(tokens)  # (B, D)
        cos, sin = self.inner.rotary_emb(x, positions)  # (B, 1, hd): broadcast over the heads below
        if self.fused is not None:
            self.fused.x.copy_(x)
            x = self.fused(cos[:, 0], sin[:, 0], t)
        else:
            x = self._torch_layers(x, cos, sin, t)
        self.length = t + 1
        return self.lm_head(self.final_norm(x))  # (B, V)

    def _torch_layers(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, t: int) -> torch.Tensor:
        """Every layer as torch ops, for one new token per row written to cache column ``t``: x (B, D) → (B, D)."""
        B, hd, H, KV = x.shape[0], self.head_dim, self.heads, self.kv_heads
        bias = self.key_bias[..., : t + 1]  # (B, 1, 1, t+1)
        for layer, (norm1, norm2), qkv, o_proj, gate_up, down, kb, vb in zip(
                self.layers, self.norms, self.qkv, self.o, self.gate_up, self.down, self.keys, self.values):
            qkv_out = qkv(norm1(x))  # (B, (H + 2·KV)·hd): q | k | v
            qk = qkv_out[:, : (H + KV) * hd].view(B, H + KV, hd)  # (B, H + KV, hd)
            half = hd // 2
            qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin  # rope (rotate_half)
            kb[:, :, t] = qk[:, H:]
            vb[:, :, t] = qkv_out[:, (H + KV) * hd :].view(B, KV, hd)
            q = (qk[:, :H] * self.scaling).view(B, KV, H // KV, hd)  # (B, KV, groups, hd): head h uses kv h // groups
            scores = torch.matmul(q, kb[:, :, : t + 1].transpose(-1, -2)) + bias  # (B, KV, groups, t+1)
            attn = torch.matmul(torch.softmax(scores, dim=-1), vb[:, :, : t + 1])  # (B, KV, groups, hd)
            x = x + o_proj(attn.reshape(B, H * hd))
            gu = gate_up(norm2(x))  # (B, 2·I): gate | up
            inter = gu.shape[1] // 2
            x = x + down(layer.mlp.act_fn(gu[:, :inter]) * gu[:, inter:])
        return x
