"""Log-probabilities of chosen tokens straight from hidden states, without the (N, V) logits tensor.

``token_logprobs(hidden, weight, targets, temperature)`` = ``log_softmax(hidden @ weightᵀ / temperature)[targets]``,
computed ``chunk_rows`` rows at a time, forward and backward (the chunk's logits are recomputed in backward). The
same numbers and gradients as the plain expression, with one extra LM-head matmul in backward instead of a
(B, T, V) float tensor and its gradient: on SmolLM2 (V = 49152) at 16 × 48 response tokens those are 151 MB each,
and every elementwise pass over them (divide by temperature, logsumexp, gather's zero-filled gradient, ...) cost
0.2–0.25 s here, most of it first-touch page faults of freshly mapped memory.

The softmax derivative used in backward: ∂ log p_t / ∂ z_j = 1[j = t] − p_j with z = logits / temperature.
"""
from __future__ import annotations

import torch

_CHUNK_ELEMENTS = 4 * 1024 * 1024  # logits per chunk: 16 MB in fp32


def default_chunk_rows(vocab: int) -> int:
    """Rows per chunk so that a chunk's logits stay near 16 MB (at least 16 rows)."""
    return max(16, _CHUNK_ELEMENTS // max(vocab, 1))


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature: float, chunk_rows: int):
        # hidden (N, H), weight (V, H), targets (N,) long → (N,)
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(out)
        for s in range(0, hidden.shape[0], chunk_rows):
            z = (hidden[s : s + chunk_rows] @ weight.t()).float().div_(temperature)  # (c, V)
            lse[s : s + chunk_rows] = torch.logsumexp(z, dim=-1)
            out[s : s + chunk_rows] = z.gather(1, targets[s : s + chunk_rows, None])[:, 0] - lse[s : s + chunk_rows]
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.temperature, ctx.chunk_rows = temperature, chunk_rows
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, targets, lse = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight) if need_w else None
        for s in range(0, hidden.shape[0], ctx.chunk_rows):
            h = hidden[s : s + ctx.chunk_rows]  # (c, H)
            g_out = grad_out[s : s + ctx.chunk_rows].float()  # (c,)
            z = (h @ weight.t()).float().div_(ctx.temperature)  # (c, V)
            g = z.sub_(lse[s : s + ctx.chunk_rows, None]).exp_().mul_(-g_out[:, None])  # (c, V): −p_j · g
            rows = torch.arange(h.shape[0], device=h.device)
            g[rows, targets[s : s + ctx.chunk_rows]] += g_out  # + 1[j = t] · g
            g = g.div_(ctx.temperature).to(weight.dtype)  # ∂/∂logits
            if need_h:
                grad_h[s : s + ctx.chunk_rows] = g @ weight
            if need_w:
                grad_w.addmm_(g.t(), h)
        return grad_h, grad_w, None, None, None


def token_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                   chunk_rows: int | None = None) -> torch.Tensor:
    """``log_softmax(hidden @ weightᵀ / temperature, -1)`` at ``targets``, chunked over rows (see module doc).

    hidden (N, H), weight (V, H) (the LM head, no bias), targets (N,) long → (N,) float32; differentiable in
    ``hidden`` and ``weight``. ``chunk_rows`` default: :func:`default_chunk_rows`."""
    rows = chunk_rows or default_chunk_rows(weight.shape[0])
    return _TokenLogprobs.apply(hidden, weight, targets, float(temperature), rows)
