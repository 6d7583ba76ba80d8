"""``kind: ray`` reward sources and judges on a local Ray (``ray.init(num_cpus=2)``, started here): the same scores
and verdicts as in-process, nothing lost or doubled when a worker dies mid-batch, and a PPO iteration trains with a
Ray-scored reward. Set-up installs Ray (requirements.txt), so this runs in the default suite; elsewhere it needs
``pip install 'blendrl[ray]'``."""
import pytest
import torch

ray = pytest.importorskip("ray")

from blendrl.config import RewardSourceConfig  # noqa: E402
from blendrl.core.types import Sample  # noqa: E402
from blendrl.rewards import build_reward  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _samples(n=10):
    texts = ["yes yes no", "no", "yes", "a volcano is hot", "yes " * 5, "", "maybe yes", "no no", "yes no yes", "ok"]
    return [Sample([{"role": "user", "content": f"q{i}"}], texts[i % len(texts)], {"key_term": "volcano"},
                   f"f, row {i}") for i in range(n)]


def test_a_rule_reward_on_ray_scores_as_in_process():
    local = build_reward([RewardSourceConfig(kind="rule", name="concise_mention")])
    remote = build_reward([RewardSourceConfig(kind="ray", name="rule@ray", options={
        "source": {"kind": "rule", "name": "concise_mention"}, "workers": 2, "num_cpus": 0.5})])
    samples = _samples()
    assert torch.equal(local.score(samples).total, remote.score(samples).total)
    pending = remote.submit(samples)  # returns before the workers finish; result() joins in order
    assert torch.equal(pending.result().total, local.score(samples).total)


def test_an_hf_reward_model_on_ray_scores_as_in_process(rm_tiny_dir, tmp_path):
    from blendrl.models.reward_model import load_reward_model, save_reward_model

    torch.manual_seed(0)
    folder = save_reward_model(*load_reward_model(str(rm_tiny_dir)), tmp_path / "rm")  # a saved score head
    local = build_reward([RewardSourceConfig(kind="hf_rm", name="rm", path=str(folder))])
    remote = build_reward([RewardSourceConfig(kind="ray", name="rm", options={
        "source": {"kind": "hf_rm", "name": "rm", "path": str(folder)}, "workers": 2, "num_cpus": 0.5})])
    samples = _samples(6)
    assert torch.allclose(local.score(samples).total, remote.score(samples).total, atol=1e-5)


def test_the_code_judge_on_ray_gives_the_in_process_verdicts():
    from blendrl.judges import JUDGES

    code = {"kind": "code", "options": {"wall_s": 10}}
    local = JUDGES["code"](name="code", **code["options"])
    remote = JUDGES["ray"](name="code", judge=code, workers=2, num_cpus=0.5)
    meta = {"cases": [{"function": "add", "args": [1, 2], "expected": 3}]}
    responses = ["```python\ndef add(a, b):\n    return a + b\n```", "```python\ndef add(a, b):\n    return 4\n```",
                 "```python\nimport os\nos._exit(0)\n```", "```python\ndef add(a, b):\n    return a - b\n```"]
    samples = [Sample([{"role": "user", "content": "add"}], r, meta, f"f, row {i}") for i, r in enumerate(responses)]
    assert [v.passed for v in remote.judge(samples)] == [v.passed for v in local.judge(samples)] == \
        [True, False, False, False]
    # the workers' batch statistics add up to the in-process judge's (counts over the same samples)
    assert remote.judge(samples).stats == local.judge(samples).stats


def test_a_worker_that_dies_mid_batch_loses_nothing(tmp_path):
    """The callable kills its worker process the first time it sees the sample 'q3' (a marker file makes it once);
    Ray restarts the worker and scores its share again."""
    marker = tmp_path / "died"
    local = build_reward([RewardSourceConfig(kind="callable", name="tests.tiny:die_once_share")])
    remote = build_reward([RewardSourceConfig(kind="ray", name="dies", options={
        "source": {"kind": "callable", "name": "tests.tiny:die_once_share"}, "workers": 2, "num_cpus": 0.5})])
    samples = _samples()
    for s in samples:
        s.metadata = {**s.metadata, "die_marker": str(marker)}
    got = remote.score(samples).total
    assert marker.is_file()  # a worker did die
    assert got.shape == (len(samples),) and torch.equal(got, local.score(samples).total)


