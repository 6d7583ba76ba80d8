"""The RL loop on tiny random models: it learns, it resumes exactly after SIGKILL, it fails loudly on bad input."""
import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from blendrl.config import to_dict
from blendrl.training.run import build_trainer, run
from tests.tiny import finish, kill_once_checkpointed, launch, learn_yes, tiny_config



@pytest.mark.parametrize("algo", ["ppo", "rloo", "grpo", "reinforce"])
def test_tiny_model_learns_to_say_yes(tiny_dir, tmp_path, algo):
    before, after = learn_yes(tiny_dir, tmp_path, **{"algorithm.name": algo})
    assert before < 0.1 and after > 0.6, (before, after)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("reward/mean" in m for m in metrics) and (tmp_path / "samples.jsonl").stat().st_size > 0


def test_final_policy_and_checkpoints_load_with_plain_transformers(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

    res = run(tiny_config(tiny_dir, tmp_path, **{"train.iterations": 2}))
    policy = AutoModelForCausalLM.from_pretrained(res["final"])
    trained = res["trainer"].m.policy
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), trained.state_dict().values()))
    ckpt = tmp_path / "checkpoints" / "iter-000002"
    assert (ckpt / "policy" / "model.safetensors").is_file()
    critic = AutoModelForTokenClassification.from_pretrained(ckpt / "critic")
    assert critic.config.num_labels == 1


def test_resume_after_sigkill_ends_with_the_same_weights(tiny_dir, tmp_path):
    common = {"train.iterations": 6, "logging.save_every": 1, "logging.keep_checkpoints": 3,
              "rewards": "[{kind: callable, name: 'tests.tiny:slow_yes_share'}]", "data.eval_prompts": "null"}
    for name in ("straight", "killed"):
        cfg = tiny_config(tiny_dir, tmp_path / name, **common)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    straight = launch(["ppo"], tmp_path / "straight.yaml")
    kill_once_checkpointed(launch(["ppo"], tmp_path / "killed.yaml"), tmp_path / "killed", "iter-000002")
    finish(launch(["ppo"], tmp_path / "killed.yaml", "--resume", str(tmp_path / "killed")))
    finish(straight)
    for part in ("model.safetensors",):
        a = load_file(tmp_path / "straight" / "final" / part)
        b = load_file(tmp_path / "killed" / "final" / part)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    a = load_file(tmp_path / "straight" / "checkpoints" / "iter-000006" / "critic" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "checkpoints" / "iter-000006" / "critic" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lora_policy_uses_adapters_off_as_reference(tiny_dir, tmp_path):
    cfg = tiny_config(tiny_dir, tmp_path, **{"train.iterations": 3, "model.lora": "{r: 4, alpha: 8}",
                                             "algorithm.name": "rloo", "train.lr": 1e-2})
    trainer = build_trainer(cfg)
    assert trainer.m.reference.model is None  # no second copy of the weights
    base_before = {k: v.clone() for k, v in trainer.m.policy.state_dict().items() if "lora" not in k}
    for _ in range(3):
        metrics = trainer.step().metrics
    assert metrics["kl/seq_k1"] != 0.0  # adapters moved the policy away from the adapters-off reference
    after = trainer.m.policy.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in base_before.items())  # base weights frozen


def test_ema_reference_moves_by_eta(tiny_dir, tmp_path):
    """θ_ref ← η·θ_π + (1 − η)·θ_ref with η = 0.1 (at η = 0.5 a swapped η and 1 − η would look the same)."""
    cfg = tiny_config(tiny_dir, tmp_path, **{"reference.kind": "ema", "reference.ema_eta": 0.1,
                                             "algorithm.name": "reinforce", "train.lr": 1e-2})
    trainer = build_trainer(cfg)
    ref0 = [p.clone() for p in trainer.m.reference.model.parameters()]
    trainer.step()
    moved = 0.0
    for r0, r1, p in zip(ref0, trainer.m.reference.model.parameters(), trainer.m.policy.parameters()):
        assert torch.allclose(r1, 0.9 * r0 + 0.1 * p.detach(), atol=1e-6)
        moved = max(moved, (p.detach() - r0).abs().max().item())
    assert moved > 1e-3  # the policy moved far enough for η to matter


