"""Chunked token log-probs from hidden states: the formula on hand numbers, gradients equal to plain autograd, and
the training forward's plain-head path equal to the full-logits path."""
import math

import pytest
import torch

from blendrl.models.logprob_head import token_logprobs
from tests.tiny import build_model, build_tokenizer


def test_token_logprobs_on_hand_computed_values():
    hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # logits: [1, 0, 1] and [0, 1, 1]
    targets = torch.tensor([0, 1])
    logp = token_logprobs(hidden, weight, targets, temperature=1.0, chunk=1)
    assert torch.allclose(logp, torch.full((2,), 1 - math.log(2 * math.e + 1)), atol=1e-6)  # −0.86203
    tempered = token_logprobs(hidden, weight, targets, temperature=2.0)
    assert torch.allclose(tempered[0], torch.tensor(0.5 - math.log(2 * math.exp(0.5) + 1)), atol=1e-6)  # −0.95802
    logp[0].backward()
    p = torch.tensor([math.e, 1.0, math.e]) / (2 * math.e + 1)  # softmax of row 0
    expected = weight[0] - p @ weight  # ∂ log p_t / ∂h = W_t − Σ_j p_j W_j = [0.15536, −0.57768]
    assert torch.allclose(hidden.grad[0], expected, atol=1e-6) and torch.equal(hidden.grad[1], torch.zeros(2))


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_token_logprobs_and_gradients_equal_the_plain_expression(chunk):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (7,), generator=g)
    upstream = torch.randn(7, generator=g, dtype=torch.float64)
    plain = torch.log_softmax(hidden @ weight.t() / 0.7, dim=-1).gather(1, targets[:, None])[:, 0]
    grads_plain = torch.autograd.grad((plain * upstream).sum(), [hidden, weight])
    ours = token_logprobs(hidden, weight, targets, 0.7, chunk)
    grads_ours = torch.autograd.grad((ours.double() * upstream).sum(), [hidden, weight])
    assert torch.allclose(ours.double(), plain, atol=1e-6)
    for a, b in zip(grads_ours, grads_plain):
        assert torch.allclose(a, b, atol=1e-5)


def test_training_forward_plain_head_path_equals_full_logits_path(monkeypatch):
    import blendrl.training.experience as experience
    from blendrl.rollout import HFGenerator, SamplingParams

    tok = build_tokenizer()
    model = build_model(tok, seed=1)
    gen = HFGenerator(model, tok.pad_token_id, [tok.eos_token_id])
    prompts = [tok("what is the sun ?")["input_ids"], tok("hello")["input_ids"], tok("a b")["input_ids"]]
    exp = experience.Experience.from_rollout(
        gen.sample(prompts, SamplingParams(max_new_tokens=6, temperature=0.9), torch.Generator().manual_seed(0)))
    P = exp.prompt_len
    exp.response_mask[1, 2:] = 0.0  # a row that ended after 2 tokens: its padding comes back as 0
    exp.attention_mask[1, P + 2 :] = 0
    exp.response_mask[2] = 0.0  # a skipped sample (masked out after scoring): its tokens still get log-probs
    weights = torch.randn(exp.response_mask.shape, generator=torch.Generator().manual_seed(2))

    def logp_and_grads():
        model.zero_grad(set_to_none=True)
        logp = experience.response_logprobs(model, exp, 0.9)
        (logp * weights).sum().backward()
        return logp.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    fast, fast_grads = logp_and_grads()
    monkeypatch.setattr(experience, "decoder_and_head", lambda m: None)  # force the full-logits path
    full, full_grads = logp_and_grads()
    assert torch.equal(fast[1, 2:], torch.zeros(4)) and (fast[2] < 0).all()
    assert torch.allclose(fast, full, atol=1e-5)
    assert fast_grads.keys() == full_grads.keys()
    for name in full_grads:
        assert torch.allclose(fast_grads[name], full_grads[name], atol=1e-5), name


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_entropy_and_its_gradient_equal_the_plain_expression(temperature):
    """H = −Σ p log p of softmax(hidden @ wᵀ / T), accumulated chunk by chunk (37 entries in chunks of 10), and the
    gradient of a·log p_t + b·H in hidden and weight, against autograd through the full logits."""
    from blendrl.models.logprob_head import token_logprobs

    g = torch.Generator().manual_seed(0)
    h = torch.randn(5, 8, generator=g).requires_grad_()
    w = torch.randn(37, 8, generator=g).requires_grad_()
    targets = torch.randint(0, 37, (5,), generator=g)
    a, b = torch.randn(5, generator=g), torch.randn(5, generator=g)
    logp, ent = token_logprobs(h, w, targets, temperature, chunk=10, entropy=True)
    ours = torch.autograd.grad((a * logp + b * ent).sum(), (h, w))
    full = torch.log_softmax(h @ w.t() / temperature, -1)
    want_logp, want_ent = full.gather(1, targets[:, None])[:, 0], -(full.exp() * full).sum(-1)
    assert torch.allclose(logp, want_logp, atol=1e-5) and torch.allclose(ent, want_ent, atol=1e-5)
    want = torch.autograd.grad((a * want_logp + b * want_ent).sum(), (h, w))
    assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(ours, want))
