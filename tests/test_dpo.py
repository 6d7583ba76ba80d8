"""blendrl dpo: the losses on hand numbers and equal to TRL's formula; a tiny model learns a preference; the
reference is the initial policy (loss log 2 before training, full or LoRA); resume is exact; strength weights."""
import math

import pytest
import torch
import torch.nn.functional as F

from blendrl.config import load_config
from blendrl.config.dpo_schema import DPORunConfig
from blendrl.functional.dpo import DPO_LOSSES, implicit_rewards, preference_logits

LOG2 = math.log(2.0)


def test_losses_on_hand_numbers():
    t = lambda x: torch.tensor([x])  # noqa: E731
    # z = (−1 − (−2)) − (−1.5 − (−1.5)) = 1; β = 0.1
    assert preference_logits(t(-1.0), t(-2.0), t(-1.5), t(-1.5)).item() == 1.0
    assert DPO_LOSSES["sigmoid"](t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.1).item() == pytest.approx(
        math.log(1 + math.exp(-0.1)))  # 0.644397
    assert DPO_LOSSES["sigmoid"](t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.1, label_smoothing=0.1).item() == \
        pytest.approx(0.9 * math.log(1 + math.exp(-0.1)) + 0.1 * math.log(1 + math.exp(0.1)))  # 0.654397
    assert DPO_LOSSES["ipo"](t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.1).item() == pytest.approx(16.0)  # (1 − 5)²
    assert implicit_rewards(t(-1.0), t(-1.5), 0.1).item() == pytest.approx(0.05)


def test_losses_equal_trls_formula():
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(16, generator=g) * 3 for _ in range(4))
    logits = (pc - pr) - (rc - rr)  # TRL's DPOTrainer.dpo_loss, written out
    for beta, ls in [(0.1, 0.0), (0.5, 0.2)]:
        trl = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
        assert torch.allclose(DPO_LOSSES["sigmoid"](pc, pr, rc, rr, beta=beta, label_smoothing=ls), trl)
        assert torch.allclose(DPO_LOSSES["ipo"](pc, pr, rc, rr, beta=beta), (logits - 1 / (2 * beta)) ** 2)


def _cfg(rm_tiny_dir, tmp_path, *over):
    return load_config(DPORunConfig, None, [
        f"model.name={rm_tiny_dir}", "data.train=builtin:synthetic", "data.eval=builtin:synthetic",  # the pairs it fits
        "data.limit=32", "data.max_length=96", "train.batch_size=8", "train.micro_batch_size=4", "train.lr=3e-3",
        "train.epochs=3", "train.schedule=constant", f"logging.output_dir={tmp_path}", "logging.tensorboard=false",
        "logging.progress=false", *over])


@pytest.mark.parametrize("over", [[], ["model.lora={r: 8, alpha: 64}", "train.lr=1e-2", "train.epochs=6"],
                                  ["loss.kind=ipo", "train.lr=1e-2", "train.epochs=6"]], ids=["dpo", "dpo-lora", "ipo"])
def test_a_tiny_model_learns_the_preference(rm_tiny_dir, tmp_path, over):
    from blendrl.training.dpo import run_dpo

    res = run_dpo(_cfg(rm_tiny_dir, tmp_path, *over))
    before, after = res["before"], res["after"]
    if "loss.kind=ipo" not in over:  # the reference is the initial policy: z = 0, loss log 2, margin 0
        assert before["eval/loss/dpo"] == pytest.approx(LOG2, abs=1e-5)
        assert before["eval/dpo/margin"] == pytest.approx(0.0, abs=1e-6)
    assert after["eval/dpo/margin"] > 0.05 and after["eval/dpo/reward_accuracy"] > 0.8
    assert after["eval/loss/dpo"] < before["eval/loss/dpo"]
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(res["final"])  # a plain save_pretrained folder (LoRA merged)


