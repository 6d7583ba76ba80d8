"""A user's own judge, reward source and KL kind, registered from their own file through ``plugins:``, train."""
import json
import math
import textwrap

import pytest

from tests.tiny import tiny_cgpo_config, tiny_config

PLUGIN = textwrap.dedent('''
    import torch
    from blendrl import JUDGES, KL_ESTIMATORS, REWARD_SOURCES, CallableReward, RuleJudge, Verdict

    CALLS = {"kl": 0, "reward": 0, "judge": 0}


    @KL_ESTIMATORS.register("half_k2")
    def half_k2(logp, ref_logp):  # (B, T) -> (B, T)
        CALLS["kl"] += 1
        return 0.25 * (logp - ref_logp) ** 2


    @REWARD_SOURCES.register("yes_count")
    def yes_count(cfg):
        def fn(prompt, response, metadata):
            CALLS["reward"] += 1
            return float(response.split().count("yes"))
        return CallableReward(fn, name=cfg.name or "yes_count")


    @JUDGES.register("short_answer")
    def short_answer(name="short_answer", max_words=3):
        def check(sample):
            CALLS["judge"] += 1
            n = len(sample.response.split())
            return Verdict(n <= max_words, f"{n} words")
        return RuleJudge(name, check)
''')


@pytest.fixture(scope="module")
def plugin_file(tmp_path_factory):  # one file per session: a name registers once per process
    path = tmp_path_factory.mktemp("plugin") / "my_plugin.py"
    path.write_text(PLUGIN)
    return path


def _plugin_module(path):
    import sys

    return next(m for name, m in sys.modules.items() if name.startswith("blendrl_plugin_my_plugin")
                and getattr(m, "__file__", None) == str(path))


def test_ppo_trains_with_a_plugins_reward_source_and_kl_kind(tiny_dir, tmp_path, plugin_file):
    from blendrl.training.names import check_names
    from blendrl.training.run import run

    cfg = tiny_config(tiny_dir, tmp_path / "run", **{"train.iterations": 1, "kl.coef": 0.1, "kl.kind": "half_k2",
                                                     "logging.eval_before": False, "data.eval_prompts": "null"})
    cfg.rewards[0].kind, cfg.rewards[0].name = "yes_count", "yes"
    cfg.plugins = [str(plugin_file)]
    check_names(cfg)  # imports the plugin (run does it too; here to reset its counters first)
    calls = _plugin_module(plugin_file).CALLS
    calls.update(kl=0, reward=0, judge=0)
    result = run(cfg)
    assert calls["reward"] == 8 and calls["kl"] >= 1  # 4 prompts × 2 samples scored; the KL went into the reward
    assert "reward/yes" in result["last"].metrics and math.isfinite(result["last"].metrics["reward/yes"])


def test_cgpo_trains_with_a_plugins_judge_and_reward(tiny_dir, tmp_path, plugin_file):
    from blendrl.training.cgpo.run import run_cgpo
    from blendrl.training.names import check_names

    cfg = tiny_cgpo_config(tiny_dir, tmp_path / "cgpo", **{"train.iterations": 1, "logging.eval_before": False})
    cfg.tasks = cfg.tasks[:1]
    cfg.tasks[0].eval_prompts = None
    cfg.tasks[0].rewards[0].kind, cfg.tasks[0].rewards[0].name = "yes_count", "yes"
    cfg.tasks[0].judges[0].kind, cfg.tasks[0].judges[0].name = "short_answer", "short"
    cfg.tasks[0].judges[0].options = {"max_words": 2}
    cfg.plugins = [str(plugin_file)]
    check_names(cfg)
    calls = _plugin_module(plugin_file).CALLS
    calls.update(kl=0, reward=0, judge=0)
    run_cgpo(cfg)
    assert calls["judge"] == 8 and calls["reward"] >= 8  # 2 prompts × K=4 judged and scored
    metrics = json.loads((tmp_path / "cgpo" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= metrics["crpg/judge/short"] <= 1.0  # the pass rate of the plugin judge


def test_an_unknown_plugin_and_a_name_no_plugin_registers_are_config_errors(tmp_path, plugin_file):
    from blendrl.config import ConfigError, PPORunConfig, load_config
    from blendrl.core.registry import PluginError
    from blendrl.training.names import check_names

    with pytest.raises(PluginError, match=r"plugins: .*nope.py does not exist"):
        check_names(load_config(PPORunConfig, None, [f"plugins=[{tmp_path}/nope.py]"]))
    cfg = load_config(PPORunConfig, None, [f"plugins=[{plugin_file}]", "kl.kind=half_k3"])
    with pytest.raises(ConfigError, match=r"kl.kind: unknown KL estimator 'half_k3'; choose one of .*'half_k2'"):
        check_names(cfg)


def test_the_public_api_resolves_every_name():
    import blendrl

    for name in blendrl.__all__:
        assert getattr(blendrl, name) is not None, name
    with pytest.raises(AttributeError):
        blendrl.no_such_thing  # noqa: B018
