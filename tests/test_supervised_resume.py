"""`blendrl rm train`, `dpo` and `sft` run through the one run loop (blendrl/training/driver.py): each is killed
with SIGKILL after a checkpoint, resumed with --resume and ends with the weights of a run that was never stopped;
each logs metrics (held-out ones every `logging.eval_every` steps) and writes `checkpoints/step-NNNNNN`;
`train.threads` and `train.seed` apply."""
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.tiny import finish, kill_once_checkpointed, launch


# a plugin that makes every optimizer step take 0.25 s, so that a run can be killed between two checkpoints
SLOW_STEPS = '''
import time

from blendrl.training.engine import LocalEngine

_step = LocalEngine.step


def _slow_step(self, *args, **kwargs):
    time.sleep(0.25)
    return _step(self, *args, **kwargs)


LocalEngine.step = _slow_step
'''


def _sft_config(tiny_dir, rm_tiny_dir, tmp: Path) -> dict:
    from tests.test_sft import _data

    return {"model": {"name": str(tiny_dir)}, "data": str(_data(tmp / "sft.jsonl", 32)),
            "train": {"epochs": 3, "batch_size": 8, "micro_batch_size": 4, "lr": 5e-3}}


def _dpo_config(tiny_dir, rm_tiny_dir, tmp: Path) -> dict:
    return {"model": {"name": str(rm_tiny_dir)},
            "data": {"train": "builtin:synthetic", "eval": "builtin:synthetic_eval", "limit": 48, "max_length": 96},
            "train": {"epochs": 2, "batch_size": 8, "micro_batch_size": 4, "lr": 3e-3, "schedule": "constant"},
            "logging": {"eval_every": 4}}


def _rm_config(tiny_dir, rm_tiny_dir, tmp: Path) -> dict:
    from blendrl.data.preferences import write_preferences
    from blendrl.data.synthetic import make_pairs

    write_preferences(make_pairs(96, seed=5), tmp / "prefs.jsonl")
    return {"model": {"name": str(rm_tiny_dir), "dropout": 0.1},
            "data": {"train": str(tmp / "prefs.jsonl"), "eval": str(tmp / "prefs.jsonl"), "limit": 64},
            "train": {"epochs": 2, "batch_size": 8, "micro_batch_size": 8, "lr": 3e-3, "schedule": "constant"},
            "logging": {"eval_every": 4}}


# command, its config, the model folder inside a checkpoint, the steps of the run
COMMANDS = {"sft": (["sft"], _sft_config, "model", 12), "dpo": (["dpo"], _dpo_config, "policy", 12),
            "rm": (["rm", "train"], _rm_config, "model", 16)}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_weights(name, tiny_dir, rm_tiny_dir, tmp_path):
    command, make_config, folder, steps = COMMANDS[name]
    (tmp_path / "slow_steps.py").write_text(SLOW_STEPS)
    data = make_config(tiny_dir, rm_tiny_dir, tmp_path)
    data["train"]["threads"] = 1
    data["plugins"] = [str(tmp_path / "slow_steps.py")]
    for run in ("straight", "killed"):
        data["logging"] = {**data.get("logging", {}), "output_dir": str(tmp_path / run), "save_every": 1,
                           "keep_checkpoints": 3, "tensorboard": False, "progress": False}
        (tmp_path / f"{run}.yaml").write_text(yaml.safe_dump(data))
    straight = launch(command, tmp_path / "straight.yaml")
    kill_once_checkpointed(launch(command, tmp_path / "killed.yaml"), tmp_path / "killed", "step-000002")
    finish(launch(command, tmp_path / "killed.yaml", "--resume", str(tmp_path / "killed")))
    out = finish(straight)
    assert f"{name}: {steps} steps, evaluations and checkpoints in" in out  # the run loop's last line
    a, b = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("straight", "killed"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    last = tmp_path / "killed" / "checkpoints" / f"step-{steps:06d}"
    assert (last / folder / "model.safetensors").is_file() and (last / "trainer_state.pt").is_file()
    rows = [json.loads(x) for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert {r["iteration"] for r in rows} >= set(range(1, steps + 1))  # the killed part and the resumed part
    if name != "sft":  # held-out metrics every logging.eval_every steps
        assert {r["iteration"] for r in rows if any(k.startswith("eval/") for k in r)} >= {4, 8}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_train_threads_and_seed_apply(name, tiny_dir, rm_tiny_dir, tmp_path, monkeypatch):
    from blendrl.config import from_dict
    from blendrl.config.dpo_schema import DPORunConfig
    from blendrl.config.rm_schema import RMRunConfig
    from blendrl.config.sft_schema import SFTRunConfig
    from blendrl.training.dpo import build_dpo_trainer
    from blendrl.training.rm.run import build_rm_trainer
    from blendrl.training.sft import build_sft_trainer

    cls, build = {"sft": (SFTRunConfig, build_sft_trainer), "dpo": (DPORunConfig, build_dpo_trainer),
                  "rm": (RMRunConfig, build_rm_trainer)}[name]
    data = COMMANDS[name][1](tiny_dir, rm_tiny_dir, tmp_path)
    data["train"].update(threads=3, seed=7)
    data["logging"] = {"output_dir": str(tmp_path / "run")}
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("threads", n)))
    monkeypatch.setattr(torch, "manual_seed", lambda s: calls.append(("seed", s)))
    build(from_dict(cls, data))
    assert calls[:2] == [("threads", 3), ("seed", 7)]