def test_ppo_trains_with_a_reward_on_ray(tiny_dir, tmp_path):
    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_config

    cfg = tiny_config(tiny_dir, tmp_path, **{"train.iterations": 1, "logging.eval_before": False})
    cfg.rewards = [RewardSourceConfig(kind="ray", name="yes@ray", options={
        "source": {"kind": "callable", "name": "tests.tiny:yes_share"}, "workers": 2, "num_cpus": 0.5})]
    trainer = build_trainer(cfg)
    metrics = trainer.step().metrics
    assert "reward/yes@ray" in metrics and 0.0 <= metrics["reward/mean"] <= 1.0


def test_the_ray_generator_samples_what_the_in_process_one_does(tiny_dir):
    from blendrl.models import load_causal_lm
    from blendrl.rollout import GENERATORS, HFGenerator, SamplingParams

    model = load_causal_lm(str(tiny_dir))
    local, remote = HFGenerator(model, 0, [3]), GENERATORS["ray"](model, 0, [3], num_cpus=0.5)
    prompts = [[5, 6, 7], [8, 9], [5, 6, 7]]
    params = SamplingParams(max_new_tokens=6, temperature=1.0)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a, b = local.sample(prompts, params, g1), remote.sample(prompts, params, g2)
    assert torch.equal(a.response_ids, b.response_ids) and torch.allclose(a.logp, b.logp, atol=1e-5)
    assert torch.equal(g1.get_state(), g2.get_state())  # the trainer's stream advanced as if it sampled itself
    assert remote.exact_logprobs


def test_ppo_with_rollouts_on_a_ray_actor_trains_to_the_in_process_weights(tiny_dir, tmp_path):
    """Two iterations: the second samples from the weights the first update wrote, which only the sync carries to
    the actor."""
    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_config

    def weights(backend, **options):
        over = {"train.iterations": 2, "logging.eval_before": False, "generation.backend": backend}
        cfg = tiny_config(tiny_dir, tmp_path / backend / str(len(options)), **over)
        cfg.generation.options = options
        trainer = build_trainer(cfg)
        metrics = [trainer.step().metrics for _ in range(2)]
        return {k: v.clone() for k, v in trainer.m.policy.state_dict().items()}, metrics

    hf, _ = weights("hf")
    ray_w, _ = weights("ray", num_cpus=0.5)
    assert max((hf[k] - ray_w[k]).abs().max().item() for k in hf) < 1e-5
    _, bf16 = weights("ray", num_cpus=0.5, dtype="bfloat16")  # not exact: the trainer recomputes the log-probs
    assert all(0 < m["check/generator_logp_gap"] < 0.5 for m in bf16)


def test_episodes_on_the_ray_actor_are_the_in_process_episodes(tiny_dir, tmp_path):
    """Multi-turn episodes through the generator seam: every turn goes to the actor with the whole episode so far
    and the environment's stop word; the batch passes the episode check and equals the in-process one."""
    from blendrl.training.run import build_trainer
    from tests.test_envs import PLUGIN
    from tests.tiny import tiny_config
    from tests.tiny_env import assert_episode_tokens

    rollouts = {}
    for backend, options in (("hf", "{}"), ("ray", "{num_cpus: 0.5}")):
        trainer = build_trainer(tiny_config(tiny_dir, tmp_path / backend, **PLUGIN, **{
            "generation.max_new_tokens": 6, "generation.backend": backend, "generation.options": options}))
        rollouts[backend] = assert_episode_tokens(trainer)
    assert torch.equal(rollouts["hf"].response_ids, rollouts["ray"].response_ids)
    assert [t.turns for t in rollouts["hf"].transcripts] == [t.turns for t in rollouts["ray"].transcripts]
