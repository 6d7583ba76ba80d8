"""The gold-vs-proxy lab: the gold reward's parts, Gao et al.'s fits, and the whole lab end to end on tiny models."""
import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from blendrl.lab.report import fit_gao
from blendrl.rewards.gold import overlength, repetition, shortfall
from tests.tiny import yes_share


def test_gold_rule_parts_on_hand_values():
    assert repetition("") == 0.0 and repetition("a b c") == 0.0
    assert repetition("Volcano volcano volcano lava") == pytest.approx(1 - 2 / 4)
    assert overlength("one two three", 3) == 0.0 and overlength("a b c d e f", 4) == pytest.approx(0.5)
    assert shortfall("Volcano.", 5) == pytest.approx(0.8) and shortfall("a b c d e f", 5) == 0.0
    assert shortfall("", 0) == 0.0


def test_gold_reward_penalises_a_too_short_answer_only_when_asked():
    from blendrl.rewards import Sample
    from blendrl.rewards.gold import GoldReward

    q = [{"role": "user", "content": "In at most 10 words, what is a volcano?"}]
    samples = [Sample(q, r, {"max_words": 10}) for r in ("Volcano.", "A mountain that erupts lava and ash.")]
    plain = GoldReward().score(samples).total
    strict = GoldReward(w_short=0.5, min_share=0.5)
    scored = strict.score(samples)
    got = scored.total
    assert scored.stats["shortfall"].tolist() == pytest.approx([0.8, 0.0])  # (5 − 1) / 5; 7 words ≥ 5
    assert got.tolist() == pytest.approx([plain[0].item() - 0.4, plain[1].item()], abs=1e-6)
    with pytest.raises(ValueError, match="min_share"):
        GoldReward(min_share=1.5)


def test_gold_reward_prefers_a_relevant_short_answer():
    from blendrl.rewards import Sample
    from blendrl.rewards.gold import GoldReward

    gold = GoldReward()
    q = [{"role": "user", "content": "In at most 10 words, what is a volcano?"}]
    s = lambda r: Sample(q, r, {"max_words": 10})  # noqa: E731
    scored = gold.score([
        s("A mountain that erupts lava and ash."), s("I like pizza with cheese."),
        s("volcano volcano volcano volcano"),
        s("A volcano is a mountain where hot melted rock from deep inside the earth comes out through openings.")])
    good, off_topic, repeated, long = scored.total
    assert good > off_topic and good > repeated and good > long
    assert scored.stats["repetition"][2] == pytest.approx(0.75)
    assert scored.stats["overlength"][3] == pytest.approx(0.8)  # 18 words over a limit of 10


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_gao_fit_recovers_alpha_and_beta(form):
    alpha, beta, g0 = 0.8, 0.3, -0.2
    pts = []
    for d in [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]:
        second = d * d if form == "bon" else (d * math.log(d) if d > 0 else 0.0)
        pts.append({"kl": d * d, "gold": g0 + alpha * d - beta * second})
    fit = fit_gao(pts, form)
    assert fit["alpha"] == pytest.approx(alpha, abs=1e-9) and fit["beta"] == pytest.approx(beta, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0)
    peak = alpha / (2 * beta) if form == "bon" else math.exp(alpha / beta - 1)
    assert fit["peak_sqrt_kl"] == pytest.approx(peak)
    assert fit_gao(pts[:2], form) is None


