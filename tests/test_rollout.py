"""Sampling is exact and the rollout's behaviour log-probs match the training forward."""
import torch

from blendrl.rollout import HFGenerator, SamplingParams, sample_tokens
from blendrl.rollout.sampling import _nucleus_keep
from blendrl.training.experience import Experience, response_logprobs
from tests.tiny import build_model, build_tokenizer


def test_inverse_cdf_sampling_follows_the_distribution():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logp = probs.log().expand(20000, 4).contiguous()
    draws = sample_tokens(logp, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, probs, atol=0.015)


def test_top_p_keeps_the_smallest_nucleus_and_renormalises():
    # sorted probs .4 .3 .2 .1: mass before each = 0 .4 .7 .9 → top_p .65 keeps {.4, .3}
    keep = _nucleus_keep(torch.tensor([[0.4, 0.3, 0.2, 0.1]]), 0.65)
    assert keep.tolist() == [[True, True, False, False]]
    logp = torch.tensor([0.1, 0.2, 0.3, 0.4]).log().expand(20000, 4).contiguous()
    draws = sample_tokens(logp, 0.65, torch.Generator().manual_seed(1))
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.0, 0.0, 3 / 7, 4 / 7]), atol=0.015)


def test_top_p_beyond_topk_falls_back_to_full_sort():
    logp = torch.full((1000, 600), -torch.log(torch.tensor(600.0)))  # uniform: the nucleus is wider than 256
    draws = sample_tokens(logp, 0.9, torch.Generator().manual_seed(0))
    assert draws.unique().numel() > 400


def test_generator_returns_masks_up_to_eos_and_exact_behaviour_logprobs():
    tok = build_tokenizer()
    model = build_model(tok, seed=3)
    eos = tok.eos_token_id
    with torch.no_grad():  # make EOS likely so that some rows stop early
        model.model.embed_tokens.weight[eos] *= 8
    gen = HFGenerator(model, tok.pad_token_id, [eos])
    prompts = [tok("what is the sun ?")["input_ids"], tok("hello")["input_ids"], tok("a b c d")["input_ids"]]
    ro = gen.sample(prompts, SamplingParams(max_new_tokens=12, temperature=0.9), torch.Generator().manual_seed(0))
    assert ro.prompt_ids.shape[0] == 3 and ro.response_ids.shape == ro.response_mask.shape == ro.logp.shape
    for row in range(3):
        valid = ro.response_mask[row].bool()
        ids = ro.response_ids[row][valid].tolist()
        assert valid.tolist() == sorted(valid.tolist(), reverse=True)  # contiguous prefix
        assert (eos in ids) == bool(ro.has_eos[row])
        if eos in ids:
            assert ids.index(eos) == len(ids) - 1  # the mask includes EOS and stops there
    exp = Experience.from_rollout(ro)
    with torch.no_grad():
        logp = response_logprobs(model, exp, temperature=0.9)
    assert torch.allclose(logp * exp.response_mask, ro.logp, atol=1e-4)


def test_generation_is_reproducible_with_the_same_seed():
    tok = build_tokenizer()
    gen = HFGenerator(build_model(tok), tok.pad_token_id, [tok.eos_token_id])
    prompts = [tok("hello world")["input_ids"]] * 2
    a = gen.sample(prompts, SamplingParams(8, 1.0, 0.9), torch.Generator().manual_seed(5))
    b = gen.sample(prompts, SamplingParams(8, 1.0, 0.9), torch.Generator().manual_seed(5))
    assert torch.equal(a.response_ids, b.response_ids)


def test_skinny_linears_compute_the_same_product_and_are_removed_afterwards():
    from blendrl.rollout.hf import skinny_linears

    layer = torch.nn.Linear(64, 40)
    x = torch.randn(3, 2, 64)
    expected = layer(x)
    with skinny_linears(torch.nn.Sequential(layer)):
        assert "forward" in layer.__dict__
        assert torch.allclose(layer(x), expected, atol=1e-5)
        big = torch.randn(40, 64)  # many rows: the ordinary path
        assert torch.equal(layer(big), torch.nn.functional.linear(big, layer.weight, layer.bias))
    assert "forward" not in layer.__dict__