def test_resume_is_exact(rm_tiny_dir, tmp_path):
    from blendrl.training.dpo import run_dpo

    straight = run_dpo(_cfg(rm_tiny_dir, tmp_path / "a", "data.eval=null"))["trainer"]
    run_dpo(_cfg(rm_tiny_dir, tmp_path / "b", "data.eval=null", "logging.save_every=2"), stop_after=5)
    resumed = run_dpo(_cfg(rm_tiny_dir, tmp_path / "b", "data.eval=null"), resume=str(tmp_path / "b"))["trainer"]
    a, b = straight.policy.state_dict(), resumed.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_strength_weights_and_filters_need_the_mu_column(rm_tiny_dir, tmp_path):
    from blendrl.data import DataError
    from blendrl.training.dpo import build_dpo_trainer

    with pytest.raises(DataError, match=r"field 'mu': loss.strength weight needs the preference strength"):
        build_dpo_trainer(_cfg(rm_tiny_dir, tmp_path, "loss.strength=weight"))


def test_the_example_config_runs(rm_tiny_dir, tmp_path):
    from blendrl.training.dpo import run_dpo

    cfg = load_config(DPORunConfig, "examples/dpo.yaml", [
        f"model.name={rm_tiny_dir}", f"logging.output_dir={tmp_path}", "logging.progress=false", "data.limit=8",
        "data.eval=null"])
    assert run_dpo(cfg)["trainer"].iteration == 1


def test_the_cli_runs_and_reports(rm_tiny_dir, tmp_path, capsys):
    from blendrl.cli.main import main

    assert main(["dpo", "--config", "examples/dpo.yaml", "--set", f"model.name={rm_tiny_dir}", "--set",
                 f"logging.output_dir={tmp_path}", "--set", "logging.progress=false", "--set", "data.limit=8",
                 "--set", "data.eval=builtin:synthetic"]) == 0
    out = capsys.readouterr().out
    assert "held-out before: loss 0.6931" in out and "final policy:" in out
    assert main(["dpo", "--set", "loss.kind=kto"]) == 2  # an unknown loss is a one-line config error
    assert "loss.kind: unknown DPO loss 'kto'" in capsys.readouterr().err


def test_judge_pairs_from_a_cgpo_config_are_passing_over_failing_and_train_dpo(tiny_dir, tmp_path):
    """The DPO row of the head-to-head: pairs from the initial policy's samples on the CGPO tasks (same budget),
    chosen passes every judge and rejected fails one; blendrl dpo trains on the file."""
    from blendrl.data.preferences import load_preferences
    from blendrl.training.cgpo.pairs import judge_pairs
    from tests.tiny import tiny_cgpo_config

    cfg = tiny_cgpo_config(tiny_dir, tmp_path / "cgpo")
    stats = judge_pairs(cfg, 3, tmp_path / "pairs.jsonl")
    budget = 3 * sum(t.prompts_per_iteration * t.samples_per_prompt for t in cfg.tasks)
    assert sum(t["samples"] for t in stats["tasks"].values()) == budget
    pairs = load_preferences(str(tmp_path / "pairs.jsonl"))
    assert len(pairs) == stats["pairs"] > 0
    for p in pairs:  # chosen passes every judge (one forbids the word "no"); rejected fails one, with its reason
        assert "no" not in p.chosen.split() and p.raw["rejected_reasons"], (p.chosen, p.raw)
    assert {p.raw["task"] for p in pairs} <= {t.name for t in cfg.tasks}
    from blendrl.training.dpo import run_dpo

    res = run_dpo(load_config(DPORunConfig, None, [
        f"model.name={tiny_dir}", f"data.train={tmp_path}/pairs.jsonl", f"data.eval={tmp_path}/pairs.jsonl",
        "data.max_length=96", "train.batch_size=4", "train.micro_batch_size=4", "train.lr=3e-3", "train.epochs=3",
        f"logging.output_dir={tmp_path}/dpo", "logging.tensorboard=false", "logging.progress=false"]))
    assert res["after"]["eval/dpo/margin"] > res["before"]["eval/dpo/margin"]  # it learns its judge pairs


