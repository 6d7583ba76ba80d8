"""The CGPO loop on tiny random models: every optimizer learns under a judge, tasks stay separate, CRRAFT falls
back to ā, resume is exact, bad configs fail with one line."""
import json
from pathlib import Path

import pytest
import torch

from blendrl.cli.main import main
from blendrl.config import ConfigError, from_dict
from blendrl.training.cgpo.run import build_cgpo_trainer, run_cgpo
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
    assert after[p + "reward/mean"] > before[p + "reward/mean"] + 0.05
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
        codpo.reward.score = lambda samples: original(samples).total * scale
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


def test_a_truncated_baseline_is_never_a_crraft_fallback_row(tiny_dir, tmp_path):
    """ā that hit the token limit is no fallback row even when every judge passes it (no ``eos`` judge here): its
    EOS would be trained on. Mutation caught: the baselines' finished flag replaced by True (as it once was)."""
    import copy

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": f"what is a {w} ?"}) for w in ["volcano", "planet", "ocean",
                                                                                        "river"]))
    cfg = one_task(tiny_cgpo_config(tiny_dir, tmp_path / "run"), "crraft")
    t = cfg.tasks[0]
    t.prompts, t.eval_prompts, t.calibration.baseline = str(prompts), None, "generate"
    t.judges[0].options = {"regex": r"^yes yes$"}  # random samples fail; every ā is "yes yes"
    trainer = build_cgpo_trainer(cfg)
    task = trainer.tasks[0]
    drawn = copy.deepcopy(task.sampler).next_indices(t.prompts_per_iteration)
    finished = [i != drawn[0] for i in range(4)]  # the first drawn prompt's ā was truncated, the others' were not
    task.add_baselines(task.prompts, ["yes yes"] * 4, finished)
    metrics = trainer.step().metrics
    want = sum(finished[i] for i in drawn)
    assert 0 < want < len(drawn), drawn
    assert metrics["crraft/crraft/fallback_rows"] == want, (drawn, metrics["crraft/crraft/fallback_rows"])
    assert [task.baseline_passes(p) for p in task.prompts] == finished
    cached = json.loads((tmp_path / "run" / "baselines" / "crraft.json").read_text())
    assert [row[3] for row in cached] == finished  # the flag survives a resume


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
        torch.arange(len(samples)) % 2 == 0, original(samples).total, torch.tensor(float("nan")))
    metrics = trainer.step().metrics
    assert metrics["skipped/samples_total"] == 4 and torch.isfinite(torch.tensor(metrics["crpg/reward/mean"]))


