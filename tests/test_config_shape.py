"""One config shape for every command: the run folder is ``logging.output_dir``, the seed ``train.seed``, the torch
threads ``train.threads``; a key that moved there says so."""
import dataclasses

import pytest

from blendrl.config import ConfigError, PPORunConfig, from_dict
from blendrl.config.cgpo_schema import CGPORunConfig
from blendrl.config.dpo_schema import DPORunConfig
from blendrl.config.lab_schema import OverOptLabConfig
from blendrl.config.rm_schema import RMRunConfig
from blendrl.config.schema import BoNRunConfig
from blendrl.config.sft_schema import SFTRunConfig

COMMANDS = [PPORunConfig, CGPORunConfig, RMRunConfig, DPORunConfig, SFTRunConfig, BoNRunConfig, OverOptLabConfig]


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda c: c.__name__)
def test_every_command_has_the_same_keys_for_folder_seed_and_threads(cls):
    need = {"tasks": [{"prompts": "builtin:concise", "rewards": [{"kind": "rule", "name": "concise_mention"}]}]} \
        if cls is CGPORunConfig else {}
    cfg = from_dict(cls, {**need, "logging": {"output_dir": "out/x"}, "train": {"seed": 7, "threads": 1}})
    assert cfg.logging.output_dir == "out/x" and cfg.train.seed == 7 and cfg.train.threads == 1
    top = {f.name for f in dataclasses.fields(cls)}
    assert not top & {"output_dir", "seed", "threads", "eval_every"}, f"{cls.__name__}: a key outside its section"


@pytest.mark.parametrize("cls, key, where", [
    (SFTRunConfig, "output_dir", "logging.output_dir"), (DPORunConfig, "eval_every", "logging.eval_every"),
    (BoNRunConfig, "seed", "train.seed"), (OverOptLabConfig, "threads", "train.threads"),
    (OverOptLabConfig, "output_dir", "logging.output_dir")])
def test_a_moved_key_says_where_it_went(cls, key, where):
    with pytest.raises(ConfigError, match=rf"^{key}: moved to {where} \(set that instead\)$"):
        from_dict(cls, {key: 1})


def test_building_and_running_leaves_the_config_as_loaded(tiny_dir, tmp_path):
    """Derived configs (summed PPO's, rm strength's, the lab's stages) are built from a config, never by mutating
    it: the config a run was given is the one its checkpoints save."""
    from blendrl.config import to_dict
    from blendrl.training.cgpo.run import build_cgpo_trainer
    from blendrl.training.cgpo.summed_ppo import build_summed_ppo
    from blendrl.training.run import build_trainer
    from tests.tiny import tiny_cgpo_config, tiny_config

    ppo = tiny_config(tiny_dir, tmp_path / "ppo")
    cgpo = tiny_cgpo_config(tiny_dir, tmp_path / "cgpo")
    before = to_dict(ppo), to_dict(cgpo)
    build_trainer(ppo).step()
    build_cgpo_trainer(cgpo).step()
    build_summed_ppo(cgpo).step()
    assert (to_dict(ppo), to_dict(cgpo)) == before