def test_kl_in_loss_and_adaptive_controller_run(tiny_dir, tmp_path):
    cfg = tiny_config(tiny_dir, tmp_path, **{"kl.placement": "loss", "kl.kind": "k3", "kl.coef": 0.1,
                                             "kl.adaptive": True, "kl.target": 0.5, "kl.horizon": 10,
                                             "algorithm.name": "grpo", "train.iterations": 2})
    trainer = build_trainer(cfg)
    m1 = trainer.step().metrics
    m2 = trainer.step().metrics
    assert m1["kl/coef"] != 0.1 and m2["loss/kl"] >= 0.0


def test_multiple_minibatches_recompute_old_logprobs(tiny_dir, tmp_path):
    cfg = tiny_config(tiny_dir, tmp_path, **{"train.minibatches": 2, "train.iterations": 1})
    m = build_trainer(cfg).step().metrics
    assert m["check/behaviour_logp_gap"] == 0.0 and m["loss/clipfrac"] >= 0.0


def test_nan_rewards_are_counted_and_skipped(tiny_dir, tmp_path):
    cfg = tiny_config(tiny_dir, tmp_path, **{"rewards": "[{kind: callable, name: 'tests.test_training:half_nan'}]"})
    trainer = build_trainer(cfg)
    m = trainer.step().metrics
    assert m["skipped/samples_total"] == 4 and torch.isfinite(torch.tensor(m["loss/policy"]))


def test_raising_reward_is_a_clear_error(tiny_dir, tmp_path):
    from blendrl.rewards import RewardError

    cfg = tiny_config(tiny_dir, tmp_path, **{"rewards": "[{kind: callable, name: 'tests.test_training:boom'}]"})
    with pytest.raises(RewardError, match=r"reward 'tests.test_training:boom' raised ValueError: bad.*row \d+"):
        build_trainer(cfg).step()


def test_nan_loss_never_reaches_the_weights(tiny_dir, tmp_path, monkeypatch):
    from blendrl.training.trainer import NonFiniteLossError

    trainer = build_trainer(tiny_config(tiny_dir, tmp_path))
    before = {k: v.clone() for k, v in trainer.m.policy.state_dict().items()}
    original = trainer.algorithm.policy_loss
    monkeypatch.setattr(trainer.algorithm, "policy_loss", lambda *a: (original(*a)[0] * float("nan"), {}))
    with pytest.raises(NonFiniteLossError, match="weights left unchanged"):
        trainer.step()
    assert all(torch.equal(v, trainer.m.policy.state_dict()[k]) for k, v in before.items())


_calls = {"n": 0}


def half_nan(prompt, response, metadata):
    _calls["n"] += 1
    return float("nan") if _calls["n"] % 2 else 1.0


def boom(prompt, response, metadata):
    raise ValueError("bad")


def test_nan_on_the_first_micro_batch_still_records_pi_old_for_every_sample(tiny_dir, tmp_path, monkeypatch):
    trainer = build_trainer(tiny_config(tiny_dir, tmp_path, **{"train.micro_batch_size": 2, "algorithm.epochs": 2}))
    original = trainer.algorithm.policy_loss
    calls = {"n": 0}

    def nan_once(*args):
        calls["n"] += 1
        loss, stats = original(*args)
        return (loss * float("nan"), stats) if calls["n"] == 1 else (loss, stats)

    monkeypatch.setattr(trainer.algorithm, "policy_loss", nan_once)
    seen = {}
    update = trainer.update
    monkeypatch.setattr(trainer, "update", lambda exp: seen.setdefault("exp", exp) and update(exp))
    m = trainer.step().metrics
    exp = seen["exp"]
    valid = exp.response_mask.bool()
    assert (exp.old_logp[valid] < 0).all()  # every sampled token's π_old was recorded (log-probs are < 0)
    assert m["skipped/updates_total"] == 1  # the first epoch's policy step was skipped, the second one ran