def test_lab_runs_end_to_end_on_tiny_models_and_reuses_its_stages(tiny_dir, tmp_path):
    from blendrl.config import apply_overrides, from_dict
    from blendrl.config.lab_schema import OverOptLabConfig
    from blendrl.lab.overopt import run_lab

    data = {
        "model": {"name": str(tiny_dir)},
        "generation": {"max_new_tokens": 6, "temperature": 1.0},
        "data": {"prompts": "builtin:concise", "eval_prompts": "builtin:concise_eval", "max_prompt_tokens": 64},
        "gold": [{"kind": "callable", "name": "tests.tiny:yes_share"}],
        "labels": {"prompts": 16, "pairs_per_prompt": 2, "flip": 0.25},
        "proxy": {"members": 2, "rm": {"train": {"lr": 1e-3, "batch_size": 8, "micro_batch_size": 8}}},
        "salsa": {"sft_models": 2, "train": {"lr": 1e-3, "batch_size": 4, "micro_batch_size": 4}},
        "bon": {"pool": 4, "prompts": 4},
        "ppo": {"runs": [{"objective": "single", "kl_coef": 0.0}, {"objective": "wco", "kl_coef": 0.1},
                         {"objective": "single", "kl_coef": 0.0, "start": "salsa"}],
                "base": {"train": {"iterations": 2, "prompts_per_iteration": 2, "samples_per_prompt": 2, "lr": 3e-3,
                                   "micro_batch_size": 4}, "algorithm": {"epochs": 1}, "critic": {"lr": 1e-3}},
                "eval_every": 1, "eval_prompts": 4},
        "logging": {"output_dir": str(tmp_path / "lab")},
    }
    cfg = from_dict(OverOptLabConfig, apply_overrides(data, []))
    result = run_lab(cfg)
    out = tmp_path / "lab"
    pairs = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == result["labels"]["pairs"]["pairs"] > 0
    assert result["labels"]["pairs"]["flipped"] == sum(p["flipped"] for p in pairs)
    assert result["labels"]["pairs_eval"]["flipped"] == 0
    for p in pairs:  # an unflipped pair's chosen response has the higher gold score
        better = yes_share("", p["chosen"], {}) > yes_share("", p["rejected"], {})
        assert better != p["flipped"]
    objectives = {r["objective"] for r in result["bon"]}
    assert objectives == {"single", "mean", "wco", "uwo"}
    assert {r["n"] for r in result["bon"]} == {1, 2, 4}
    assert all(r["kl"] == pytest.approx(math.log(r["n"]) - (r["n"] - 1) / r["n"]) for r in result["bon"])
    for name in ("single-kl0", "wco-kl0.1", "single-kl0-salsa"):
        assert [p["iteration"] for p in result["ppo"][name]] == [0, 1, 2]
        assert result["ppo"][name][0]["kl"] == pytest.approx(0.0, abs=1e-4)
    # SALSA: two SFT models (different data orders) on the pairs' preferred responses, their 50/50 soup is the
    # policy's start and its KL reference
    sft = [f"{out}/sft/s{i}/final" for i in range(2)]
    s0, s1, soup = (load_file(f"{f}/model.safetensors") for f in (*sft, f"{out}/sft/soup"))
    assert any(not torch.equal(s0[k], s1[k]) for k in s0)  # other data order, other model
    assert all(torch.allclose(soup[k], (s0[k] + s1[k]) / 2) for k in soup)
    salsa_cfg = yaml.safe_load((out / "ppo" / "single-kl0-salsa" / "checkpoints" / "iter-000002" / "config.yaml")
                               .read_text())
    assert salsa_cfg["model"]["name"] == f"{out}/sft/soup"
    assert salsa_cfg["reference"]["kind"] == "soup" and salsa_cfg["reference"]["paths"] == sft
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "wco-kl0.1" in page
    stamp = (out / "proxies" / "m0" / "final").stat().st_mtime_ns
    again = run_lab(cfg)  # every stage is cached: same numbers, nothing retrained
    assert (out / "proxies" / "m0" / "final").stat().st_mtime_ns == stamp
    assert again["bon"] == result["bon"]
    assert torch.isfinite(torch.tensor([p["gold"] for p in again["ppo"]["wco-kl0.1"]])).all()


