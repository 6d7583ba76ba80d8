"""The one optimizer-step rule every trainer goes through (blendrl.training.engine)."""
import math
from types import SimpleNamespace

import pytest
import torch

from blendrl.training.engine import LocalEngine


def _engine(warmup=0, schedule="linear", total=4, max_grad_norm=1.0):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1, bias=False)
    settings = SimpleNamespace(weight_decay=0.0, schedule=schedule, warmup_steps=warmup, max_grad_norm=max_grad_norm)
    return model, LocalEngine(model, 0.1, settings, total)


def test_a_finite_step_clips_the_norm_and_applies():
    model, engine = _engine(schedule="constant")
    before = model.weight.detach().clone()
    engine.backward((model(torch.tensor([[3.0, 4.0]])) * 10).sum())  # gradient (30, 40): norm 50
    assert engine.step() == pytest.approx(50.0)
    assert engine.applied and engine.skipped == 0
    # AdamW's first step moves each weight by lr·sign(g) whatever the clipped size: −0.1 each
    assert torch.allclose(model.weight, before - 0.1, atol=1e-6)
    assert model.weight.grad is None  # the gradient is gone after the step


def test_a_nan_loss_or_gradient_is_skipped_counted_and_never_applied():
    model, engine = _engine(schedule="constant")
    before = model.weight.detach().clone()
    engine.backward(model(torch.tensor([[math.nan, 1.0]])).sum())
    assert math.isnan(engine.step())
    assert engine.skipped == 1 and not engine.applied and torch.equal(model.weight, before)
    assert math.isnan(engine.step(finite=False)) and engine.skipped == 2  # a caller that saw a NaN loss


def test_no_gradient_is_a_step_of_norm_zero_that_changes_nothing():
    model, engine = _engine()
    assert engine.step() == 0.0 and not engine.applied and engine.skipped == 0


def test_the_schedule_advances_once_per_step_applied_or_not():
    model, engine = _engine(warmup=2, schedule="linear", total=4)
    lrs = []
    for finite in (True, False, True, True):
        lrs.append(engine.lr)
        engine.backward(model(torch.ones(1, 2)).sum())
        engine.step(finite)
    # warm-up (1/2, 2/2) then linear decay over the 2 remaining steps (1 − 0/2, 1 − 1/2), skipped step included
    assert lrs == pytest.approx([0.05, 0.1, 0.1, 0.05])


def test_state_round_trips():
    model, engine = _engine()
    engine.backward(model(torch.ones(1, 2)).sum())
    engine.step(False)
    state = engine.state_dict()
    _, other = _engine()
    other.load_state_dict(state)
    assert other.skipped == 1 and other.lr == engine.lr
