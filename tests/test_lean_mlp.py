"""The lean SwiGLU MLP: bit-for-bit the values and gradients of transformers' MLP, with two fewer stored
(tokens, intermediate) tensors per layer; LoRA-wrapped projections and no-grad passes take the module's forward."""
import copy

import pytest
import torch

from blendrl.models import load_causal_lm, load_critic
from blendrl.models.lean_mlp import _lean_forward, use_lean_mlp
from tests.test_rollout import _tiny_causal_lm
from tests.tiny import build_tokenizer


def _stored_bytes(model, ids) -> tuple[int, torch.Tensor]:
    """Bytes of the activations autograd keeps for backward (parameters excluded), and the logits."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    stored = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            stored[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(input_ids=ids).logits
    return sum(stored.values()), logits


@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral"])
def test_same_values_and_gradients_with_half_the_mlp_activations(kind):
    tok = build_tokenizer()
    plain = _tiny_causal_lm(kind, tok).eval()
    lean = copy.deepcopy(plain)
    assert use_lean_mlp(lean) == plain.config.num_hidden_layers
    ids = torch.randint(3, len(tok), (3, 9), generator=torch.Generator().manual_seed(1))
    plain_bytes, plain_logits = _stored_bytes(plain, ids)
    lean_bytes, lean_logits = _stored_bytes(lean, ids)
    assert torch.equal(plain_logits, lean_logits)
    # silu(gate(x)) and silu(gate(x)) * up(x) are no longer stored: 2 × tokens × intermediate floats per layer
    assert plain_bytes - lean_bytes == plain.config.num_hidden_layers * 2 * ids.numel() * 64 * 4
    weights = torch.randn(plain_logits.shape, generator=torch.Generator().manual_seed(2))
    (plain_logits * weights).sum().backward()
    (lean_logits * weights).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), lean.parameters()):
        assert torch.equal(p.grad, q.grad), name
    assert any(n.startswith("_SwiGLU") for n in _graph_names(lean(input_ids=ids).logits))


def _graph_names(out: torch.Tensor) -> set[str]:
    names, todo, seen = set(), [out.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo += [nxt for nxt, _ in fn.next_functions]
    return names


def test_frozen_projections_get_no_gradient_and_the_rest_match():
    tok = build_tokenizer()
    plain = _tiny_causal_lm("llama", tok).eval()
    lean = copy.deepcopy(plain)
    use_lean_mlp(lean)
    for model in (plain, lean):
        for layer in model.model.layers:
            layer.mlp.up_proj.weight.requires_grad_(False)
    ids = torch.randint(3, len(tok), (2, 7), generator=torch.Generator().manual_seed(3))
    plain(input_ids=ids).logits.square().sum().backward()
    lean(input_ids=ids).logits.square().sum().backward()
    for (name, p), q in zip(plain.named_parameters(), lean.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        assert p.grad is None or torch.equal(p.grad, q.grad), name


def test_lora_on_the_mlp_and_no_grad_passes_take_the_module_forward():
    from peft import LoraConfig, get_peft_model

    tok = build_tokenizer()
    base = _tiny_causal_lm("llama", tok).eval()
    use_lean_mlp(base)
    mlp = base.model.layers[0].mlp
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        assert torch.equal(mlp(x), type(mlp).forward(mlp, x))
        assert mlp(x).grad_fn is None
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["gate_proj", "up_proj", "down_proj"], init_lora_weights=False)
    model = get_peft_model(base, cfg)
    ids = torch.randint(3, len(tok), (2, 6), generator=torch.Generator().manual_seed(4))
    logits = model(input_ids=ids).logits
    assert not any(n.startswith("_SwiGLU") for n in _graph_names(logits))
    logits.sum().backward()
    lora_grads = [p.grad for n, p in model.named_parameters() if "lora_" in n and "mlp" in n]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)


def test_loaders_route_mlps_through_the_lean_forward(tiny_dir):
    for model in (load_causal_lm(tiny_dir, lean=True), load_critic(tiny_dir, lean=True)):
        mlps = [m for m in model.modules() if type(m).__name__.endswith("MLP")]
        assert mlps and all(m.forward.__func__ is _lean_forward for m in mlps)
