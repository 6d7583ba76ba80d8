"""``generation.backend: vllm`` on a tiny model on the CPU (vLLM's CPU build in ``.venv-vllm``, made by
scripts/setup_env.sh): the same tokens as the own generator, log-probs equal to the training forward's after every
weight sync (full and LoRA), each stale-engine case caught, per-request seeds, a killed or hung engine restarted
with nothing lost, one PPO iteration equal to the own generator's, and exact resume after SIGKILL."""
import os
import signal

import pytest
import torch
import yaml
from safetensors.torch import load_file

from blendrl.config import to_dict
from blendrl.core.types import Experience, SamplingParams
from blendrl.rollout.hf import HFGenerator
from blendrl.rollout.on_vllm import EngineFailure, VLLMGenerator, vllm_python
from blendrl.training.experience import behaviour_logprobs, response_logprobs
from tests.tiny import finish, kill_once_checkpointed, launch, tiny_config

try:
    vllm_python()
except RuntimeError as e:  # pragma: no cover - set-up makes .venv-vllm
    pytest.skip(str(e), allow_module_level=True)

LONG = [2, 4] + [8 + (i % 50) for i in range(140)] + [3, 5]  # longer than a KV block (128 on the CPU): cached
PROMPTS = [[2, 4, 10, 11, 12, 3, 5], [2, 4, 13, 3, 5], LONG, [2, 9, 9, 9, 9, 3, 5]]
# episodes of the probe environment, called by a word the vdir model often samples
MULTI_TURN = {"plugins": "[tests.tiny_env]", "environment.kind": "tiny_probe", "environment.options": "{word: of}",
              "environment.max_turns": 3, "environment.stop_words": "[of]", "rewards": "[{kind: tiny_called}]",
              "generation.max_new_tokens": 6}


@pytest.fixture(scope="module")
def vdir(tmp_path_factory):
    from tests.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("vtiny") / "model", hidden=64, heads=2, kv_heads=1)


