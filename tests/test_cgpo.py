"""The CGPO loop on tiny random models: every optimizer learns under a judge, tasks stay separate, CRRAFT falls
back to ā, resume is exact, bad configs fail with one line."""
import json

import pytest
import torch

from blendrl.cli.main import main
from blendrl.config import ConfigError, from_dict
from blendrl.config.cgpo_schema import TaskConfig
from blendrl.training.cgpo_run import build_cgpo_trainer, run_cgpo
from tests.tiny import tiny_cgpo_config


def one_task(cfg, name):
    cfg.tasks = [t for t in cfg.tasks if t.name == name]
    return cfg


@pytest.mark.parametrize("optimizer", ["crpg", "crraft", "codpo"])
def test_each_optimizer_raises_pass_rate_and_reward(tiny_dir, tmp_path, optimizer):
    cfg = one_task(tiny_cgpo_config(tiny_dir, tmp_path, **{"train.iterations": 60}), optimizer)
    res = run_cgpo(cfg)
    before, after = res["before"].metrics, res["after"].metrics
    p = f"eval/{optimizer}/"
    assert before[p + "pass_rate"] < 0.6 and after[p + "pass_rate"] >= 0.9, (before, after)
    assert after[p + "reward"] > before[p + "reward"] + 0.05
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any(f"{optimizer}/judge/no_no" in m for m in lines)


def test_a_tasks_rewards_never_reach_another_tasks_update(tiny_dir, tmp_path, monkeypatch):
    """Task crpg's advantages are the same whether task codpo's reward is x or 1000·x."""
    seen = {}

    def record(scale):
        cfg = tiny_cgpo_config(tiny_dir, tmp_path / str(scale))
        cfg.tasks = [cfg.tasks[2], cfg.tasks[0]]  # codpo first, then crpg
        trainer = build_cgpo_trainer(cfg)
        codpo = trainer.tasks[0]
        original = codpo.reward.score
        codpo.reward.score = lambda samples: original(samples) * scale
        calls = []
        real = trainer.accumulate

        def spy(task, parts, group):
            calls.append((task.name, [None if p.seq_weights is None else p.seq_weights.clone() for p in parts]))
            return real(task, parts, group)

        monkeypatch.setattr(trainer, "accumulate", spy)
        trainer.step()
        seen[scale] = calls

    record(1.0)
    record(1000.0)
    crpg_1 = [w for name, w in seen[1.0] if name == "crpg"][0]
    crpg_1000 = [w for name, w in seen[1000.0] if name == "crpg"][0]
    assert torch.equal(crpg_1[0], crpg_1000[0])


def test_crraft_falls_back_to_the_reference_response(tiny_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": f"what is a {w} ?", "metadata": {
        "reference_response": "yes yes"}}) for w in ["volcano", "planet", "ocean", "river"]))
    cfg = one_task(tiny_cgpo_config(tiny_dir, tmp_path / "run"), "crraft")
    t = cfg.tasks[0]
    t.prompts, t.eval_prompts = str(prompts), None
    t.calibration.baseline = "reference_response"
    t.judges[0].options = {"regex": r"^yes yes$"}  # random samples fail; ā passes
    trainer = build_cgpo_trainer(cfg)
    before = {k: v.clone() for k, v in trainer.m.policy.state_dict().items()}
    metrics = trainer.step().metrics
    assert metrics["crraft/crraft/fallback_rows"] == 2 and metrics["crraft/rows_trained"] == 2
    assert any(not torch.equal(before[k], v) for k, v in trainer.m.policy.state_dict().items())


def test_crraft_fallback_needs_a_passing_baseline(tiny_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "what is a volcano ?", "metadata": {"reference_response": "no"}}))
    cfg = one_task(tiny_cgpo_config(tiny_dir, tmp_path / "run"), "crraft")
    t = cfg.tasks[0]
    t.prompts, t.eval_prompts, t.calibration.baseline = str(prompts), None, "reference_response"
    t.judges[0].options = {"regex": r"^yes yes$"}
    metrics = build_cgpo_trainer(cfg).step().metrics
    assert metrics["crraft/crraft/fallback_rows"] == 0 and metrics["crraft/rows_trained"] == 0
    assert metrics["grad_norm"] == 0.0


def test_cgpo_resume_continues_exactly(tiny_dir, tmp_path):
    common = {"train.iterations": 4, "logging.save_every": 1}
    straight = run_cgpo(tiny_cgpo_config(tiny_dir, tmp_path / "a", **common))["trainer"].m.policy.state_dict()
    run_cgpo(tiny_cgpo_config(tiny_dir, tmp_path / "b", **common), stop_after=2)
    resumed = run_cgpo(tiny_cgpo_config(tiny_dir, tmp_path / "b", **common), resume=str(tmp_path / "b"))
    got = resumed["trainer"].m.policy.state_dict()
    assert all(torch.equal(straight[k], got[k]) for k in straight)
    assert (tmp_path / "b" / "baselines" / "crraft.json").is_file()


def test_nan_rewards_are_counted_skips(tiny_dir, tmp_path):
    cfg = one_task(tiny_cgpo_config(tiny_dir, tmp_path), "crpg")
    trainer = build_cgpo_trainer(cfg)
    original = trainer.tasks[0].reward.score
    trainer.tasks[0].reward.score = lambda samples: torch.where(
        torch.arange(len(samples)) % 2 == 0, original(samples), torch.tensor(float("nan")))
    metrics = trainer.step().metrics
    assert metrics["skipped/samples_total"] == 4 and torch.isfinite(torch.tensor(metrics["crpg/reward"]))


def test_cgpo_config_errors_are_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [{name: a, prompts: builtin:concise, rewards: [{kind: rule, name: contains}], "
                   "judges: [{kind: telepathy}]}]\n")
    assert main(["cgpo", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tasks[0].judges[0].kind: unknown judge 'telepathy'" in err
    with pytest.raises(ConfigError, match="codpo needs >= 2"):
        from_dict(TaskConfig, {"prompts": "builtin:concise", "rewards": [{"kind": "rule", "name": "contains"}],
                               "optimizer": {"name": "codpo"}, "samples_per_prompt": 1})
