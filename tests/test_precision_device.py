"""Devices and mixed precision. On this CPU: bf16/fp16 autocast trains to the fp32 run's numbers within their
precision, fp16 loss scaling skips an overflowing step by the engine's rule, ``model.device`` names where models
live (``cuda`` without a GPU is a clear error). The CUDA path itself is tested only where a GPU is at hand."""
import math
from types import SimpleNamespace

import pytest
import torch

from blendrl.config import ConfigError, PPORunConfig, load_config
from tests.tiny import tiny_config


def _train(tiny_dir, tmp_path, **over):
    from blendrl.training.run import build_trainer

    cfg = tiny_config(tiny_dir, tmp_path / "_".join(f"{k}{v}" for k, v in over.items()),
                      **{"train.iterations": 2, "logging.eval_before": False, **over})
    trainer = build_trainer(cfg)
    metrics = [trainer.step().metrics for _ in range(2)]
    return trainer, metrics


@pytest.mark.parametrize("precision, gap", [("bf16", 5e-2), ("fp16", 1e-2)])
def test_mixed_precision_trains_like_fp32_within_its_precision(tiny_dir, tmp_path, precision, gap):
    _, ref = _train(tiny_dir, tmp_path)
    trainer, got = _train(tiny_dir, tmp_path, **{"train.mixed_precision": precision})
    for a, b in zip(ref, got):
        assert a["reward/mean"] == b["reward/mean"]  # the same rollouts (sampling is not autocast)
        assert b["loss/policy"] == pytest.approx(a["loss/policy"], abs=2e-3)
        assert b["grad_norm/policy"] == pytest.approx(a["grad_norm/policy"], rel=0.02)
    assert 0 < got[0]["check/behaviour_logp_gap"] < gap  # the training forward did run in lower precision
    assert ref[0]["check/behaviour_logp_gap"] < 1e-5
    assert all(p.dtype == torch.float32 for p in trainer.m.policy.parameters())  # weights stay fp32


def test_fp16_loss_scaling_skips_an_overflowing_step_and_lowers_the_scale():
    from blendrl.training.engine import LocalEngine

    model = torch.nn.Linear(2, 1, bias=False)
    settings = SimpleNamespace(weight_decay=0.0, schedule="constant", warmup_steps=0, max_grad_norm=1.0,
                               mixed_precision="fp16")
    engine = LocalEngine(model, 0.1, settings, 4)
    before, scale = model.weight.detach().clone(), engine.scaler.get_scale()
    engine.backward(model(torch.ones(1, 2)).sum() * 1e36)  # × the loss scale: past float32's range → inf
    assert not math.isfinite(engine.step()) and engine.skipped == 1 and torch.equal(model.weight, before)
    assert engine.scaler.get_scale() < scale
    engine.backward(model(torch.ones(1, 2)).sum())
    assert math.isfinite(engine.step()) and not torch.equal(model.weight, before)  # unscaled: a normal step


def test_no_is_a_precision_not_a_boolean():
    assert load_config(PPORunConfig, None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    assert load_config(PPORunConfig, None, ["train.mixed_precision=bf16"]).train.mixed_precision == "bf16"


def test_model_device(tiny_dir, tmp_path):
    from blendrl.core.dist import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="model.device: cuda, but torch sees no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="model.device: expected auto, cpu, cuda or cuda:N"):
        load_config(PPORunConfig, None, ["model.device=gpu0"])
    trainer, _ = _train(tiny_dir, tmp_path, **{"model.device": "cpu"})
    assert all(p.device.type == "cpu" for p in trainer.m.policy.parameters())


def test_lean_layers_step_aside_under_mixed_precision(tiny_dir, tmp_path, caplog):
    from blendrl.models.lean_mlp import _lean_forward

    with caplog.at_level("INFO", logger="blendrl"):
        trainer, _ = _train(tiny_dir, tmp_path, **{"train.mixed_precision": "bf16"})
    assert "perf: lean_layers off" in caplog.text
    mlps = [m for m in trainer.m.policy.modules() if type(m).__name__.endswith("MLP")]
    assert mlps and not any(getattr(m.forward, "__func__", None) is _lean_forward for m in mlps)
