"""A tied input embedding / LM head (SmolLM2, Qwen2-0.5B, …): both gradient contributions added in place into
``weight.grad``.

Autograd computes a tied weight's gradient as two (V, H) tensors, the head's (at the start of backward) and the
embedding lookup's (a dense zero-filled scatter at the end), sums them and only then hands the sum to ``.grad``.
On SmolLM2 (V = 49152, H = 576) each is 113 MB, and the second one arrives when the heap is most fragmented: on
the RLOO benchmark with offload it grew glibc's heap by 0.08–0.14 GB in each of the first two iterations.
With :func:`accumulate_tied_grads_in_place` the policy's lookup adds its rows into ``weight.grad`` (``index_add_``,
skipping ``padding_idx``) and :func:`blendrl.models.logprob_head.token_logprobs` adds the head's chunks there too
(``accumulate_grad=True``); neither hands autograd a gradient for the weight. The numbers are those of autograd
up to float rounding (the same terms, summed in another order).

The contract this changes: ``torch.autograd.grad`` no longer sees this weight's gradient (``.backward()`` and
everything reading ``.grad`` does). It is applied to the policy that the RL trainers build, never in the loaders
(MetaRM takes ``autograd.grad`` of reward models); a copy of the model (``copy.deepcopy``) gets plain gradients.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F

_MARK = "_blendrl_grads_in_place"  # set on a tied weight switched here (not carried by deepcopy or a new Parameter)


class _Lookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ids, weight, padding_idx):
        # ids (...,) long; weight (V, H) → (..., H)
        ctx.save_for_backward(ids)
        ctx.param, ctx.padding_idx = weight, padding_idx
        return F.embedding(ids, weight, padding_idx)

    @staticmethod
    def backward(ctx, grad_out):
        (ids,) = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            param = ctx.param
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            rows, grads = ids.reshape(-1), grad_out.reshape(-1, grad_out.shape[-1])  # (N,), (N, H)
            if ctx.padding_idx is not None:  # nn.Embedding leaves the padding row's gradient at zero
                keep = rows != ctx.padding_idx
                rows, grads = rows[keep], grads[keep]
            param.grad.index_add_(0, rows, grads.to(param.dtype))
        return None, None, None


def _lookup_forward(self, input_ids):
    if torch.is_grad_enabled() and self.weight.requires_grad and grads_in_place(self.weight):
        return _Lookup.apply(input_ids, self.weight, self.padding_idx)
    return type(self).forward(self, input_ids)


def accumulate_tied_grads_in_place(model) -> bool:
    """Switch ``model``'s tied embedding/head weight to in-place accumulation (module doc). False (and nothing
    changed) when the head is not tied to a plain ``nn.Embedding`` lookup (max_norm, scale_grad_by_freq or sparse
    gradients keep autograd's path)."""
    get_in, get_out = getattr(model, "get_input_embeddings", None), getattr(model, "get_output_embeddings", None)
    if not callable(get_in) or not callable(get_out):
        return False
    emb, head = get_in(), get_out()
    if type(emb) is not torch.nn.Embedding or head is None or getattr(head, "weight", None) is not emb.weight:
        return False
    if emb.max_norm is not None or emb.scale_grad_by_freq or emb.sparse:
        return False
    setattr(emb.weight, _MARK, True)
    emb.forward = types.MethodType(_lookup_forward, emb)
    return True


def grads_in_place(weight: torch.Tensor) -> bool:
    """True for a weight switched by :func:`accumulate_tied_grads_in_place`."""
    return getattr(weight, _MARK, False) is True