def test_the_first_critic_step_reuses_the_value_pass_and_changes_nothing(tiny_dir, tmp_path):
    """With the whole batch in one micro-batch, V_old comes from the first critic step's own forward (run before
    the advantages): one critic pass less per iteration, the same weights as the micro-batched run."""
    weights, rows = [], []
    for micro in (8, 4):  # 8 = the whole batch (4 prompts × 2 samples): folded; 4: a separate no-grad pass
        trainer = build_trainer(tiny_config(tiny_dir, tmp_path / str(micro), **{"train.micro_batch_size": micro,
                                                                                "train.iterations": 2}))
        seen = {"rows": 0}
        trainer.m.critic.score.register_forward_hook(lambda m, i, o: seen.__setitem__("rows", seen["rows"] + len(o)))
        trainer.step()
        trainer.step()
        assert trainer.pending_values == {}
        rows.append(seen["rows"])
        weights.append({k: v.clone() for k, v in trainer.m.critic.state_dict().items()})
    assert rows == [2 * 2 * 8, 2 * (8 + 2 * 8)]  # per iteration: 2 epochs × 8 rows, plus 8 without the fold
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-6) for k in weights[0])


def test_forward_batch_size_sets_the_rows_of_the_no_grad_passes(tiny_dir, tmp_path):
    seen = []
    trainer = build_trainer(tiny_config(tiny_dir, tmp_path, **{"train.micro_batch_size": 2,
                                                               "train.forward_batch_size": 8}))
    trainer.m.reference.model.model.register_forward_pre_hook(  # the decoder (log-probs come from its states)
        lambda m, args, kw: seen.append(("reference", kw["input_ids"].shape[0])), with_kwargs=True)
    trainer.m.critic.score.register_forward_hook(lambda m, i, o: seen.append(("critic", len(o))))
    trainer.step()
    assert max(n for who, n in seen if who == "reference") == 8  # the whole batch in one pass (rows, not prompts)
    assert ("critic", 8) in seen and ("critic", 2) in seen  # V_old in one pass; the update in micro-batches of 2
    with pytest.raises(Exception, match="forward_batch_size: must be >= 1"):
        tiny_config(tiny_dir, tmp_path, **{"train.forward_batch_size": 0})


def test_cgpo_forward_batch_size_sets_the_rows_of_its_no_grad_passes(tiny_dir, tmp_path):
    from blendrl.training.cgpo.run import build_cgpo_trainer
    from tests.tiny import tiny_cgpo_config

    seen = {"reference": [], "policy": []}
    trainer = build_cgpo_trainer(tiny_cgpo_config(tiny_dir, tmp_path, **{"train.micro_batch_size": 2,
                                                                         "train.forward_batch_size": 8}))
    for who, model in (("reference", trainer.m.reference.model), ("policy", trainer.m.policy)):
        model.model.register_forward_pre_hook(
            lambda m, args, kw, who=who: seen[who].append(kw["input_ids"].shape[0]) if torch.is_grad_enabled()
            or who == "reference" else None, with_kwargs=True)
    trainer.step()
    assert max(seen["reference"]) == 8  # each task's 8 rows in one pass
    assert seen["policy"] and max(seen["policy"]) == 2  # gradient passes in micro-batches of 2


def test_ppo_logs_the_hacking_signals_of_its_batch(tiny_dir, tmp_path):
    from blendrl.judges.signals import hack_signals

    cfg = tiny_config(tiny_dir, tmp_path, **{"train.iterations": 1})
    trainer = build_trainer(cfg)
    seen = {}
    real = trainer.submit_scores

    def spy(prompts, responses, finished):
        seen.update(responses=responses, finished=finished.tolist(), prompts=[p.user_text for p in prompts])
        return real(prompts, responses, finished)

    trainer.submit_scores = spy
    m = trainer.step().metrics
    want = hack_signals(seen["responses"], seen["finished"], seen["prompts"])
    assert {k: m[k] for k in want} == want and m["hack/truncated"] == 1 - m["response/eos_rate"]


def test_whiten_rewards_is_refused_where_no_algorithm_reads_it():
    from blendrl.config import AlgorithmConfig, ConfigError

    with pytest.raises(ConfigError, match="whiten_rewards: only ppo"):
        AlgorithmConfig(name="rloo", whiten_rewards=True).validate()


