"""Sampling is exact and the rollout's behaviour log-probs match the training forward."""
import pytest
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
        assert (eos in ids) == bool(ro.finished[row])
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


def test_two_level_inverse_cdf_picks_the_same_index_as_one_full_cumsum():
    from blendrl.rollout.sampling import inverse_cdf

    g = torch.Generator().manual_seed(0)
    weights = torch.rand(6, 5000, generator=g) ** 4  # V not a multiple of the block: the tail is padded
    weights[:, 1000:1100] = 0.0  # a run of impossible tokens inside a block
    u = torch.rand(6, 1, generator=g, dtype=torch.float64)
    idx, total = inverse_cdf(weights, u)
    cdf = weights.double().cumsum(-1)
    assert torch.equal(idx, torch.searchsorted(cdf, u * cdf[:, -1:])[:, 0])
    assert torch.allclose(total, cdf[:, -1])
    many = weights[:1].expand(4000, -1)
    draws, _ = inverse_cdf(many, torch.rand(4000, 1, generator=g, dtype=torch.float64))
    assert not ((draws >= 1000) & (draws < 1100)).any()
    blocks = torch.bincount(draws // 1000, minlength=5).double() / 4000  # frequency per 1000-token band
    expected = weights[0].double().view(5, 1000).sum(-1) / weights[0].double().sum()
    assert torch.allclose(blocks, expected, atol=0.03)


def test_sample_from_logits_matches_log_softmax_sampling():
    from blendrl.rollout.sampling import sample_from_logits

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 3000, generator=g) * 4
    for top_p in (1.0, 0.8):
        logp_all = torch.log_softmax(logits / 0.7, dim=-1)
        expected = sample_tokens(logp_all, top_p, torch.Generator().manual_seed(11))
        tokens, logp = sample_from_logits(logits.clone(), 0.7, top_p, torch.Generator().manual_seed(11))
        assert torch.equal(tokens, expected)
        assert torch.allclose(logp, logp_all.gather(1, tokens[:, None])[:, 0], atol=1e-5)  # full distribution


def _tiny_causal_lm(kind: str, tok):
    from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                              MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

    torch.manual_seed(0)
    common = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common, rope_scaling={"rope_type": "linear", "factor": 2.0}))
    if kind == "qwen2":  # biases on q, k, v
        return Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=False))
    if kind == "mistral":
        return MistralForCausalLM(MistralConfig(**common, sliding_window=None))
    if kind == "mistral-sliding":
        return MistralForCausalLM(MistralConfig(**common, sliding_window=4))
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))


def _hf_step_logits(model, prompts, pad_id, feed):
    """Reference: logits after each fed token, from HF's forward on a DynamicCache. → list of (B, V)."""
    from transformers import DynamicCache

    from blendrl.rollout import left_pad

    ids, mask = left_pad(prompts, pad_id)
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    cache = DynamicCache()
    model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
    out, attn, nxt = [], mask, pos[:, -1:] + 1
    for tok in feed:
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        out.append(model(input_ids=tok[:, None], attention_mask=attn, position_ids=nxt, past_key_values=cache,
                         use_cache=True).logits[:, -1])
        nxt = nxt + 1
    return out, cache, mask, pos


@pytest.mark.parametrize("path", ["fused layers", "cpu_gemm projections", "F.linear"])
@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral"])
def test_static_kv_decoder_steps_equal_the_hf_forward(kind, path, monkeypatch):
    from blendrl.models.layout import is_llama_layout as supports
    from blendrl.rollout import cpu_gemm
    from blendrl.rollout.static_decode import StaticKVDecoder

    monkeypatch.setattr(cpu_gemm, "ENABLED", path != "F.linear")
    if path == "cpu_gemm projections":
        monkeypatch.setattr(cpu_gemm, "fusable_llama_layer", lambda layer, rows: False)
    tok = build_tokenizer()
    model = _tiny_causal_lm(kind, tok).eval()
    assert supports(model)
    prompts = [tok("what is the sun ?")["input_ids"], tok("hello")["input_ids"]]  # left padding on row 1
    feed = [torch.randint(7, len(tok), (2,), generator=torch.Generator().manual_seed(i)) for i in range(5)]
    with torch.no_grad():
        expected, _, _, _ = _hf_step_logits(model, prompts, tok.pad_token_id, feed)
        _, cache, mask, pos = _hf_step_logits(model, prompts, tok.pad_token_id, [])
        decoder = StaticKVDecoder(model, cache, mask, len(feed))
        assert (decoder.fused is not None) == (path == "fused layers")
        nxt = pos[:, -1:] + 1
        for t, tokens in enumerate(feed):
            assert torch.allclose(decoder.step(tokens, nxt + t), expected[t], atol=1e-5), f"step {t}"


