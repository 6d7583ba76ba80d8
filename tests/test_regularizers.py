"""ORPO's χ² occupancy regulariser (§9): hand-computed values, the clip's linear extension, and the loop."""
import json
import math

import pytest
import torch

from blendrl.functional.regularizers import chi2_penalty, exp_linear_beyond


def test_chi2_on_hand_computed_sequences():
    logp = torch.tensor([[-1.0, -1.0, -9.0], [-2.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.25, -1.25, 0.0], [-1.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])  # padding never counts
    term, chi2 = chi2_penalty(logp, ref, mask)
    # sequence log-ratios: 0.5 and −1.0
    want = ((math.exp(0.5) - 1) + (math.exp(-0.5) - 1) + (math.exp(-1.0) - 1) + (math.exp(1.0) - 1)) / 2
    assert chi2.item() == pytest.approx(want) and term.item() == pytest.approx(math.sqrt(want))
    same, zero = chi2_penalty(logp, logp, mask)
    assert zero.item() == 0.0 and same.item() == pytest.approx(1e-2)  # sqrt of the 1e-4 floor


def test_clip_extends_linearly_beyond_the_clip_point():
    x = torch.tensor([12.0, 3.0, -12.0], requires_grad=True)
    y = exp_linear_beyond(x, 10.0)
    assert y.tolist() == pytest.approx([math.exp(10) * 3, math.exp(3), math.exp(-10) * -1])
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx([math.exp(10), math.exp(3), math.exp(-10)])  # never zero


def test_chi2_regularizer_runs_in_the_loop_and_is_logged(tiny_dir, tmp_path):
    from blendrl.training.run import run
    from tests.tiny import tiny_config

    cfg = tiny_config(tiny_dir, tmp_path, **{"train.iterations": 3, "regularizer.kind": "chi2",
                                             "regularizer.coef": 0.01})
    run(cfg)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    chi2 = [m["loss/chi2"] for m in metrics if "loss/chi2" in m]
    assert len(chi2) == 3 and min(chi2) > -1e-6 and all(math.isfinite(v) for v in chi2)