def load(vdir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(vdir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def engine(vdir):
    model = load(vdir)
    gen = VLLMGenerator(model, 0, [3], check_every=1, tolerance=1e-4)
    yield model, gen
    gen.close()


def trainer_logprobs(model, rollout, temperature):
    exp = Experience.from_rollout(rollout)
    with torch.no_grad():
        return response_logprobs(model, exp, temperature)


def gap(model, rollout, temperature=0.7):
    return ((trainer_logprobs(model, rollout, temperature) - rollout.logp).abs() * rollout.response_mask).max().item()


def perturb(model, scale=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def test_near_greedy_tokens_equal_the_own_generator_and_log_probs_the_training_forward(engine):
    model, gen = engine
    cold = SamplingParams(10, 1e-3, 1.0)
    ours = HFGenerator(model, 0, [3]).sample(PROMPTS, cold, torch.Generator().manual_seed(0))
    theirs = gen.sample(PROMPTS, cold, torch.Generator().manual_seed(0))
    assert torch.equal(ours.response_ids, theirs.response_ids)
    assert torch.equal(ours.response_mask, theirs.response_mask) and torch.equal(ours.finished, theirs.finished)
    warm = gen.sample(PROMPTS, SamplingParams(10, 0.7, 1.0), torch.Generator().manual_seed(0))
    assert gap(model, warm) < 1e-4  # float32: the trainer's numbers to rounding


def test_each_sync_serves_the_new_weights_and_a_skipped_step_is_caught(engine):
    model, gen = engine
    params = SamplingParams(10, 0.7, 1.0)
    gen.sample(PROMPTS, params, torch.Generator().manual_seed(1))  # LONG's prefix is now in the cache
    for skip, seed in ((("repack",), 1), (("reset_prefix_cache",), 2), ((), 3)):
        perturb(model, seed=seed)
        gen.sync_weights(model)  # the proper sync, then the engine is made to redo it without one of its steps
        gen.sample(PROMPTS, params, torch.Generator().manual_seed(1))  # LONG cached under these weights
        perturb(model, seed=seed + 10)
        from safetensors.torch import save_file
        from blendrl.rollout.on_vllm import merged_state_dict

        save_file(merged_state_dict(model), str(gen.weights))
        gen.version += 1
        gen.request("load", path=str(gen.weights), version=gen.version, skip=skip)
        rollout = gen.sample(PROMPTS, params, torch.Generator().manual_seed(1))
        exp = Experience.from_rollout(rollout)
        recompute = lambda e: trainer_logprobs(model, rollout, 0.7)  # noqa: E731
        if skip:  # stale: the tied LM head's packed copy, or KV computed by the old weights
            assert gap(model, rollout) > 1e-2, skip
            with pytest.raises(RuntimeError, match="differ from the training forward"):
                behaviour_logprobs(gen, exp, recompute, 0)
        else:
            assert behaviour_logprobs(gen, exp, recompute, 0) < 1e-4


def test_a_rollout_from_another_weight_version_is_an_error(engine):
    model, gen = engine
    gen.request("load", path=str(gen.weights), version=gen.version - 1)
    with pytest.raises(RuntimeError, match="stale weights"):
        gen.sample(PROMPTS, SamplingParams(4, 0.7, 1.0), torch.Generator().manual_seed(0))
    gen.sync_weights(model)


def test_a_response_depends_on_its_prompt_and_seed_not_on_the_batch(engine):
    _, gen = engine
    kw = dict(temperature=1.0, top_p=1.0, max_tokens=8, stop_token_ids=[3])
    seeds = [11, 22, 33, 44]
    a = gen.request("generate", prompts=PROMPTS, seeds=seeds, **kw)["tokens"]
    b = gen.request("generate", prompts=PROMPTS[::-1] + PROMPTS[:1], seeds=seeds[::-1] + [99], **kw)["tokens"]
    assert b[:4][::-1] == a
    assert gen.request("generate", prompts=PROMPTS[:1], seeds=[12], **kw)["tokens"][0] != a[0]


def test_the_k_samples_of_a_prompt_get_their_own_seeds(engine):
    _, gen = engine
    rollout = gen.sample([PROMPTS[0]] * 4, SamplingParams(8, 1.0, 1.0), torch.Generator().manual_seed(3))
    assert len({tuple(r) for r in rollout.response_ids.tolist()}) == 4  # RLOO/GRPO's group is not one sample 4 times


def test_a_killed_or_hung_engine_is_restarted_and_the_batch_sampled_again_with_the_same_seeds(engine, monkeypatch):
    model, gen = engine
    params = SamplingParams(8, 1.0, 1.0)
    want = gen.sample(PROMPTS, params, torch.Generator().manual_seed(5))
    restarts = gen.restarts
    os.kill(gen.info["pid"], signal.SIGKILL)  # dead before the request
    got = gen.sample(PROMPTS, params, torch.Generator().manual_seed(5))
    assert gen.restarts == restarts + 1 and torch.equal(got.response_ids, want.response_ids)
    real, calls = gen.request, []

    def first_hangs(op, timeout=None, **kw):
        calls.append(op)
        if op == "generate" and calls.count("generate") == 1:
            return real("hang", timeout=1.0, seconds=30)
        return real(op, timeout, **kw)

    monkeypatch.setattr(gen, "request", first_hangs)
    got = gen.sample(PROMPTS, params, torch.Generator().manual_seed(5))
    assert gen.restarts == restarts + 2 and torch.equal(got.response_ids, want.response_ids)
    assert torch.allclose(got.logp, want.logp)
    monkeypatch.setattr(gen, "max_restarts", 0)
    with pytest.raises(EngineFailure):
        gen.with_restarts("hang", timeout=0.5, seconds=30)


def test_a_bfloat16_engine_is_inexact_and_the_trainer_recomputes_pi_old_every_batch(vdir):
    model = load(vdir)
    gen = VLLMGenerator(model, 0, [3], dtype="bfloat16")
    try:
        assert not gen.exact_logprobs
        rollout = gen.sample(PROMPTS, SamplingParams(8, 0.7, 1.0), torch.Generator().manual_seed(0))
        exp = Experience.from_rollout(rollout)
        engine_logp = exp.behaviour_logp
        got = behaviour_logprobs(gen, exp, lambda e: trainer_logprobs(model, rollout, 0.7), 7)  # any batch
        assert got is not None and got > 1e-4  # bfloat16 numerics, the trainer's in their place
        assert torch.equal(exp.behaviour_logp, trainer_logprobs(model, rollout, 0.7))
        assert not torch.equal(exp.behaviour_logp, engine_logp)
    finally:
        gen.close()


@pytest.mark.parametrize("lora_sync", ["adapters", "merged"])
def test_lora_syncs_follow_the_adapters_and_leave_the_trainer_module_untouched(vdir, lora_sync):
    """``adapters``: the engine holds the base and loads each version's peft folder in place (re-used under the same
    id without ``load_inplace`` it would keep the old one: caught); ``merged``: W + ΔW as full weights."""
    from blendrl.config import LoraConfig
    from blendrl.models.lora import add_lora

    policy = add_lora(load(vdir), LoraConfig(r=4, alpha=8))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=g)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    gen = VLLMGenerator(policy, 0, [3], lora_sync=lora_sync)
    params = SamplingParams(8, 0.7, 1.0)
    try:
        assert gen.adapters == (lora_sync == "adapters")
        rollout = gen.sample(PROMPTS, params, torch.Generator().manual_seed(0))
        assert gap(policy, rollout) < 1e-4
        assert all(torch.equal(v, policy.state_dict()[k]) for k, v in before.items())
        assert gap(load(vdir), rollout) > 1e-2  # the adapters matter: without them it is another policy
        with torch.no_grad():
            for name, p in policy.named_parameters():
                if "lora_" in name:
                    p.add_(torch.randn(p.shape, generator=g) * 0.3)
        gen.sync_weights(policy)
        assert gap(policy, gen.sample(PROMPTS, params, torch.Generator().manual_seed(1))) < 1e-4
        if lora_sync == "adapters":
            with torch.no_grad():
                for name, p in policy.named_parameters():
                    if "lora_B" in name:
                        p.add_(torch.randn(p.shape, generator=g) * 0.3)
            policy.save_pretrained(gen.folder / "adapter-99")
            gen.version = 99
            gen.request("load", path=str(gen.folder / "adapter-99"), version=99, adapter=True,
                        skip=("load_inplace",))
            assert gap(policy, gen.sample(PROMPTS, params, torch.Generator().manual_seed(1))) > 1e-2
    finally:
        gen.close()


def test_one_ppo_iteration_ends_at_the_own_generators_weights(vdir, tmp_path):
    from blendrl.training.run import build_trainer

    weights = {}
    for backend in ("hf", "vllm"):
        opts = "{check_every: 1, tolerance: 1.0}" if backend == "vllm" else "{}"
        cfg = tiny_config(vdir, tmp_path / backend, **{"train.iterations": 1, "generation.temperature": 1e-3,
                                                       "generation.backend": backend, "generation.options": opts,
                                                       "data.eval_prompts": "null"})
        trainer = build_trainer(cfg)
        out = trainer.step()
        weights[backend] = {k: v.clone() for k, v in trainer.m.policy.state_dict().items()}
        if backend == "vllm":
            assert "check/generator_logp_gap" in out.metrics
            trainer.generator.close()
    for k, v in weights["hf"].items():
        assert torch.allclose(v, weights["vllm"][k], atol=1e-5), k


def test_a_bfloat16_engine_trains_with_truncated_importance_weights(vdir, tmp_path):
    from blendrl.training.run import build_trainer

    cfg = tiny_config(vdir, tmp_path, **{"train.iterations": 1, "generation.backend": "vllm", "algorithm.name": "rloo",
                                         "generation.options": "{dtype: bfloat16}", "algorithm.tis_cap": 1.0,
                                         "data.eval_prompts": "null"})
    trainer = build_trainer(cfg)
    try:
        metrics = trainer.step().metrics
    finally:
        trainer.generator.close()
    assert metrics["check/generator_logp_gap"] > 1e-4  # bfloat16: recomputed every batch
    assert 0 < metrics["tis/mean_weight"] <= 1.0 and metrics["tis/capped_fraction"] > 0  # ratios above 1 capped


def test_a_lora_run_samples_every_iteration_from_the_adapters_it_just_trained(vdir, tmp_path):
    """Three RLOO iterations with LoRA, adapters synced after each update, the engine's log-probs checked against the
    trainer's every batch (a stale adapter would stop the run)."""
    from blendrl.training.run import build_trainer

    cfg = tiny_config(vdir, tmp_path, **{"train.iterations": 3, "generation.backend": "vllm", "algorithm.name": "rloo",
                                         "model.lora": "{r: 4, alpha: 8}", "train.lr": 5e-2,
                                         "generation.options": "{check_every: 1, tolerance: 1.0e-4}",
                                         "data.eval_prompts": "null"})
    trainer = build_trainer(cfg)
    try:
        assert trainer.generator.adapters
        gaps = [trainer.step().metrics["check/generator_logp_gap"] for _ in range(3)]
    finally:
        trainer.generator.close()
    assert max(gaps) < 1e-4 and trainer.generator.version == 4  # the start, then one sync per update


def test_one_cgpo_iteration_ends_at_the_own_generators_weights(vdir, tmp_path):
    """Three tasks (CRPG, CRRAFT with ā sampled from the frozen reference through a second engine, CODPO)."""
    from blendrl.training.cgpo.run import build_cgpo_trainer
    from tests.tiny import tiny_cgpo_config

    weights = {}
    for backend in ("hf", "vllm"):
        opts = "{check_every: 1, tolerance: 1.0}" if backend == "vllm" else "{}"
        cfg = tiny_cgpo_config(vdir, tmp_path / backend, **{"train.iterations": 1, "generation.temperature": 1e-3,
                                                            "generation.backend": backend,
                                                            "generation.options": opts})
        trainer = build_cgpo_trainer(cfg)
        trainer.step()
        weights[backend] = {k: v.clone() for k, v in trainer.m.policy.state_dict().items()}
        if backend == "vllm":
            trainer.generator.close()
    for k, v in weights["hf"].items():
        assert torch.allclose(v, weights["vllm"][k], atol=1e-5), k


def test_a_vllm_run_killed_after_a_checkpoint_resumes_to_the_same_weights(vdir, tmp_path):
    common = {"train.iterations": 4, "logging.save_every": 1, "logging.keep_checkpoints": 4,
              "generation.backend": "vllm", "data.eval_prompts": "null", "algorithm.name": "rloo",
              "rewards": "[{kind: callable, name: 'tests.tiny:slow_yes_share'}]"}
    for name in ("straight", "killed"):
        cfg = tiny_config(vdir, tmp_path / name, **common)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    finish(launch(["ppo"], tmp_path / "straight.yaml"), timeout=600)
    kill_once_checkpointed(launch(["ppo"], tmp_path / "killed.yaml"), tmp_path / "killed", "iter-000002", 300)
    finish(launch(["ppo"], tmp_path / "killed.yaml", "--resume", str(tmp_path / "killed")), timeout=600)
    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_server_mode_samples_like_the_colocated_engine_and_a_foreign_weight_update_is_caught(vdir, monkeypatch):
    """``server: true`` starts a vLLM OpenAI server (token-in/token-out route, weight versions per token span); a
    second generator on the same server (``url``) sees the first one's weight updates as stale."""
    model = load(vdir)
    cold = SamplingParams(10, 1e-3, 1.0)
    want = HFGenerator(model, 0, [3]).sample(PROMPTS, cold, torch.Generator().manual_seed(0))
    server = VLLMGenerator(model, 0, [3], server=True)
    try:
        got = server.sample(PROMPTS, cold, torch.Generator().manual_seed(0))
        assert torch.equal(got.response_ids, want.response_ids) and torch.equal(got.finished, want.finished)
        perturb(model, seed=7)
        server.sync_weights(model)
        assert gap(model, server.sample(PROMPTS, SamplingParams(8, 0.7, 1.0), torch.Generator())) < 1e-4
        monkeypatch.setenv("BLENDRL_VLLM_API_KEY", server.engine.key)
        other = VLLMGenerator(model, 0, [3], url=server.info["url"])  # syncs: the server now serves its version
        other.sample(PROMPTS, cold, torch.Generator().manual_seed(0))
        server.version = other.version + 1  # the first trainer moves on; the server still serves the other's
        with pytest.raises(RuntimeError, match="stale weights"):
            server.sample(PROMPTS, cold, torch.Generator().manual_seed(0))
        other.close()  # an external server is not ours to stop: it still answers
        assert server.request("ping") == {}
    finally:
        server.close()


@pytest.mark.parametrize("episodes", [{}, MULTI_TURN], ids=["one-turn", "multi-turn"])
def test_two_ranks_each_with_an_engine_train_to_the_weights_of_one(vdir, tmp_path, episodes):
    """Data parallel (gloo): each rank samples its rows of the global batch on its own engine with the seeds one
    process draws for them (with episodes: each turn, its open rows among every rank's); the weights agree to the
    data-parallel tests' tolerance."""
    from tests.test_distributed import BASE, _assert_same, _metric_lines, _run

    over = {**BASE, "generation.backend": "vllm", "algorithm.name": "rloo", "algorithm.epochs": 1,
            "train.samples_per_prompt": 2, **episodes}
    one = _run(1, vdir, tmp_path / "one", over, tmp_path)
    two = _run(2, vdir, tmp_path / "two", over, tmp_path)
    _assert_same(one, two)
    if episodes:  # some episodes went past one turn, so the ranks took later turns with other rows open
        assert any(m.get("env/tool_calls", 0) > 0 for m in _metric_lines(tmp_path / "one")), "no episode called"


def test_best_of_n_samples_on_the_configured_backend(vdir, tmp_path):
    from blendrl.cli.main import main

    out = {}
    for backend in ("hf", "vllm"):
        argv = ["bon", "--set", f"model.name={vdir}", "--set", "generation.max_new_tokens=6", "--set", "bon.pool=4",
                "--set", "bon.prompts=2", "--set", f"logging.output_dir={tmp_path / backend}",
                "--set", "generation.temperature=0.001", "--set", f"generation.backend={backend}",
                "--set", "data.prompts=builtin:concise_eval",
                "--set", "rewards=[{kind: callable, name: 'tests.tiny:yes_share'}]"]
        assert main(argv) == 0
        out[backend] = (tmp_path / backend / "picks.jsonl").read_text()
    assert out["hf"] == out["vllm"]  # near-greedy: the same responses, picked the same


def test_episodes_on_the_engine_keep_its_tokens_stop_at_stop_words_and_match_the_training_forward(vdir, tmp_path):
    """Multi-turn episodes on vLLM: each turn is a request whose prompt is the whole episode so far as token ids
    (nothing re-tokenized) and which ends at the environment's stop word as at EOS; the batch passes the same check
    as the own generator's (tokens, mask, log-probs equal to the training forward's)."""
    from blendrl.training.run import build_trainer
    from tests.test_envs import PLUGIN
    from tests.tiny_env import assert_episode_tokens

    trainer = build_trainer(tiny_config(vdir, tmp_path, **{**PLUGIN, **MULTI_TURN}, **{
        "generation.backend": "vllm", "generation.options": "{check_every: 1}"}))
    try:
        assert_episode_tokens(trainer, tolerance=1e-4)
    finally:
        trainer.generator.close()
