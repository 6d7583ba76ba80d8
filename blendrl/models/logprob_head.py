"""Log-probabilities of chosen tokens straight from hidden states, without the (N, V) logits tensor.

``token_logprobs(hidden, weight, targets, temperature)`` = ``log_softmax(hidden @ weightᵀ / temperature)[targets]``,
computed one vocabulary chunk at a time, forward and backward (a chunk's logits are recomputed in backward). The
same numbers and gradients as the plain expression, with one extra LM-head matmul in backward instead of a
(B, T, V) float tensor and its gradient (151 MB each on SmolLM2, V = 49152, at 16 × 48 response tokens), every
elementwise pass over which costs first-touch page faults of freshly mapped memory (docs/performance.md). It lives
with the models, not in :mod:`blendrl.functional`, because of its one side effect below.

The softmax derivative used in backward: ∂ log p_t / ∂ z_j = 1[j = t] − p_j with z = logits / temperature.

``accumulate_grad=True`` adds ∂weight into ``weight.grad`` in place (creating it, zero, when it is None) and hands
autograd no gradient for ``weight``: for an LM head tied to the input embedding whose lookup does the same
(:mod:`blendrl.models.tied_grads`), so that the two contributions meet in one buffer instead of two (V, H)
tensors summed at the end of backward. ``weight`` must then be a leaf (a parameter).
"""
from __future__ import annotations

import torch

_CHUNK_ELEMENTS = 4 * 1024 * 1024  # logits per chunk: 16 MB in fp32


