"""One iteration's experience: the rollout laid out for training forwards, plus what scoring added."""
from __future__ import annotations

import torch

from ..models.logprob_head import token_logprobs
from ..models.layout import decoder_and_head, decoder_and_value_head
from ..models.prefix_sharing import suffix_hidden
from ..models.tied_grads import grads_in_place
from ..core.types import Experience, Rollout, pad_response
from ..rollout import left_pad


def micro_batches(exp: Experience, idx: torch.Tensor, size: int) -> list[torch.Tensor]:
    """``idx`` split into micro-batches of ``size`` rows after ordering them by prompt length, then response length,
    so that each :meth:`Experience.trimmed` micro-batch pads to rows like its own (dynamic batching as in
    OpenRLHF/verl). A gradient accumulated over the micro-batches, or a per-row output written back by index, does
    not depend on how rows are grouped."""
    P = exp.prompt_len
    prompt_len = exp.attention_mask[idx, :P].sum(1)  # (n,)
    response_len = exp.attention_mask[idx, P:].sum(1)  # (n,)
    order = torch.argsort(prompt_len * (exp.attention_mask.shape[1] + 1) + response_len, stable=True)
    return list(idx[order].split(size))


def forward_rows(fn, exp: Experience, forward_batch_size: int) -> torch.Tensor:
    """``fn(micro-batch) -> (b, T')`` over every row of ``exp`` in :func:`micro_batches` of ``forward_batch_size``
    trimmed rows, written back in row order: (B, T)."""
    T = exp.response_mask.shape[1]
    out = None
    for micro in micro_batches(exp, torch.arange(len(exp)), forward_batch_size):
        part = pad_response(fn(exp.select(micro).trimmed()), T)  # (b, T)
        if out is None:
            out = part.new_zeros((len(exp), T))
        out[micro] = part
    return out if out is not None else exp.response_mask.new_zeros(exp.response_mask.shape)


def behaviour_logprobs(generator, exp: Experience, recompute, batch: int) -> float | None:
    """π_old of ``exp`` from the training forward where the generator's log-probs cannot be taken as they are.

    A generator whose log-probs are not the training forward's (``exact_logprobs`` false: another dtype or engine)
    gets them recomputed every batch; one that claims exactness is checked every ``check_every`` batches
    (``batch`` counts from 0) and a gap above its ``tolerance`` stops the run, since its rollouts would then be
    trained on as on-policy when they are not. ``recompute(exp) -> (B, T)``: the policy forward (run without
    grad). Returns the largest gap over response tokens (None when nothing was recomputed); ``exp.behaviour_logp``
    becomes the recomputed values and, for an inexact generator, ``exp.engine_logp`` keeps its own."""
    due = generator.check_every and batch % generator.check_every == 0
    if generator.exact_logprobs and not due:
        return None
    with torch.no_grad():
        own = recompute(exp)
    sampled = exp.behaviour_logp
    gap = ((sampled - own).abs() * exp.response_mask).max().item() if exp.response_mask.numel() else 0.0
    if generator.exact_logprobs and not gap <= generator.tolerance:
        raise RuntimeError(f"generation: the generator's log-probs differ from the training forward's by {gap:.3g} "
                           f"(tolerance {generator.tolerance:g}) at batch {batch}: its weights or numerics are not "
                           "the policy's (a stale engine?); the run stops rather than train on them as on-policy")
    if not generator.exact_logprobs:
        exp.engine_logp = sampled  # what the tokens were drawn with: the TIS weights' denominator
    exp.behaviour_logp = own
    return gap