def test_cgpo_config_errors_are_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [{name: a, prompts: builtin:concise, rewards: [{kind: rule, name: contains}], "
                   "judges: [{kind: telepathy}]}]\n")
    assert main(["cgpo", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tasks[0].judges[0].kind: unknown judge kind 'telepathy'" in err
    from blendrl.config.cgpo_schema import CGPORunConfig
    from blendrl.training.names import check_names

    def task(**overrides):
        return {"name": "a", "prompts": "builtin:concise", "rewards": [{"kind": "rule", "name": "contains"}],
                "judges": [{"kind": "eos", "name": "ends"}], **overrides}

    def check(**overrides):
        check_names(from_dict(CGPORunConfig, {"tasks": [task(**overrides)]}))

    # each optimizer owns its checks, reported with the key path before any model loads
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.optimizer\.name: codpo needs the task's samples_per_prompt"):
        check(optimizer={"name": "codpo"}, samples_per_prompt=1)
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.optimizer\.beta: the crpg optimizer does not read it"):
        check(optimizer={"name": "crpg", "beta": 0.5})
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.optimizer\.thresholds\.endz: no judge of task 'a'"):
        check(optimizer={"name": "lagrangian-reinforce", "thresholds": {"endz": 0.1}})
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.judges\[0\]\.options\.max_word: judge kind 'format' has no"):
        check(judges=[{"kind": "format", "options": {"max_word": 3}}])
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.rewards\[0\]\.path: required for a hf_rm reward source"):
        check(rewards=[{"kind": "hf_rm"}])
    check(optimizer={"name": "lagrangian-reinforce", "thresholds": {"ends": 0.1}})  # a judge of the task: fine


# ---------------------------------------------------------------------- summed-reward PPO baseline (cgpo-ppo)
def write_yaml(cfg, path):
    import yaml

    from blendrl.config import to_dict

    path.write_text(yaml.safe_dump(to_dict(cfg)))
    return str(path)


def test_task_sum_reward_adds_the_bonus_only_where_the_tasks_judges_pass():
    from blendrl.config import RewardSourceConfig
    from blendrl.config.cgpo_schema import JudgeConfig
    from blendrl.judges import build_judges
    from blendrl.rewards import RewardError, Sample, build_reward
    from blendrl.training.cgpo.summed_ppo import TaskSumReward

    tasks = {"a": (build_reward([RewardSourceConfig(kind="callable", name="tests.tiny:yes_share")]),
                   build_judges([JudgeConfig(kind="format", options={"forbid": ["no"]})])),
             "b": (build_reward([RewardSourceConfig(kind="callable", name="tests.tiny:yes_share", weight=2.0)]),
                   build_judges([JudgeConfig(kind="format", options={"max_words": 1})]))}
    reward = TaskSumReward(tasks, judge_bonus=0.5)
    s = lambda text, task: Sample([{"role": "user", "content": "q"}], text, {"cgpo_task": task}, "f, row 1")  # noqa
    got = reward.score([s("yes no", "a"), s("yes yes", "a"), s("yes no", "b"), s("yes", "b")])
    # yes_share: share of words that are "yes"; a: 1·share (+0.5 if no "no"); b: 2·share (+0.5 if ≤ 1 word)
    assert torch.allclose(got.total, torch.tensor([0.5, 1.5, 1.0, 2.5]))
    assert got.stats["passed"].tolist() == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(RewardError, match=r"f, row 1, field 'metadata.cgpo_task'"):
        reward.score([s("yes", "c")])


def test_summed_ppo_pool_matches_the_cgpo_task_shares(tiny_dir, tmp_path):
    from blendrl.training.cgpo.summed_ppo import build_summed_ppo, summed_ppo_config

    cfg = tiny_cgpo_config(tiny_dir, tmp_path)
    cfg.tasks[0].prompts_per_iteration = 6  # crpg 6·4 = 24 of 40 responses per iteration
    cfg.tasks[0].system_prompt = "Be brief."
    trainer = build_summed_ppo(cfg)
    rows = trainer.train_prompts
    share = sum(r.metadata["cgpo_task"] == "crpg" for r in rows) / len(rows)
    assert abs(share - 24 / 40) < 0.05
    assert all(r.messages[0] == {"role": "system", "content": "Be brief."}
               for r in rows if r.metadata["cgpo_task"] == "crpg")
    assert all("cgpo_task" not in p.metadata for t in trainer.tasks for p in t.prompts)  # the tasks' own untouched
    # each task's reward models are built once: the pool's reward holds the very sources the evaluation uses
    inner = trainer.reward.sources[0]
    assert all(inner.tasks[t.name][0] is t.reward and inner.tasks[t.name][1] is t.judges for t in trainer.tasks)
    ppo = summed_ppo_config(cfg, ["kl.coef=0.2"])
    assert ppo.train.prompts_per_iteration == 40 and ppo.train.samples_per_prompt == 1
    assert ppo.kl.coef == 0.2 and ppo.train.lr == cfg.train.lr and ppo.algorithm.name == "ppo"
    from dataclasses import fields

    from blendrl.config.schema import LoopSettings
    for f in fields(LoopSettings):  # every optimizer and loop setting carries over, none dropped
        assert getattr(ppo.train, f.name) == getattr(cfg.train, f.name), f.name
    assert ppo.perf == cfg.perf


def test_summed_ppo_trains_and_reports_per_task_like_cgpo(tiny_dir, tmp_path, capsys):
    from blendrl.eval.compare import compare_table
    from blendrl.training.cgpo.summed_ppo import run_summed_ppo

    cfg = tiny_cgpo_config(tiny_dir, tmp_path / "cgpo", **{"train.iterations": 2})
    run_cgpo(cfg)
    result = run_summed_ppo(cfg, 1.0, ["algorithm.epochs=2"])
    assert (tmp_path / "cgpo_ppo" / "final" / "model.safetensors").is_file()
    before_ppo, before_cgpo = result["before"].metrics, json.loads(
        (tmp_path / "cgpo" / "metrics.jsonl").read_text().splitlines()[0])
    for task in ("crpg", "crraft", "codpo"):  # same model, same held-out prompts and seed: the same "before"
        assert before_ppo[f"eval/{task}/pass_rate"] == before_cgpo[f"eval/{task}/pass_rate"]
    table = compare_table({"cgpo": tmp_path / "cgpo", "ppo": tmp_path / "cgpo_ppo"})
    assert "| crraft | judge/no_no |" in table and "ppo after" in table


def test_tasks_with_the_same_sampling_share_one_batched_rollout_and_get_their_own_rows_back():
    from types import SimpleNamespace

    from blendrl.rollout import Rollout, SamplingParams, left_pad
    from blendrl.training.cgpo.trainer import sample_tasks

    calls = []

    class Echo:  # response = the prompt's last token repeated len(prompt) times
        def sample(self, prompts, params, gen, shard=None):
            calls.append(len(prompts))
            ids, mask = left_pad(prompts, 0)
            width = max(map(len, prompts))
            resp = torch.zeros((len(prompts), width), dtype=torch.long)
            rmask = torch.zeros((len(prompts), width))
            for i, p in enumerate(prompts):
                resp[i, : len(p)], rmask[i, : len(p)] = p[-1], 1.0
            return Rollout(ids, mask, resp, rmask, -rmask, torch.ones(len(prompts), dtype=torch.bool))

    same, other = SamplingParams(8, 1.0, 1.0), SamplingParams(4, 1.0, 1.0)
    tasks = [SimpleNamespace(params=same, episodes=None), SimpleNamespace(params=other, episodes=None),
             SimpleNamespace(params=same, episodes=None)]
    p = lambda *ids: SimpleNamespace(input_ids=list(ids))  # noqa: E731
    batches = [[p(5), p(6)], [p(7, 7, 7)], [p(1, 2, 3, 9)]]
    out = sample_tasks(Echo(), tasks, batches, torch.Generator())
    assert calls == [3, 1]  # tasks 0 and 2 in one call
    assert out[0].response_ids.tolist() == [[5], [6]] and out[0].prompt_ids.tolist() == [[5], [6]]  # compacted
    assert out[2].response_ids.tolist() == [[9, 9, 9, 9]] and out[2].prompt_mask.tolist() == [[1, 1, 1, 1]]
    assert out[1].response_ids.tolist() == [[7, 7, 7]]


def test_a_run_can_skip_the_before_evaluation_and_the_table_takes_it_from_another_run(tiny_dir, tmp_path):
    from blendrl.eval.compare import compare_table
    from blendrl.training.run import run
    from tests.tiny import tiny_config

    result = run(tiny_config(tiny_dir, tmp_path / "skip", **{"train.iterations": 1, "logging.eval_before": "false"}))
    assert "before" not in result and "after" in result
    logged = [json.loads(line) for line in (tmp_path / "skip" / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in logged if "eval/reward/mean" in m] == [1]

    def write_run(name: str, evals: dict[int, float]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        lines = [{"iteration": it, "eval/chat/pass_rate": v} for it, v in evals.items()]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
        return folder

    measured = write_run("measured", {0: 0.25, 4: 0.5})
    skipped = write_run("skipped", {4: 0.75})
    table = compare_table({"skipped": skipped, "measured": measured})  # the run with a "before" comes second
    assert "| chat | pass_rate | 0.25 | 0.75 | 0.50 |" in table
    with pytest.raises(ValueError, match="evaluated before training"):
        compare_table({"skipped": skipped})


def test_summed_ppo_training_judges_see_a_truncated_response_as_a_violation(tiny_dir, tmp_path):
    """The summed reward's ``eos`` judge reads ``finished`` from the rollout (it used to see every sample as
    finished, so truncated answers earned the judge bonus during summed-PPO training)."""
    from blendrl.config.cgpo_schema import JudgeConfig
    from blendrl.rewards import Sample
    from blendrl.training.cgpo.summed_ppo import build_summed_ppo

    cfg = one_task(tiny_cgpo_config(tiny_dir, tmp_path / "cgpo", **{"generation.max_new_tokens": 3}), "crpg")
    cfg.tasks[0].judges = [JudgeConfig(kind="eos", name="ends")]
    trainer = build_summed_ppo(cfg)
    seen: list[Sample] = []
    inner = trainer.reward.sources[0] if hasattr(trainer.reward, "sources") else trainer.reward
    original = inner.score
    inner.score = lambda samples: (seen.extend(samples), original(samples))[1]
    real_sample = trainer.generator.sample
    rollouts = []
    trainer.generator.sample = lambda *a, **k: rollouts.append(real_sample(*a, **k)) or rollouts[-1]
    trainer.step()
    finished = rollouts[0].finished.tolist()
    assert [s.finished for s in seen] == finished and not all(finished)  # 3 tokens: most answers are cut
    bonus = original(seen).total - inner.tasks["crpg"][0].score(seen).total
    assert bonus.tolist() == [1.0 if f else 0.0 for f in finished]


def test_hacking_signals_and_sandbox_stats_reach_the_metrics_and_the_eval_table(tiny_dir, tmp_path):
    from blendrl.config.cgpo_schema import JudgeConfig
    from blendrl.training.cgpo.run import eval_table

    cfg = one_task(tiny_cgpo_config(tiny_dir, tmp_path, **{"train.iterations": 1}), "crpg")
    task = cfg.tasks[0]
    task.prompts, task.eval_prompts = "builtin:code", "builtin:code_eval"
    task.judges = [JudgeConfig(kind="code", name="unit_tests")]
    res = run_cgpo(cfg)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = next(m for m in lines if "crpg/reward/mean" in m)
    # the tiny model writes no code: every sample is a "no_code" violation, and nothing was tried in the sandbox
    n = task.prompts_per_iteration * task.samples_per_prompt
    assert train["crpg/judge/unit_tests/violation/no_code"] == n and train["crpg/judge/unit_tests"] == 0
    assert train["crpg/judge/unit_tests/sandbox/process"] == 0
    for key in ("hack/injection", "hack/repetition", "hack/truncated", "hack/words", "hack/repeats_prompt"):
        assert f"crpg/{key}" in train and f"eval/crpg/{key}" in res["after"].metrics
    assert "injection=" in eval_table(res["after"].metrics, res["trainer"].tasks)


def test_the_multi_task_gradient_is_the_rho_weighted_sum_of_the_task_gradients(tiny_dir, tmp_path):
    """One CGPO step applies Σ_l ρ_l·∇L_l (CGPO eq. 7 over tasks). Mutations caught: the task weight ρ dropped,
    gradients zeroed between tasks (only the last task's gradient left), a task's gradient counted twice."""
    cfg = tiny_cgpo_config(tiny_dir, tmp_path, **{"train.max_grad_norm": 1e9})
    cfg.tasks = [cfg.tasks[0], cfg.tasks[2]]  # crpg and codpo: both always have rows to train
    cfg.tasks[0].weight, cfg.tasks[1].weight = 1.0, 3.0
    trainer = build_cgpo_trainer(cfg)
    calls, real_accumulate = [], trainer.accumulate

    def record(task, parts, group):
        calls.append((task, parts, group))
        return real_accumulate(task, parts, group)

    trainer.accumulate = record
    params = [p for g in trainer.engine.optimizer.param_groups for p in g["params"]]
    seen = {}
    real_step = trainer.engine.optimizer.step

    def check_then_step(*a, **k):
        total = [None if p.grad is None else p.grad.clone() for p in params]
        per_task = []
        for task, parts, group in calls:
            trainer.engine.optimizer.zero_grad(set_to_none=True)
            weight, task.cfg.weight = task.cfg.weight, 1.0
            real_accumulate(task, parts, group)
            task.cfg.weight = weight
            per_task.append((weight, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]))
        seen["tasks"] = [c[0].name for c in calls]
        # relative to each parameter's largest gradient entry: the two sums differ only by float rounding
        seen["diff"] = max(float((t - sum(w * g[i] for w, g in per_task)).abs().max() / (t.abs().max() + 1e-12))
                           for i, t in enumerate(total) if t is not None)
        for p, t in zip(params, total):
            p.grad = t
        return real_step(*a, **k)

    trainer.engine.optimizer.step = check_then_step
    trainer.step()
    assert seen["tasks"] == ["crpg", "codpo"] and seen["diff"] < 1e-5


def test_calibration_pairs_each_prompt_with_its_own_baseline(tiny_dir, tmp_path):
    """R_calib = σ(r(s, a) − r(s, ā_s)) with ā of the *same* prompt (CGPO eq. 5). Mutations caught: calibration
    skipped (raw r returned), or a prompt paired with another prompt's ā (e.g. the batch's order shuffled)."""
    from blendrl.rewards import make_samples

    cfg = one_task(tiny_cgpo_config(tiny_dir, tmp_path), "crraft")  # ā generated from π_ref
    trainer = build_cgpo_trainer(cfg)
    task = trainer.tasks[0]
    task.reward.score = lambda samples: torch.tensor([float(len(s.response)) for s in samples])  # a plain tensor
    prompts = [task.prompts[i] for i in (0, 1, 2) for _ in range(2)]
    task.ensure_baselines(prompts)
    task.add_baselines(prompts[::2], ["a", "bbb", "cccccc"], [True] * 3)  # ā of lengths 1, 3 and 6
    task._baseline_scores.clear()
    responses = ["xx", "xxxx", "xx", "xxxx", "xx", "xxxx"]
    scored = task.score(prompts, responses, torch.ones(6, dtype=torch.bool))
    want = torch.sigmoid(torch.tensor([2.0 - 1, 4 - 1, 2 - 3, 4 - 3, 2 - 6, 4 - 6]))
    assert torch.allclose(scored.raw, torch.tensor([2.0, 4, 2, 4, 2, 4])) and torch.allclose(scored.reward, want)
    assert make_samples(prompts, responses, [True] * 6)[2].where == f"{prompts[2].source}, row {prompts[2].row}"