@pytest.mark.parametrize("flip", [0.25, 0.0])
def test_label_noise_flips_about_the_asked_share_and_only_those(tmp_path, flip):
    """400 gold-labelled pairs: with ``labels.flip`` 0.25 between 20% and 30% are flipped (binomial sd 2.2%), each
    flipped pair's chosen response has the lower gold score and every other pair's the higher. Mutations caught: the
    flip probability ignored or inverted, the flag written but the pair not swapped (or the reverse)."""
    import json
    from types import SimpleNamespace

    from blendrl.config import from_dict
    from blendrl.config.lab_schema import OverOptLabConfig
    from blendrl.lab.overopt import label_pairs
    from blendrl.rewards import make_samples

    prompts = [SimpleNamespace(messages=[{"role": "user", "content": f"q{i}"}], metadata={}, source="p", row=i)
               for i in range(100)]
    counter = iter(range(10 ** 6))

    def sample(ps, k, gen):
        return [make_samples([p] * k, [f"answer {next(counter)}" for _ in range(k)], [True] * k) for p in ps]

    gold = SimpleNamespace(score=lambda samples: torch.tensor([float(s.response.split()[1]) for s in samples]))
    policy = SimpleNamespace(prompts=prompts, eval_prompts=prompts[:2], sample=sample)
    cfg = from_dict(OverOptLabConfig, {"labels": {"prompts": 100, "pairs_per_prompt": 4, "flip": flip}})
    counts = label_pairs(cfg, policy, gold, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert counts["pairs"]["pairs"] == len(rows) == 400
    share = sum(r["flipped"] for r in rows) / len(rows)
    assert (0.20 <= share <= 0.30) if flip else share == 0.0
    for r in rows:  # "answer N" has gold score N
        assert (int(r["chosen"].split()[1]) < int(r["rejected"].split()[1])) == r["flipped"]
    assert counts["pairs_eval"]["flipped"] == 0


def test_a_bad_stage_setting_fails_before_any_stage_runs(tmp_path, monkeypatch):
    """``proxy.rm``, ``salsa.train``, ``ppo.base`` and a run's ``set`` are other commands' sections: they are built
    and checked when the lab starts (a typo there used to surface only when its stage ran, after the labels)."""
    from blendrl.config import ConfigError, from_dict
    from blendrl.config.lab_schema import OverOptLabConfig
    from blendrl.lab import overopt

    monkeypatch.setattr(overopt, "Policy", lambda cfg: pytest.fail("a model was loaded before the check"))

    def lab(**sections):
        base = {"logging": {"output_dir": str(tmp_path / "lab")}, "ppo": {"runs": [{"objective": "single"}]}}
        return from_dict(OverOptLabConfig, {**base, **sections})

    with pytest.raises(ConfigError, match=r"proxy\.rm\.loss\.recipe: unknown reward-model recipe 'btt'"):
        overopt.run_lab(lab(proxy={"members": 2, "rm": {"loss": {"recipe": "btt"}}}))
    with pytest.raises(ConfigError, match=r"salsa\.train\.lr: must be > 0"):
        overopt.run_lab(lab(salsa={"sft_models": 1, "train": {"lr": 0.0}}))
    with pytest.raises(ConfigError, match=r"unknown config key 'ppo\.runs\[0\]\.algorithm\.nmae'"):
        overopt.run_lab(lab(proxy={"members": 2}, ppo={"runs": [{"objective": "single"}],
                                                        "base": {"algorithm": {"nmae": "ppo"}}}))
    with pytest.raises(ConfigError, match=r"ppo\.runs\[0\]\.regularizer\.kind: unknown regularizer 'chi3'"):
        overopt.run_lab(lab(proxy={"members": 2}, ppo={"runs": [{"objective": "single",
                                                                  "set": ["regularizer.kind=chi3"]}]}))
    with pytest.raises(ConfigError, match=r"^unknown config key 'proxy\.rm\.loss\.recpie'"):
        overopt.run_lab(lab(proxy={"members": 2, "rm": {"loss": {"recpie": "bt"}}}))