def test_shape_scores_applies_the_eos_penalty_then_running_normalisation_then_the_clip(tiny_dir, tmp_path):
    """Hand numbers. Mutations caught: the missing-EOS penalty, the normalisation, the clip or the running history
    dropped from ``shape_scores`` (a per-batch normalisation gives 0 for the second, constant batch)."""
    cfg = tiny_config(tiny_dir, tmp_path, **{"shaping.missing_eos_penalty": 0.5, "shaping.normalize": "normalize",
                                             "shaping.clip": 1.0})
    trainer = build_trainer(cfg)
    shaped, valid = trainer.shape_scores(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([True, False, True, True]))
    # penalised: [1, 1.5, 3, 4]; mean 2.375, population var 1.421875
    std = math.sqrt(1.421875)
    want = [max(-1.0, min(1.0, (x - 2.375) / std)) for x in (1.0, 1.5, 3.0, 4.0)]
    assert valid.all() and torch.allclose(shaped, torch.tensor(want), atol=1e-6)
    assert want[0] == -1.0 and want[-1] == 1.0  # both clips bind
    shaped, _ = trainer.shape_scores(torch.zeros(4), torch.ones(4, dtype=torch.bool))
    # history of 8 scores: mean 1.1875, var (4·1.421875 + 0 + 2.375²·4·4/8) / 8
    var = (4 * 1.421875 + 2.375 ** 2 * 4 * 4 / 8) / 8
    assert torch.allclose(shaped, torch.full((4,), -1.1875 / math.sqrt(var)), atol=1e-6)


def test_the_adaptive_kl_coefficient_moves_by_ziegler_s_rule_in_the_loop(tiny_dir, tmp_path):
    """β₁ = β₀·(1 + clip(KL/target − 1, ±0.2)·B/horizon) with the batch's mean sequence KL. Mutation caught: the
    controller fed the wrong KL, the wrong count, or moved the wrong way."""
    cfg = tiny_config(tiny_dir, tmp_path, **{"kl.coef": 0.1, "kl.adaptive": True, "kl.target": 0.5,
                                             "kl.horizon": 10, "train.iterations": 2, "train.lr": 3e-2})
    trainer = build_trainer(cfg)
    beta = 0.1
    for _ in range(2):
        m = trainer.step().metrics
        beta *= 1 + min(max(m["kl/seq_k1"] / 0.5 - 1, -0.2), 0.2) * 8 / 10
        assert m["kl/coef"] == pytest.approx(beta, rel=1e-9)
    assert m["kl/coef"] != 0.1


@pytest.mark.parametrize("options", [
    {"algorithm.name": "grpo", "algorithm.policy_loss": "gspo", "algorithm.loss_agg": "seq-mean-token-mean",
     "algorithm.clip_eps": 0.05, "train.samples_per_prompt": 4},
    {"algorithm.name": "rloo", "algorithm.policy_loss": "cispo", "algorithm.clip_high": 0.28},
    {"algorithm.name": "ppo", "algorithm.clip_low": 0.2, "algorithm.clip_high": 0.28, "algorithm.dual_clip": 3.0},
], ids=["gspo", "cispo-clip-higher", "ppo-clip-higher-dual"])
def test_each_policy_loss_option_learns_in_the_loop(tiny_dir, tmp_path, options):
    before, after = learn_yes(tiny_dir, tmp_path, **options)
    assert before < 0.1 and after > 0.5, (before, after)


def test_the_policy_entropy_is_logged_every_iteration_and_the_bonus_raises_it(tiny_dir, tmp_path):
    """policy/entropy comes from the update's own forward; an entropy bonus keeps it above the run without one."""
    ents = {}
    for coef in (0.0, 0.5):
        res = run(tiny_config(tiny_dir, tmp_path / str(coef), **{"train.iterations": 8, "algorithm.name": "rloo",
                                                                  "algorithm.entropy_coef": coef,
                                                                  "data.eval_prompts": "null"}))
        lines = [json.loads(x) for x in (tmp_path / str(coef) / "metrics.jsonl").read_text().splitlines()]
        ents[coef] = [m["policy/entropy"] for m in lines if "policy/entropy" in m]
        assert len(ents[coef]) == 8 and all(math.isfinite(e) and e > 0 for e in ents[coef])
        assert res["trainer"].iteration == 8
    assert ents[0.5][-1] > ents[0.0][-1]