def test_policy_and_reference_are_built_on_the_runs_device_and_dtype(rm_tiny_dir, tmp_path, monkeypatch):
    """``model.device``, ``model.dtype`` and ``model.gradient_checkpointing`` reach the policy and the reference (the
    meta device stands in for a GPU: only the parameters' metadata is built, no weights are moved)."""
    from blendrl.core import dist
    from blendrl.training.dpo import build_dpo_trainer

    asked = []
    monkeypatch.setattr(dist, "resolve_device", lambda name: asked.append(name) or torch.device("meta"))
    trainer, _ = build_dpo_trainer(_cfg(rm_tiny_dir, tmp_path, "model.device=cuda:1", "model.dtype=bfloat16",
                                        "model.gradient_checkpointing=true", "model.offload_frozen=false"))
    assert asked == ["cuda:1"]
    for model in (trainer.policy, trainer.reference.model):
        assert {(p.device.type, p.dtype) for p in model.parameters()} == {("meta", torch.bfloat16)}
    assert trainer.reference.model is not trainer.policy and trainer.reference.offloaded is None
    assert any(getattr(m, "gradient_checkpointing", False) for m in trainer.policy.modules())


@pytest.mark.parametrize("offload", ["auto", "false"])
def test_the_reference_is_offloaded_as_model_offload_frozen_says(rm_tiny_dir, tmp_path, offload):
    from blendrl.training.dpo import build_dpo_trainer

    trainer, _ = build_dpo_trainer(_cfg(rm_tiny_dir, tmp_path, f"model.offload_frozen={offload}"))
    assert (trainer.reference.offloaded is not None) == (offload == "auto")  # a frozen copy of its own: offloadable
    assert not any(getattr(m, "gradient_checkpointing", False) for m in trainer.policy.modules())


def test_held_out_evaluation_every_logging_eval_every_steps_and_the_moved_key(rm_tiny_dir, tmp_path):
    import json

    from blendrl.config import ConfigError
    from blendrl.training.dpo import run_dpo

    res = run_dpo(_cfg(rm_tiny_dir, tmp_path, "logging.eval_every=4"))
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "eval/loss/dpo" in r] == [0, 4, 8, 12]  # before, @ 4, @ 8, after
    assert json.loads((tmp_path / "eval.json").read_text()) == {"before": res["before"], "after": res["after"]}
    with pytest.raises(ConfigError, match=r"^eval_every: moved to logging.eval_every"):
        _cfg(rm_tiny_dir, tmp_path, "eval_every=4")


def test_strength_weights_each_pair_by_sigmoid_mu_and_the_filter_drops_weak_pairs(rm_tiny_dir, tmp_path):
    """``loss.strength: weight``: pair i's loss counts σ(μ̂_i) (a likely-mislabelled pair, μ̂ < 0, counts less);
    ``filter`` drops pairs with μ̂ < ``min_strength``. Mutation caught: the weight replaced by 1."""
    import json

    from blendrl.data.preferences import load_preferences
    from blendrl.training.dpo import build_dpo_trainer

    pairs = load_preferences("builtin:synthetic", "error")[:8]
    mus = [2.0, -1.5, 0.5, -0.25, 1.0, 0.0, -3.0, 0.75]
    path = tmp_path / "strength.jsonl"
    path.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "mu": m}) + "\n"
                            for p, m in zip(pairs, mus)))
    over = [f"data.train={path}", "data.eval=null", "train.batch_size=8", "train.micro_batch_size=4"]
    trainer, _ = build_dpo_trainer(_cfg(rm_tiny_dir, tmp_path / "w", *over, "loss.strength=weight"))
    sig = torch.sigmoid(torch.tensor(mus))
    assert torch.allclose(trainer.pairs.weight, sig)
    trainer.step()  # policy ≠ reference from here on, so the pairs' losses differ
    idx = trainer.batch_indices(1)
    with torch.no_grad():
        losses, _ = trainer.pair_losses(trainer.pairs, idx, grad=False)  # (8,) before the second step
    want = (losses * sig[idx]).sum() / sig[idx].sum()
    assert trainer.step().metrics["loss/dpo"] == pytest.approx(want.item(), rel=1e-5)
    assert not torch.isclose(want, losses.mean(), rtol=1e-4)  # the weights change the number
    kept, _ = build_dpo_trainer(_cfg(rm_tiny_dir, tmp_path / "f", *over, "loss.strength=filter",
                                     "loss.min_strength=0.5"))
    assert [p.mu for p in kept.pairs.pairs] == [m for m in mus if m >= 0.5]
    assert torch.equal(kept.pairs.weight, torch.ones(4))
