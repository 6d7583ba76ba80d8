"""Data-parallel training over torch.distributed (gloo, 2 processes on this CPU): 2 ranks end with the weights of
1 rank on the same global batch, and a checkpoint written by 2 ranks resumes on 1 to the uninterrupted weights.

Tolerance: the ranks' rows run through matmuls of other shapes (each rank pads its own prompts) and their
gradients are summed in another order, so the weights agree to float rounding, amplified by AdamW's
normalisation over a few steps: |Δ| ≤ 2e-5 on weights of order 0.02–1 (measured 0 to 5e-6 here). RLOO's groups
stay on one rank; PPO's whitening and REINFORCE's batch-mean baseline are the whole batch's (without the gather
they fail this test)."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.tiny import tiny_cgpo_config, tiny_config

ATOL = 2e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build(kind: str, model_dir, out_dir, overrides: dict, resume):
    """(trainer, cfg, report) of a PPO-family or a CGPO run on the tiny model."""
    if kind == "cgpo":
        from blendrl.training.cgpo.run import build_cgpo_trainer, cgpo_report

        cfg = tiny_cgpo_config(model_dir, out_dir, **overrides)
        trainer = build_cgpo_trainer(cfg, resume)
        return trainer, cfg, cgpo_report(trainer.tasks)
    from blendrl.training.run import build_trainer, ppo_report

    cfg = tiny_config(model_dir, out_dir, **overrides)
    trainer = build_trainer(cfg, resume)
    return trainer, cfg, ppo_report(bool(trainer.eval_prompts))


def _rank_main(rank: int, world: int, port: int, model_dir: str, out_dir: str, overrides: dict, result: str,
               resume: str | None, kill_at: int | None, kind: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from blendrl.training.run import drive

    trainer, cfg, report = _build(kind, model_dir, out_dir, overrides, resume)
    if kill_at is not None and rank == 1:  # rank 1 dies in the middle of iteration kill_at + 1
        real_submit = trainer.submit_scores

        def submit_scores(*args):
            if trainer.iteration == kill_at:
                os._exit(3)
            return real_submit(*args)

        trainer.submit_scores = submit_scores
    drive(trainer, cfg, report)
    from blendrl.models.layout import is_sharded
    from blendrl.training.fsdp import full_state_dict

    weights = full_state_dict(trainer.m.policy) if is_sharded(trainer.m.policy) else trainer.m.policy.state_dict()
    if rank == 0:
        torch.save({k: v.clone() for k, v in weights.items()}, result)
    torch.distributed.destroy_process_group()


def _run(world: int, tiny_dir, out_dir, overrides: dict, tmp_path, resume=None, kill_at=None, kind="ppo") -> dict:
    result = str(tmp_path / f"weights-{world}-{abs(hash(str(out_dir)))}.pt")
    if world == 1:
        from blendrl.training.run import drive

        trainer, cfg, report = _build(kind, tiny_dir, out_dir, overrides, resume)
        drive(trainer, cfg, report)
        return {k: v.clone() for k, v in trainer.m.policy.state_dict().items()}
    mp.spawn(_rank_main, args=(world, _free_port(), str(tiny_dir), str(out_dir), overrides, result, resume, kill_at,
                               kind), nprocs=world, join=True)
    return torch.load(result)


def _metric_lines(out_dir) -> list[dict]:
    import json

    return [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]


def _last_metrics(out_dir) -> dict:
    import json

    lines = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [m for m in lines if "time/iteration_s" in m][-1]  # the last training step's (not an evaluation's)


def _assert_same_metrics(a: dict, b: dict, keys: list[str]) -> None:
    """The logged statistics of the whole batch agree (rank 0 logs them for every rank's rows). ``abs=1e-5``: a loss
    is a centred mean of terms near 1 summed in another order on two ranks, so its float32 rounding is absolute,
    not relative to its small value."""
    for k in keys:
        assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (k, a[k], b[k])


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= ATOL, worst


BASE = {"train.iterations": 2, "logging.eval_before": False, "data.eval_prompts": "null", "logging.save_every": 1}


@pytest.mark.parametrize("algo", [
    {"algorithm.name": "ppo", "algorithm.epochs": 2},
    {"algorithm.name": "rloo", "algorithm.epochs": 1, "train.samples_per_prompt": 2},
    {"algorithm.name": "reinforce", "algorithm.epochs": 1, "algorithm.whiten_advantages": True},
    {"algorithm.name": "ppo", "algorithm.epochs": 1, "train.minibatches": 2, "algorithm.whiten_rewards": True,
     "shaping.normalize": "normalize", "kl.coef": 0.05, "kl.adaptive": True},
    {"algorithm.name": "grpo", "algorithm.epochs": 1, "train.samples_per_prompt": 2,
     "algorithm.loss_agg": "seq-mean-token-mean", "kl.placement": "loss", "kl.coef": 0.1},
    {"algorithm.name": "rloo", "algorithm.epochs": 2, "train.samples_per_prompt": 2, "algorithm.policy_loss": "gspo",
     "algorithm.clip_high": 0.28, "algorithm.dual_clip": 3.0},
    {"algorithm.name": "rloo", "algorithm.epochs": 1, "train.samples_per_prompt": 2, "algorithm.loss_agg": "token-mean",
     "algorithm.clip_high": 0.28, "dynamic_sampling.enabled": True},
    {"algorithm.name": "ppo-lagrangian", "algorithm.epochs": 1, "kl.coef": 0.05, "algorithm.lagrangian.lambda_lr": 0.5,
     "costs": "[{kind: judge_violations, options: {judges: [{kind: format, options: {forbid: ['no']}}]}}]"},
    {"algorithm.name": "ppo", "algorithm.epochs": 1, "kl.coef": 0.05, "plugins": "[tests.tiny_env]",
     "environment.kind": "tiny_probe", "environment.options": "{word: volcano}", "environment.max_turns": 3,
     "environment.stop_words": "[volcano]", "train.prompts_per_iteration": 8,
     "rewards": "[{kind: tiny_called}]", "generation.max_new_tokens": 6},
], ids=["ppo", "rloo", "reinforce-whitened", "ppo-minibatches-shaping", "grpo-seq-mean-kl-loss",
        "rloo-gspo-clip-higher", "rloo-clip-higher-dynamic-sampling", "ppo-lagrangian", "ppo-multi-turn"])
def test_two_ranks_train_to_the_weights_of_one(tiny_dir, tmp_path, algo):
    over = {**BASE, **algo}
    one = _run(1, tiny_dir, tmp_path / "one", over, tmp_path)
    two = _run(2, tiny_dir, tmp_path / "two", over, tmp_path)
    _assert_same(one, two)
    _assert_same_metrics(_last_metrics(tmp_path / "one"), _last_metrics(tmp_path / "two"),
                         ["reward/mean", "kl/seq_k1", "kl/token_k1", "response/length", "grad_norm/policy",
                          "loss/policy", "hack/words", *(["cost/mean", "lagrangian/lambda", "loss/cost_value"]
                                                         if "costs" in algo else []),
                          *(["env/turns", "env/tool_calls"] if "environment.kind" in algo else [])])
    from blendrl.models import load_causal_lm

    before = load_causal_lm(str(tiny_dir)).state_dict()
    assert max((one[k] - before[k]).abs().max().item() for k in one) > 1e-3  # it trained
    if "environment.kind" in algo:  # episodes went past one turn, so the ranks took later turns apart
        assert max(_last_metrics(tmp_path / "one")["env/turns"], 0) > 1 or any(
            m.get("env/tool_calls", 0) > 0 for m in _metric_lines(tmp_path / "one")), "no episode called the tool"


def test_a_rank_killed_mid_run_resumes_on_one_rank_to_the_uninterrupted_weights(tiny_dir, tmp_path):
    over = {**BASE, "train.iterations": 3}
    straight = _run(1, tiny_dir, tmp_path / "straight", over, tmp_path)
    with pytest.raises(Exception, match="exit"):  # rank 1 dies during iteration 3; checkpoints after 1 and 2 exist
        _run(2, tiny_dir, tmp_path / "split", over, tmp_path, kill_at=2)
    from blendrl.training.checkpoint import find_checkpoint

    # rank 0 may be stopped while it writes checkpoint 2: the write is atomic, so the latest is 1 or 2, whole
    assert find_checkpoint(str(tmp_path / "split")).name in ("iter-000001", "iter-000002")
    resumed = _run(1, tiny_dir, tmp_path / "split", over, tmp_path, resume=str(tmp_path / "split"))
    _assert_same(straight, resumed)


def test_two_ranks_train_cgpo_to_the_weights_of_one(tiny_dir, tmp_path):
    """Three tasks (CRPG with its batch-mean baseline, CRRAFT with generated ā and its fallback, CODPO pairs), one
    optimizer step per iteration summed over tasks and ranks."""
    over = {"train.iterations": 2, "logging.eval_before": False, "logging.save_every": 1,
            "tasks.0.rewards": "[{kind: rule, name: concise_mention}]"}  # CRPG: rewards that vary (a baseline to get)
    for i in range(3):
        over[f"tasks.{i}.eval_prompts"] = "null"
    one = _run(1, tiny_dir, tmp_path / "one", over, tmp_path, kind="cgpo")
    two = _run(2, tiny_dir, tmp_path / "two", over, tmp_path, kind="cgpo")
    _assert_same(one, two)
    keys = ["grad_norm", "skipped/samples_total"] + [f"{t}/{m}" for t in ("crpg", "crraft", "codpo") for m in
                                                     ("loss", "rows_trained", "reward/mean", "pass_rate", "kl/seq_k1")]
    _assert_same_metrics(_last_metrics(tmp_path / "one"), _last_metrics(tmp_path / "two"), keys)
    from blendrl.models import load_causal_lm

    before = load_causal_lm(str(tiny_dir)).state_dict()
    assert max((one[k] - before[k]).abs().max().item() for k in one) > 1e-3


FSDP = {**BASE, "train.fsdp": True}


@pytest.mark.parametrize("algo", [{"algorithm.name": "ppo", "algorithm.epochs": 2},
                                  {"algorithm.name": "rloo", "train.samples_per_prompt": 2}], ids=["ppo", "rloo"])
def test_two_sharded_ranks_train_to_the_weights_of_one(tiny_dir, tmp_path, algo):
    """FSDP2 on CPU over gloo: each rank holds half of the policy's and critic's weights; the result is the
    unsharded 1-rank run's (the fast paths that read the model's parts step aside: the same numbers to float
    rounding), and the checkpoint is plain save_pretrained folders."""
    over = {**FSDP, **algo, "data.eval_prompts": "builtin:concise_eval", "logging.eval_prompts": 4}
    one = _run(1, tiny_dir, tmp_path / "one", over, tmp_path)
    two = _run(2, tiny_dir, tmp_path / "two", over, tmp_path)
    _assert_same(one, two)
    _assert_same_metrics(_last_metrics(tmp_path / "one"), _last_metrics(tmp_path / "two"),
                         ["reward/mean", "kl/seq_k1", "grad_norm/policy", "loss/policy"])
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "final")
    for k, v in final.state_dict().items():
        assert torch.allclose(v, two[k], atol=1e-6), k


def test_a_sharded_checkpoint_resumes_on_one_rank(tiny_dir, tmp_path):
    over = {**FSDP, "train.iterations": 3}
    straight = _run(1, tiny_dir, tmp_path / "straight", over, tmp_path)
    _run(2, tiny_dir, tmp_path / "split", {**over, "train.iterations": 2}, tmp_path)
    resumed = _run(1, tiny_dir, tmp_path / "split", over, tmp_path, resume=str(tmp_path / "split"))
    _assert_same(straight, resumed)
