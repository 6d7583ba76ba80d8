"""A tied embedding/head accumulating its gradient in place: autograd's numbers (to float rounding), the padding
row left out of the lookup's share, accumulation over several backward passes; untied models and copies keep
autograd's path."""
import copy

import torch

from blendrl.models.logprob_head import token_logprobs
from blendrl.models.tied_grads import accumulate_tied_grads_in_place, grads_in_place
from blendrl.training.experience import Experience, response_logprobs
from tests.test_rollout import _tiny_causal_lm
from tests.tiny import build_tokenizer


def test_lookup_and_head_add_into_one_buffer_on_hand_numbers():
    """V = 3, H = 2, padding_idx = 1. ids (0, 2, 2, 1) with upstream gradient rows (1, 2), (3, 4), (5, 6), (7, 8):
    the lookup adds row 0 += (1, 2), row 2 += (3, 4) + (5, 6) = (8, 10), the padding row nothing. The head at
    hidden (1, 0), target 0, temperature 1, weight rows w0 = (0, 0), w1 = (1, 0), w2 = (0, 0): z = (0, 1, 0),
    p = (1, e, 1)/(2 + e); ∂ log p_0/∂w_j = (1[j = 0] − p_j)·h, so the head adds ((1 − p_0), −p_1, −p_2) × (1, 0)."""
    emb = torch.nn.Embedding(3, 2, padding_idx=1)
    head = torch.nn.Linear(2, 3, bias=False)
    head.weight = emb.weight
    with torch.no_grad():
        emb.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = emb, head

        def get_input_embeddings(self):
            return self.emb

        def get_output_embeddings(self):
            return self.head

    assert accumulate_tied_grads_in_place(Model()) and grads_in_place(emb.weight)
    looked = emb(torch.tensor([0, 2, 2, 1]))  # (4, 2)
    upstream = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    logp = token_logprobs(torch.tensor([[1.0, 0.0]]), emb.weight, torch.tensor([0]), accumulate_grad=True)
    ((looked * upstream).sum() + logp.sum()).backward()
    e = torch.e
    p = torch.tensor([1.0, e, 1.0]) / (2 + e)
    expected = torch.tensor([[1.0, 2.0], [0.0, 0.0], [8.0, 10.0]])
    expected[:, 0] += torch.tensor([1.0, 0.0, 0.0]) - p
    torch.testing.assert_close(emb.weight.grad, expected)


def _batch(tok):
    ids = torch.randint(3, len(tok), (4, 10), generator=torch.Generator().manual_seed(5))
    attn = torch.ones_like(ids)
    attn[2, :3] = 0
    ids[attn == 0] = tok.pad_token_id
    response_mask = torch.ones(4, 4)
    return Experience(ids, attn, (attn.cumsum(1) - 1).clamp_min(0), response_mask, torch.zeros(4, 4))


def test_policy_gradients_match_autograd_and_accumulate_over_passes():
    tok = build_tokenizer()
    plain = _tiny_causal_lm("llama", tok)
    plain.config.tie_word_embeddings = True
    plain.tie_weights()
    assert plain.lm_head.weight is plain.model.embed_tokens.weight
    ours = copy.deepcopy(plain)
    assert not grads_in_place(ours.lm_head.weight)  # a copy is plain until switched
    assert accumulate_tied_grads_in_place(ours)
    exp = _batch(tok)
    for model in (plain, ours):
        for half in (slice(0, 2), slice(2, 4)):  # two backward passes accumulate (micro-batches)
            (response_logprobs(model, exp.select(torch.arange(4)[half]), 0.7) ** 2).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), ours.parameters()):
        assert (q.grad - p.grad).abs().max() <= 1e-6 * p.grad.abs().max(), name
    with torch.no_grad():  # no-grad passes: the plain lookup
        assert torch.equal(ours.model.embed_tokens(exp.input_ids), plain.model.embed_tokens(exp.input_ids))


def test_untied_heads_are_left_alone():
    tok = build_tokenizer()
    model = _tiny_causal_lm("llama", tok)
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert not accumulate_tied_grads_in_place(model)
    assert not grads_in_place(model.lm_head.weight) and not grads_in_place(model.model.embed_tokens.weight)


def test_the_trainer_policy_accumulates_in_place_and_a_run_trains(tiny_dir, tmp_path):
    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_config

    trainer = build_trainer(tiny_config(tiny_dir, tmp_path, **{"train.iterations": 1}))
    weight = trainer.m.policy.get_input_embeddings().weight
    assert grads_in_place(weight) and trainer.m.policy.get_output_embeddings().weight is weight
    before = weight.detach().clone()
    trainer.step()
    assert not torch.equal(before, weight.detach())  # the tied weight took its update