def test_the_overlong_penalty_ramps_over_the_buffer_in_shape_scores(tiny_dir, tmp_path):
    """max_new_tokens 8, buffer 4, penalty 0.5: lengths 3, 4, 6, 8 lose 0, 0, 0.25, 0.5 (hand numbers)."""
    from blendrl.functional import overlong_penalty

    assert overlong_penalty(torch.tensor([3, 4, 6, 8]), 8, 4, 0.5).tolist() == [0.0, 0.0, -0.25, -0.5]
    cfg = tiny_config(tiny_dir, tmp_path, **{"shaping.overlong_buffer": 4, "shaping.overlong_penalty": 0.5})
    trainer = build_trainer(cfg)
    shaped, _ = trainer.shape_scores(torch.ones(4), torch.ones(4, dtype=torch.bool), lengths=torch.tensor([3, 4, 6, 8]))
    assert shaped.tolist() == [1.0, 1.0, 0.75, 0.5]


def test_dynamic_sampling_drops_groups_without_a_signal_and_fills_the_batch(tiny_dir, tmp_path):
    """Groups whose k rewards are all equal are dropped and more rounds sampled (hand-built rounds: the first
    varied groups in order are kept); in the loop, every kept group's rewards differ."""
    from blendrl.core.types import Rollout, Scores
    from blendrl.training.dynamic import dynamic_batch, varied_groups

    assert varied_groups(torch.tensor([1.0, 1.0, 0.0, 2.0, float("nan"), 3.0]), 2).tolist() == [False, True, False]
    rounds = iter([[1.0, 1.0, 0.0, 1.0], [0.0, 2.0, 5.0, 5.0], [3.0, 4.0, 1.0, 2.0]])

    def draw():
        ids = torch.arange(4)[:, None]
        return [f"p{i}" for i in range(4)], Rollout(ids, torch.ones(4, 1, dtype=torch.long), ids, torch.ones(4, 1),
                                                    torch.zeros(4, 1), torch.ones(4, dtype=torch.bool))

    prompts, rollout, scores, m = dynamic_batch(draw, lambda p, r: Scores(torch.tensor(next(rounds))), 2, 2, 2, 0)
    assert scores.total.tolist() == [0.0, 1.0, 0.0, 2.0] and len(prompts) == 4 and len(rollout.response_ids) == 4
    assert m == {"sampling/rounds": 2, "sampling/dropped_groups": 2, "sampling/kept_groups": 2}
    cfg = tiny_config(tiny_dir, tmp_path, **{"train.iterations": 3, "algorithm.name": "rloo",
                                             "dynamic_sampling.enabled": True, "train.samples_per_prompt": 2,
                                             "data.eval_prompts": "null", "logging.log_samples": 64})
    run(cfg)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if "sampling/rounds" in m]
    assert len(steps) == 3 and sum(m["sampling/dropped_groups"] for m in steps) > 0  # the random model says no yes
    rows = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    for m, it in zip(steps, (1, 2, 3)):
        rewards = [r["reward"] for r in rows if r["iteration"] == it and r["tag"] == "train"]
        assert len(rewards) == 2 * 4  # the batch keeps its size (topped up with dropped groups)
        kept = 2 * m["sampling/kept_groups"]
        assert all(a != b for a, b in zip(rewards[:kept:2], rewards[1:kept:2]))  # each kept group has a signal
        assert all(a == b for a, b in zip(rewards[kept::2], rewards[kept + 1::2]))  # the top-ups have none


def test_the_overlong_penalty_in_the_loop(tiny_dir, tmp_path):
    """With the buffer the whole budget (8 tokens, penalty 1) every response of L tokens loses L/8: the shaped mean
    is the raw mean minus the mean length over 8 (no EOS stops the tiny model early, so each row has 8 tokens)."""
    run(tiny_config(tiny_dir, tmp_path, **{"train.iterations": 1, "shaping.overlong_buffer": 8,
                                           "data.eval_prompts": "null", "generation.stop_at_eos": False}))
    m = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if "reward/mean" in x][-1]
    assert m["reward/shaped_mean"] == pytest.approx(m["reward/mean"] - 1.0, abs=1e-6)