def default_vocab_chunk(rows: int) -> int:
    """Vocabulary entries per chunk so that a chunk's logits (rows × chunk) stay near 16 MB (at least 256)."""
    return max(256, _CHUNK_ELEMENTS // max(rows, 1))


class _TokenLogprobs(torch.autograd.Function):
    """Chunked over the vocabulary: each chunk of the LM head is read once per pass and multiplies all N rows at
    once (one large matmul per chunk); the log-normaliser is accumulated online (running max and sum)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature: float, chunk: int, accumulate_grad: bool = False,
                want_entropy: bool = False):
        # hidden (N, H), weight (V, H), targets (N,) long → log p (N,), entropy (N,)
        N, V = hidden.shape[0], weight.shape[0]
        ctx.hidden_dtype = hidden.dtype
        hidden = hidden.to(weight.dtype)  # under autocast the decoder hands over bf16/fp16: the head runs in fp32
        run_max = torch.full((N,), -torch.inf, dtype=torch.float32, device=hidden.device)
        run_sum = torch.zeros_like(run_max)
        run_ez = torch.zeros_like(run_max)  # Σ_j e^{z_j − max} (z_j − max): the entropy's running numerator
        picked = torch.zeros_like(run_max)
        work = _Workspace(hidden, chunk)
        for v0 in range(0, V, chunk):
            z = work.logits(hidden, weight[v0 : v0 + chunk], temperature)  # (N, c)
            rows = ((targets >= v0) & (targets < v0 + chunk)).nonzero()[:, 0]  # rows whose target is here
            picked[rows] = z[rows, targets[rows] - v0]
            new_max = torch.maximum(run_max, z.amax(-1))  # (N,)
            scale = (run_max - new_max).exp()  # (N,) the old terms at the new max
            if want_entropy:
                shift = torch.where(torch.isfinite(run_max), run_max - new_max, torch.zeros_like(run_max))
                d = z.sub_(new_max[:, None])  # (N, c) z − new_max, in place
                e = torch.exp(d, out=work.second(d))  # (N, c) e^{z − new_max}
                # Σ e·(z − new_max), a batched dot; the old Σ e'·(z − old_max) moves by (old_max − new_max)·Σ e'
                run_ez = (run_ez + shift * run_sum) * scale + torch.bmm(e.unsqueeze(1), d.unsqueeze(2)).view(-1)
            else:
                e = z.sub_(new_max[:, None]).exp_()  # (N, c) e^{z − new_max}, in place
            run_sum = run_sum * scale + e.sum(-1)
            run_max = new_max
        lse = run_max + run_sum.log()  # (N,)
        z_mean = run_max + run_ez / run_sum if want_entropy else torch.full_like(lse, torch.nan)  # (N,) Σ_j p_j z_j
        ctx.save_for_backward(hidden, weight, targets, lse, z_mean)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.param = weight if accumulate_grad else None  # the leaf whose .grad backward adds into
        return picked - lse, lse - z_mean

    @staticmethod
    def backward(ctx, grad_out, grad_entropy):
        hidden, weight, targets, lse, z_mean = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.zeros_like(hidden) if need_h else None
        grad_w, in_place = None, need_w and ctx.param is not None
        if in_place:
            if ctx.param.grad is None:
                ctx.param.grad = torch.zeros_like(weight)
            into = ctx.param.grad  # (V, H)
        elif need_w:
            grad_w = torch.empty_like(weight)
        g_out = grad_out.float() if grad_out is not None else torch.zeros_like(lse)  # (N,)
        g_ent = None if grad_entropy is None or not grad_entropy.any() else grad_entropy.float()  # (N,)
        work = _Workspace(hidden, ctx.chunk)
        for v0 in range(0, weight.shape[0], ctx.chunk):
            w = weight[v0 : v0 + ctx.chunk]  # (c, H)
            z = work.logits(hidden, w, ctx.temperature)  # (N, c)
            if g_ent is not None:  # ∂H/∂z_j = −p_j (z_j − Σ_k p_k z_k)
                centred = z - z_mean[:, None]  # (N, c)
                g = z.sub_(lse[:, None]).exp_()  # (N, c) p
                g = g.mul_(-(g_out[:, None] + g_ent[:, None] * centred))
            else:
                g = z.sub_(lse[:, None]).exp_().mul_(-g_out[:, None])  # (N, c): −p_j · g
            rows = ((targets >= v0) & (targets < v0 + ctx.chunk)).nonzero()[:, 0]
            g[rows, targets[rows] - v0] += g_out[rows]  # + 1[j = t] · g
            g = g.div_(ctx.temperature).to(weight.dtype)  # ∂/∂logits of this chunk
            if need_h:
                grad_h.addmm_(g, w)
            if in_place:
                into[v0 : v0 + ctx.chunk].addmm_(g.t(), hidden)
            elif need_w:
                torch.mm(g.t(), hidden, out=grad_w[v0 : v0 + ctx.chunk])
        if grad_h is not None:
            grad_h = grad_h.to(ctx.hidden_dtype)
        return grad_h, grad_w, None, None, None, None, None


class _Workspace:
    """One (N, chunk) buffer reused by every chunk of a pass: a fresh tensor per chunk pays first-touch page faults
    on every chunk (as much as the chunk's matmul on CPU)."""

    def __init__(self, hidden: torch.Tensor, chunk: int) -> None:
        self.flat = torch.empty(hidden.shape[0] * chunk, dtype=hidden.dtype, device=hidden.device)

    def second(self, like: torch.Tensor) -> torch.Tensor:
        """A second buffer of ``like``'s shape (float32), made once per pass."""
        if getattr(self, "_second", None) is None or self._second.numel() < like.numel():
            self._second = torch.empty(like.numel(), dtype=torch.float32, device=like.device)
        return self._second[: like.numel()].view(like.shape)

    def logits(self, hidden: torch.Tensor, w: torch.Tensor, temperature: float) -> torch.Tensor:
        """``hidden @ wᵀ / temperature`` as float32, written into the buffer. → (N, c)"""
        out = self.flat[: hidden.shape[0] * w.shape[0]].view(hidden.shape[0], w.shape[0])
        return torch.mm(hidden, w.t(), out=out).float().div_(temperature)


def token_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                   chunk: int | None = None, accumulate_grad: bool = False, entropy: bool = False):
    """``log_softmax(hidden @ weightᵀ / temperature, -1)`` at ``targets``, chunked over the vocabulary (see module
    doc). hidden (N, H), weight (V, H) (the LM head, no bias), targets (N,) long → (N,) float32; differentiable in
    ``hidden`` and ``weight``. ``chunk``: vocabulary entries per chunk, default :func:`default_vocab_chunk`;
    ``accumulate_grad``: ∂weight goes into ``weight.grad`` in place (module doc), default False. ``entropy``: also
    return each row's entropy of that softmax, ``H = lse − Σ_j p_j z_j`` (N,), accumulated in the same pass and
    differentiable too (``∂H/∂z_j = −p_j (z_j − Σ_k p_k z_k)``)."""
    if accumulate_grad and not weight.is_leaf:
        raise ValueError("token_logprobs(accumulate_grad=True) needs a leaf weight (a parameter)")
    size = chunk or default_vocab_chunk(hidden.shape[0])
    with torch.autocast(hidden.device.type, enabled=False):  # the head and its log-softmax in the weight's dtype
        logp, ent = _TokenLogprobs.apply(hidden, weight, targets, float(temperature), size, bool(accumulate_grad),
                                         bool(entropy))
    return (logp, ent) if entropy else logp  # without ``entropy`` none of it is computed
