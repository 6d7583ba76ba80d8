"""blendrl's CPU decode kernel computes F.linear to fp32 precision, and the decoder takes it where it applies."""
import platform
import shutil

import pytest
import torch
import torch.nn.functional as F

from blendrl.rollout import cpu_gemm

needs_kernel = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("c++") is None and shutil.which("g++") is None,
    reason="the kernel is built for x86-64 with a C++ compiler")


@needs_kernel
def test_the_kernel_builds_and_loads_here():
    assert cpu_gemm.available()  # where a compiler exists, a failed build is a bug, not a skip


@needs_kernel
@pytest.mark.parametrize("rows", [1, 3, 8, 11, 16])
def test_linear_group_equals_a_float64_product(rows):
    torch.manual_seed(rows)
    # widths that are not multiples of the 2-row tile, K not a multiple of the vector width, biases on some
    linears = [torch.nn.Linear(37, 5), torch.nn.Linear(37, 64, bias=False), torch.nn.Linear(37, 1)]
    x = torch.randn(rows, 37)
    out = cpu_gemm.LinearGroup(linears, rows)(x)  # (rows, 70)
    expected = torch.cat([F.linear(x.double(), m.weight.double(), None if m.bias is None else m.bias.double())
                          for m in linears], dim=-1)
    assert out.shape == (rows, 70)
    assert torch.allclose(out.double(), expected, atol=1e-5, rtol=0)


@needs_kernel
def test_linear_group_on_model_sized_shapes_matches_f_linear_as_closely_as_mkl_does():
    torch.manual_seed(0)
    x, lin = torch.randn(8, 576), torch.nn.Linear(576, 1536)
    exact = F.linear(x.double(), lin.weight.double(), lin.bias.double())
    ours = (cpu_gemm.LinearGroup([lin], 8)(x).double() - exact).abs().max()
    mkl = (F.linear(x, lin.weight, lin.bias).double() - exact).abs().max()
    assert ours <= 2 * mkl + 1e-6


@needs_kernel
def test_linear_group_reuses_its_buffer_and_reads_the_current_weights():
    lin = torch.nn.Linear(16, 4, bias=False)
    group = cpu_gemm.LinearGroup([lin], 2)
    x = torch.randn(2, 16)
    first = group(x)
    with torch.no_grad():
        lin.weight.mul_(2)  # an in-place update (an optimizer step) is seen by the next call
    second = group(x)
    assert second.data_ptr() == first.data_ptr()
    assert torch.allclose(second, F.linear(x, lin.weight), atol=1e-5)


@needs_kernel
def test_linear_group_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="in_features"):
        cpu_gemm.LinearGroup([torch.nn.Linear(8, 2), torch.nn.Linear(9, 2)], 2)
    with pytest.raises(ValueError, match="plain fp32"):
        cpu_gemm.LinearGroup([torch.nn.Linear(8, 2).double()], 2)
    with pytest.raises(ValueError, match="plain fp32"):
        cpu_gemm.LinearGroup([torch.nn.Linear(8, 2)], cpu_gemm.MAX_ROWS + 1)
    with pytest.raises(ValueError, match=r"\(2, 8\) fp32"):
        cpu_gemm.LinearGroup([torch.nn.Linear(8, 2)], 2)(torch.randn(3, 8))


def test_a_failed_build_names_the_compiler_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.cpp"
    bad.write_text("this is not C++\n")
    monkeypatch.setattr(cpu_gemm, "SOURCE", bad)
    if cpu_gemm._compiler() is None:
        with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
            cpu_gemm.build(tmp_path)
        return
    with pytest.raises(RuntimeError, match="bad.cpp failed"):
        cpu_gemm.build(tmp_path)
    assert list(tmp_path.glob("*.so")) == []  # nothing half-written is left for the next load


@needs_kernel
@pytest.mark.parametrize("fused", [True, False], ids=["whole layers", "projections"])
def test_the_decoder_runs_through_the_kernel(fused, monkeypatch):
    from blendrl.rollout import HFGenerator, SamplingParams
    from tests.tiny import build_model, build_tokenizer

    calls = {"group": 0, "layers": 0}
    group_call, layers_call = cpu_gemm.LinearGroup.__call__, cpu_gemm.LlamaLayers.__call__

    def count(kind, fn):
        def wrapped(self, *args):
            calls[kind] += 1
            return fn(self, *args)
        return wrapped

    monkeypatch.setattr(cpu_gemm.LinearGroup, "__call__", count("group", group_call))
    monkeypatch.setattr(cpu_gemm.LlamaLayers, "__call__", count("layers", layers_call))
    if not fused:  # a layer the fused step does not know (here: another activation) falls back to projections
        monkeypatch.setattr(cpu_gemm, "_is_silu", lambda act: False)
    tok = build_tokenizer()
    model = build_model(tok)
    layers = len(model.model.layers)
    HFGenerator(model, tok.pad_token_id, []).sample(
        [tok("hello")["input_ids"]], SamplingParams(max_new_tokens=3, temperature=1.0), torch.Generator())
    if fused:  # 2 decode steps × (one call for all layers, the LM head)
        assert calls == {"group": 2, "layers": 2}
    else:  # 2 decode steps × (qkv, o, gate|up, down per layer + LM head)
        assert calls == {"group": 2 * (4 * layers + 1), "layers": 0}


@needs_kernel
def test_the_avx2_build_computes_the_same(tmp_path, monkeypatch):
    """Machines without AVX-512 compile the 8-lane path; build it here too and run the decoder through it."""
    from blendrl.rollout.static_decode import StaticKVDecoder
    from tests.test_rollout import _hf_step_logits, _tiny_causal_lm
    from tests.tiny import build_tokenizer

    avx2 = cpu_gemm.load(cpu_gemm.build(tmp_path, extra_flags=("-mno-avx512f",)))
    monkeypatch.setattr(cpu_gemm, "_library", lambda: avx2)
    x, lin = torch.randn(11, 37), torch.nn.Linear(37, 9)
    assert torch.allclose(cpu_gemm.LinearGroup([lin], 11)(x), F.linear(x, lin.weight, lin.bias), atol=1e-5)
    tok = build_tokenizer()
    model = _tiny_causal_lm("qwen2", tok).eval()
    prompts = [tok("what is the sun ?")["input_ids"], tok("hello")["input_ids"]]
    feed = [torch.tensor([9, 12]), torch.tensor([15, 7])]
    with torch.no_grad():
        expected, _, _, _ = _hf_step_logits(model, prompts, tok.pad_token_id, feed)
        _, cache, mask, pos = _hf_step_logits(model, prompts, tok.pad_token_id, [])
        decoder = StaticKVDecoder(model, cache, mask, len(feed))
        assert decoder.fused is not None
        for t, tokens in enumerate(feed):
            assert torch.allclose(decoder.step(tokens, pos[:, -1:] + 1 + t), expected[t], atol=1e-5)