def test_static_kv_decoder_follows_lora_adapters_on_and_off():
    from peft import LoraConfig, get_peft_model

    from blendrl.models.layout import is_llama_layout as supports
    from blendrl.rollout.static_decode import StaticKVDecoder

    tok = build_tokenizer()
    model = get_peft_model(build_model(tok), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # adapters that change the output
    model.eval()
    assert supports(model)
    prompts, feed = [tok("hello world")["input_ids"]], [torch.tensor([9]), torch.tensor([12])]
    with torch.no_grad():
        for adapters_off in (False, True):
            with model.disable_adapter() if adapters_off else torch.no_grad():
                expected, _, _, _ = _hf_step_logits(model, prompts, tok.pad_token_id, feed)
                _, cache, mask, pos = _hf_step_logits(model, prompts, tok.pad_token_id, [])
                decoder = StaticKVDecoder(model, cache, mask, 2)
                for t, tokens in enumerate(feed):
                    assert torch.allclose(decoder.step(tokens, pos[:, -1:] + 1 + t), expected[t], atol=1e-5)
        on, _, _, _ = _hf_step_logits(model, prompts, tok.pad_token_id, feed)
        with model.disable_adapter():
            off, _, _, _ = _hf_step_logits(model, prompts, tok.pad_token_id, feed)
        assert not torch.allclose(on[-1], off[-1], atol=1e-3)  # the adapters matter in this test


@pytest.mark.parametrize("kind", ["gpt2", "mistral-sliding"])
def test_other_models_take_the_generic_path_with_exact_logprobs(kind):
    from blendrl.models.layout import is_llama_layout as supports

    tok = build_tokenizer()
    model = _tiny_causal_lm(kind, tok).eval()
    assert not supports(model)
    gen = HFGenerator(model, tok.pad_token_id, [tok.eos_token_id])
    prompts = [tok("what is the sun ?")["input_ids"], tok("hello")["input_ids"]]
    ro = gen.sample(prompts, SamplingParams(max_new_tokens=6, temperature=0.8), torch.Generator().manual_seed(0))
    exp = Experience.from_rollout(ro)
    with torch.no_grad():
        logp = response_logprobs(model, exp, temperature=0.8)
    assert torch.allclose(logp * exp.response_mask, ro.logp, atol=1e-4)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])  # static decoder / generic DynamicCache path
def test_repeated_prompts_are_prefilled_once_with_exact_logprobs(kind, monkeypatch):
    tok = build_tokenizer()
    model = (build_model(tok, seed=5) if kind == "llama" else _tiny_causal_lm(kind, tok)).eval()
    batches = []
    forward = type(model).forward

    def counting(self, *args, **kwargs):
        batches.append(kwargs["input_ids"].shape)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", counting)
    a, b = tok("what is the sun ?")["input_ids"], tok("hello")["input_ids"]
    gen = HFGenerator(model, tok.pad_token_id, [tok.eos_token_id])
    params = SamplingParams(max_new_tokens=6, temperature=0.8)
    ro = gen.sample([a, a, b, b, a], params, torch.Generator().manual_seed(0))
    assert batches[0][0] == 2  # one prefill row per distinct prompt
    assert ro.prompt_ids.shape[0] == 5 and torch.equal(ro.prompt_ids[0], ro.prompt_ids[4])
    monkeypatch.setattr(type(model), "forward", forward)
    exp = Experience.from_rollout(ro)
    with torch.no_grad():
        logp = response_logprobs(model, exp, temperature=0.8)
    assert torch.allclose(logp * exp.response_mask, ro.logp, atol=1e-4)  # every row decodes from its own prompt
    assert len({tuple(r) for r in ro.response_ids.tolist()}) > 1  # rows of one prompt sample independently
