"""``logging.trackers``: W&B (offline), MLflow (a file store) and trackio (local) get the run's config, metrics and
sample tables from a tiny PPO run, read back through each library's own API; a resumed run continues the same
tracker run; an unknown tracker fails before any model loads."""
import json

import pytest

from tests.tiny import tiny_config

SETS = {"train.iterations": 2, "logging.eval_prompts": 2, "logging.save_every": 1, "logging.log_samples": 2}


def _train(tiny_dir, out, trackers: str, resume=None, **more):
    from blendrl.training.run import run

    return run(tiny_config(tiny_dir, out, **{**SETS, "logging.trackers": trackers, **more}), resume=resume)


def _jsonl(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_mlflow_holds_the_params_metrics_and_sample_tables_and_a_resume_continues_the_run(tiny_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run"
    _train(tiny_dir, out, "[{kind: mlflow}]", **{"train.iterations": 1})
    _train(tiny_dir, out, "[{kind: mlflow}]", resume=str(out))  # resumes at iteration 1, runs 1 more

    client = MlflowClient((out / "mlruns").resolve().as_uri())
    runs = client.search_runs([client.get_experiment_by_name("blendrl").experiment_id])
    assert len(runs) == 1  # the resumed run logged into the same MLflow run
    run_ = runs[0]
    assert run_.data.params["train.lr"] == "0.003" and run_.data.params["algorithm.name"] == '"ppo"'
    history = client.get_metric_history(run_.info.run_id, "reward.mean")
    expected = [m["reward/mean"] for m in _jsonl(out) if "reward/mean" in m]
    assert [h.step for h in history] == [1, 2] and [h.value for h in history] == pytest.approx(expected)
    assert client.get_metric_history(run_.info.run_id, "eval.reward.mean")  # held-out metrics too
    files = {f.path for f in client.list_artifacts(run_.info.run_id, "samples")}
    assert "samples/train-000002.json" in files and "samples/eval-000000.json" in files
    rows = json.loads((out / "mlruns").joinpath(*_artifact(client, run_.info.run_id, "samples/train-000002.json"))
                      .read_text())
    assert len(rows) == 2 and {"prompt", "response", "reward"} <= set(rows[0])


def _artifact(client, run_id, path):
    from urllib.parse import urlparse

    from pathlib import Path

    root = Path(urlparse(client.get_run(run_id).info.artifact_uri).path)
    return (root / path).parts


def _wandb_records(path):
    """The protobuf records of a W&B run file. W&B 0.30 has no API that reads an offline run, so this reads its
    transaction log (LevelDB's log format: 32 KiB blocks of CRC, length, type, payload) with W&B's own schema."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4: pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7: pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_holds_the_config_metrics_and_tables(tiny_dir, tmp_path):
    out = tmp_path / "run"
    _train(tiny_dir, out, "[{kind: wandb, options: {project: tiny}}]")
    files = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    history, config = [], {}
    for record in _wandb_records(files[0]):
        if record.WhichOneof("record_type") == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif record.WhichOneof("record_type") == "run":  # the run's start: its config
            config.update({u.key: json.loads(u.value_json) for u in record.run.config.update})
    assert config["train"]["lr"] == 0.003 and config["algorithm"]["name"] == "ppo"
    rewards = [h["reward/mean"] for h in history if "reward/mean" in h]
    assert rewards == pytest.approx([m["reward/mean"] for m in _jsonl(out) if "reward/mean" in m])
    tables = [{k.rsplit("/", 1)[1]: v for k, v in h.items() if k.startswith("samples/train/")} for h in history]
    tables = [t for t in tables if t]  # the steps that logged a training-sample table
    assert len(tables) == 2 and tables[0]["_type"] == "table-file" and tables[0]["nrows"] == 2
    table = json.loads(files[0].parent.joinpath("files", tables[-1]["path"]).read_text())
    assert {"prompt", "response", "reward"} <= set(table["columns"]) and len(table["data"]) == 2


def test_trackio_holds_the_metrics(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    out = tmp_path / "run"
    _train(tiny_dir, out, "[{kind: trackio, options: {project: tiny}}]")
    from trackio.sqlite_storage import SQLiteStorage

    name = (out / ".trackio_run_id").read_text()
    logs = SQLiteStorage.get_logs("tiny", name)
    rewards = [row["reward/mean"] for row in logs if "reward/mean" in row]
    assert rewards == pytest.approx([m["reward/mean"] for m in _jsonl(out) if "reward/mean" in m])


def test_an_unknown_tracker_fails_before_any_model_loads(tiny_dir, tmp_path):
    from blendrl.config import ConfigError
    from blendrl.training.names import check_names

    with pytest.raises(ConfigError, match=r"logging\.trackers\[0\]\.kind: unknown tracker 'wandbb'"):
        check_names(tiny_config(tiny_dir, tmp_path, **{"logging.trackers": "[{kind: wandbb}]"}))
    with pytest.raises(ConfigError, match=r"logging\.trackers\[0\]\.options\.projekt: tracker 'wandb' has no such"):
        check_names(tiny_config(tiny_dir, tmp_path, **{"logging.trackers": "[{kind: wandb, options: {projekt: x}}]"}))
