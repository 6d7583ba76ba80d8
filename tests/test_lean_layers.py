"""The lean RMSNorm and the kernel-GQA attention: transformers' forward values bit for bit, gradients to float
rounding, fewer stored activations; no-grad passes, other norms and ungrouped attention keep transformers' code."""
import copy

import pytest
import torch

from blendrl.models import load_causal_lm, load_critic
from blendrl.models.lean_attention import NAME, use_kernel_gqa
from blendrl.models.lean_norm import _lean_forward, use_lean_norm
from tests.test_lean_mlp import _graph_names, _stored_bytes
from tests.test_rollout import _tiny_causal_lm
from tests.tiny import build_tokenizer


def _padded_batch(tok, seed: int):
    """Left-padded ids and mask (3, 9): rows with 0, 2 and 4 padding columns (so the attention has a mask)."""
    ids = torch.randint(3, len(tok), (3, 9), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[1, :2] = mask[2, :4] = 0
    ids[mask == 0] = tok.pad_token_id
    return ids, mask


def _grads_close(plain, lean, rel=1e-6):
    """Every gradient within ``rel`` × its largest entry of transformers' (float rounding: sums in another order)."""
    for (name, p), q in zip(plain.named_parameters(), lean.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert (q.grad - p.grad).abs().max() <= rel * p.grad.abs().max(), name


def _backward(model, logits):
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    (logits * weights).sum().backward()
    return model


@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral"])
def test_lean_norm_same_values_close_gradients_one_tensor_fewer_per_norm(kind):
    tok = build_tokenizer()
    plain = _tiny_causal_lm(kind, tok).eval()
    lean = copy.deepcopy(plain)
    n_norms = 2 * plain.config.num_hidden_layers + 1  # two per layer and the final one
    assert use_lean_norm(lean) == n_norms
    ids, _ = _padded_batch(tok, 1)
    plain_bytes, plain_logits = _stored_bytes(plain, ids)
    lean_bytes, lean_logits = _stored_bytes(lean, ids)
    assert torch.equal(plain_logits, lean_logits)
    # x·r is no longer stored: tokens × hidden floats per norm (x and r, one float per token, are, as before)
    assert plain_bytes - lean_bytes == n_norms * ids.numel() * 32 * 4
    _grads_close(_backward(plain, plain_logits), _backward(lean, lean_logits))
    assert "_RMSNormBackward" in _graph_names(lean(input_ids=ids).logits)


def test_lean_norm_backward_is_the_closed_form_on_hand_numbers():
    """x = (1, 7), w = (2, 1), ε = 0: mean(x²) = 25, r = 0.2, x̂ = (0.2, 1.4), out = (0.4, 1.4); g = (1, 0):
    ∂w = g·x̂ = (0.2, 0); g·w = (2, 0), mean(g·w·x̂) = 0.2, ∂x = r·((2, 0) − 0.2·(0.2, 1.4)) = (0.392, −0.056)
    (by hand from ∂r/∂x_j = −r³·x_j/2: ∂x_1 = 2·(r − x_1·0.004), ∂x_2 = 2·x_1·(−0.028))."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    norm = LlamaRMSNorm(2, eps=0.0)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([2.0, 1.0]))
    use_lean_norm(norm)
    x = torch.tensor([[1.0, 7.0]], requires_grad=True)
    out = norm(x)
    torch.testing.assert_close(out, torch.tensor([[0.4, 1.4]]))
    out.backward(torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(norm.weight.grad, torch.tensor([0.2, 0.0]))
    torch.testing.assert_close(x.grad, torch.tensor([[0.392, -0.056]]))


def test_no_grad_passes_and_other_norms_keep_their_forward():
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    gemma = GemmaRMSNorm(8)  # weight · x̂ · (1 + w): not LlamaRMSNorm's code
    assert use_lean_norm(gemma) == 0
    norm = LlamaRMSNorm(8)
    assert use_lean_norm(norm) == 1 and norm.forward.__func__ is _lean_forward
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        assert norm(x).grad_fn is None and torch.equal(norm(x), LlamaRMSNorm.forward(norm, x))
    assert type(norm(x.requires_grad_()).grad_fn).__name__.startswith("_RMSNorm")
    assert norm(x.double()).grad_fn is not None and not type(norm(x.double()).grad_fn).__name__.startswith("_RMS")


@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral"])
def test_kernel_gqa_same_values_close_gradients_no_repeated_heads(kind):
    tok = build_tokenizer()
    plain = _tiny_causal_lm(kind, tok).eval()
    lean = copy.deepcopy(plain)
    assert use_kernel_gqa(lean) == 1 and lean.config._attn_implementation == NAME
    assert plain.config._attn_implementation == "sdpa"
    ids, mask = _padded_batch(tok, 3)

    def run(model):
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        stored = {}

        def pack(t):
            if t.untyped_storage().data_ptr() not in params:
                stored[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits = model(input_ids=ids, attention_mask=mask).logits
        return sum(stored.values()), logits

    plain_bytes, plain_logits = run(plain)
    lean_bytes, lean_logits = run(lean)
    assert torch.equal(plain_logits, lean_logits)
    # keys and values are stored with 2 heads instead of 4: 2 × tokens × 2 heads × head dim 8 floats per layer
    assert plain_bytes - lean_bytes == plain.config.num_hidden_layers * 2 * ids.numel() * 2 * 8 * 4
    _grads_close(_backward(plain, plain_logits), _backward(lean, lean_logits))


def test_kernel_gqa_only_for_grouped_sdpa_and_not_saved(tmp_path):
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer()
    model = _tiny_causal_lm("llama", tok)
    ungrouped = copy.deepcopy(model)
    ungrouped.config.num_key_value_heads = ungrouped.config.num_attention_heads
    assert use_kernel_gqa(ungrouped) == 0 and ungrouped.config._attn_implementation == "sdpa"
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    assert use_kernel_gqa(eager) == 0 and eager.config._attn_implementation == "eager"
    assert use_kernel_gqa(model) == 1 and use_kernel_gqa(model) == 0  # idempotent: already switched
    ids, mask = _padded_batch(tok, 4)
    with torch.no_grad():  # one query step over a cache: transformers' own sdpa path, same numbers
        out = model(input_ids=ids, attention_mask=mask, use_cache=True)
        step = model(input_ids=ids[:, -1:], attention_mask=torch.cat([mask, mask[:, -1:]], 1),
                     past_key_values=out.past_key_values).logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert reloaded.config._attn_implementation == "sdpa"
    with torch.no_grad():
        out2 = reloaded(input_ids=ids, attention_mask=mask, use_cache=True)
        step2 = reloaded(input_ids=ids[:, -1:], attention_mask=torch.cat([mask, mask[:, -1:]], 1),
                         past_key_values=out2.past_key_values).logits
    assert torch.equal(out.logits, out2.logits) and torch.equal(step, step2)


def test_loaders_apply_the_lean_layers_only_when_asked(tiny_dir):
    for model in (load_causal_lm(tiny_dir, lean=True), load_critic(tiny_dir, lean=True)):
        norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
        assert norms and all(m.forward.__func__ is _lean_forward for m in norms)
        grouped = model.config.num_key_value_heads < model.config.num_attention_heads
        assert model.config._attn_implementation == (NAME if grouped else "sdpa")
    for model in (load_causal_lm(tiny_dir), load_critic(tiny_dir)):  # a library user's model stays transformers'
        norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
        assert norms and not any(getattr(m.forward, "__func__", None) is _lean_forward for m in norms)
        assert model.config._attn_implementation == "sdpa"


def test_a_run_with_every_perf_switch_off_trains_to_the_same_numbers(tiny_dir, tmp_path):
    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_config

    def weights(**perf):
        over = {"train.iterations": 1, "logging.eval_before": False, "data.eval_prompts": "null",
                **{f"perf.{k}": v for k, v in perf.items()}}
        trainer = build_trainer(tiny_config(tiny_dir, tmp_path / str(len(perf)), **over))
        trainer.step()
        return {k: v.detach().clone() for k, v in trainer.m.policy.state_dict().items()}

    on = weights()
    off = weights(lean_layers=False, tied_grads_in_place=False, cpu_kernels=False)
    for k in on:
        assert torch.allclose(on[k], off[k], atol=1e-5, rtol=0), k


def test_kernel_gqa_attention_on_hand_numbers():
    """Four query heads over two key/value heads (heads 0, 1 read kv 0; heads 2, 3 read kv 1, as ``repeat_kv``);
    scale 1, causal mask. Keys (0, ln 3) in both kv heads, values (2, 4) and (6, 8). The first query sees only
    key 0 → 2 (6); the second with q = 1 weighs the keys e^0 : e^ln3 = 1/4 : 3/4 → 0.5 + 3 = 3.5 (1.5 + 6 = 7.5),
    with q = 0 equally → 3 (7). Output (B, Tq, H, D) = [[2, 2, 6, 6], [3.5, 3, 7.5, 7]]."""
    from types import SimpleNamespace

    from blendrl.models.lean_attention import _sdpa_with_kernel_gqa

    module = SimpleNamespace(num_key_value_groups=2, training=False)
    query = torch.tensor([[1.0, 1.0], [0.0, 0.0]] * 2).view(1, 4, 2, 1)  # (B, H, Tq, D)
    key = torch.tensor([0.0, torch.log(torch.tensor(3.0)).item()] * 2).view(1, 2, 2, 1)  # (B, Hkv, Tk, D)
    value = torch.tensor([2.0, 4.0, 6.0, 8.0]).view(1, 2, 2, 1)
    causal = torch.tensor([[True, False], [True, True]]).view(1, 1, 2, 2)
    out, weights = _sdpa_with_kernel_gqa(module, query, key, value, causal, scaling=1.0)
    assert weights is None and out.shape == (1, 2, 4, 1)
    assert torch.allclose(out.view(2, 4), torch.tensor([[2.0, 2.0, 6.0, 6.0], [3.5, 3.0, 7.5, 7.0]]), atol=1e-6)