def response_logprobs(model, exp: Experience, temperature: float, entropy: bool = False):
    """Log-probs of the response tokens under ``softmax(logits / temperature)``. → (B, T), 0 on padding; with
    ``entropy`` also that softmax's entropy at each response position (B, T), from the same pass (differentiable).

    Every sampled token gets its log-prob (padding is what the attention mask leaves out, past EOS), including the
    rows of skipped samples whose ``response_mask`` was zeroed after scoring. For plain-head models
    (:func:`blendrl.models.layout.decoder_and_head`) the decoder's hidden states at those positions go through
    :func:`blendrl.models.logprob_head.token_logprobs` (chunked: no (B, T, V) logits tensor, forward or backward), and a
    prompt that several rows share runs once (:func:`blendrl.models.prefix_sharing.suffix_hidden`); a tied head
    switched by :func:`blendrl.models.tied_grads.accumulate_tied_grads_in_place` adds its gradient in place.
    Other models: only the last T+1 positions go through the LM head (``logits_to_keep``). Both give the numbers
    of a full forward (up to float rounding).
    """
    T = exp.response_mask.shape[1]
    keep = exp.attention_mask[:, exp.prompt_len :] > 0  # (B, T) the sampled tokens
    parts = decoder_and_head(model)
    if parts is None:
        logits = model(
            input_ids=exp.input_ids, attention_mask=exp.attention_mask, position_ids=exp.position_ids,
            logits_to_keep=T + 1, use_cache=False,
        ).logits[:, :-1].float() / temperature  # (B, T, V)
        picked = logits.gather(-1, exp.response_ids[..., None])[..., 0]  # (B, T)
        lse = torch.logsumexp(logits, dim=-1)  # (B, T)
        logp = (picked - lse) * keep  # (B, T)
        if not entropy:
            return logp
        return logp, (lse - (torch.softmax(logits, -1) * logits).sum(-1)) * keep  # (B, T) each
    decoder, head = parts
    hidden = suffix_hidden(decoder, exp.input_ids, exp.attention_mask, exp.position_ids, exp.prompt_len)  # (B, T+1, H)
    states = hidden[:, :T][keep]  # (n, H): the state before each kept response token
    out = token_logprobs(states, head.weight, exp.response_ids[keep], temperature,
                         accumulate_grad=grads_in_place(head.weight), entropy=entropy)  # (n,), or two

    def spread(x):  # (n,) → (B, T), 0 on padding
        return torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_scatter(keep, x)

    return (spread(out[0]), spread(out[1])) if entropy else spread(out)


def response_values(critic, exp: Experience) -> torch.Tensor:
    """Critic values of the states before each response token (a shared prompt runs once, as in
    :func:`response_logprobs`). → (B, T)."""
    P, T = exp.prompt_len, exp.response_mask.shape[1]
    parts = decoder_and_value_head(critic)
    if parts is not None:
        decoder, head = parts
        hidden = suffix_hidden(decoder, exp.input_ids, exp.attention_mask, exp.position_ids, P)  # (B, T+1, H)
        return head(hidden[:, :T])[..., 0].float()  # (B, T)
    values = critic(
        input_ids=exp.input_ids, attention_mask=exp.attention_mask, position_ids=exp.position_ids, use_cache=False
    ).logits[..., 0]  # (B, L)
    return values[:, P - 1 : P + T - 1].float()  # (B, T)


def teacher_forced_experience(prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                              finished) -> Experience:
    """An Experience for given (prompt, response) token lists (left-padded prompts, right-padded responses) and
    ``finished`` ((B,) bool or list: each response ended with EOS — the caller knows, nothing here guesses);
    ``behaviour_logp`` is zeros until the caller fills it."""
    prompt_ids, prompt_mask = left_pad(prompts, pad_id)
    width = max(len(r) for r in responses)
    response_ids = torch.full((len(responses), width), pad_id, dtype=torch.long)
    response_mask = torch.zeros((len(responses), width))
    for i, r in enumerate(responses):
        response_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        response_mask[i, : len(r)] = 1.0
    finished = torch.as_tensor(finished, dtype=torch.bool)
    if finished.shape != (len(responses),):
        raise ValueError(f"teacher_forced_experience: {len(responses)} responses, {tuple(finished.shape)} flags")
    return Experience.from_rollout(Rollout(prompt_ids, prompt_mask, response_ids, response_mask,
                                           torch.zeros_like(response_mask), finished))


def dense_token_rewards(tokenizer, exp: Experience, per_char: list[list[float]]) -> torch.Tensor:
    """A dense reward given per character of each decoded response, summed onto the policy's response tokens: token
    i gets the characters its decoded prefix adds (``decode(ids[:i+1])`` minus ``decode(ids[:i])``); characters no
    token claims go to the last token, so each row keeps its total. → (B, T)."""
    out = torch.zeros_like(exp.response_mask)
    lengths = (exp.response_mask > 0).sum(1).tolist()
    for b, (ids, n, chars) in enumerate(zip(exp.response_ids.tolist(), lengths, per_char)):
        seen = 0
        for i in range(n):
            upto = min(len(tokenizer.decode(ids[: i + 1], skip_special_tokens=True)), len(chars))
            if upto > seen:
                out[b, i] = sum(chars[seen:upto])
                seen = upto
        if n and seen < len(chars):
            out[b, n - 1] += sum(chars[seen:])
    return out
