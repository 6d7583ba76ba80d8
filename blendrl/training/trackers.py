"""Experiment trackers beside metrics.jsonl and TensorBoard (``logging.trackers``): W&B, MLflow and trackio, each in
its own local mode by default, and any kind a plugin registers in ``TRACKERS``.

A tracker is built as ``TRACKERS[kind](run_dir, config, resumed, **options)`` and has ``log(step, metrics)``,
``log_samples(step, tag, rows)`` and ``close()``. It gets the run's config (a plain dict: secrets are never in it,
keys are named by environment variable) once, every metric the run logs, and the sample tables (training samples,
held-out samples) with their columns. A resumed run continues the same tracker run: its id is kept in the run
folder (``.<kind>_run_id``).
"""
from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path

from ..core.registry import Registry

TRACKERS: Registry = Registry("tracker", options_from_entry=True, builtins=("blendrl.training.trackers",))


def _scalars(metrics: dict) -> dict:
    """The finite numbers of ``metrics`` (a tracker plots numbers; NaN and text stay in metrics.jsonl)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _columns(rows: list[dict]) -> list[str]:
    """Every key of ``rows``, in first-seen order (a table's header)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _cell(value):
    return value if isinstance(value, (str, int, float, bool)) or value is None else json.dumps(value, default=str)


def _run_id(run_dir: Path, kind: str, resumed: bool, new) -> str:
    """The tracker run id of this run folder: the stored one when the run resumes, else ``new()``, stored."""
    path = run_dir / f".{kind}_run_id"
    if resumed and path.is_file():
        return path.read_text().strip()
    run_id = new()
    path.write_text(run_id)
    return run_id


def _flat(config: dict, prefix: str = "") -> dict[str, str]:
    """``{"train.lr": "1e-05", ...}``: the nested config as dotted keys (MLflow's params), values as short text."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = json.dumps(v, default=str)[:500]
    return out


class WandbTracker:
    """Weights & Biases. ``mode``: ``offline`` (default: files under ``<run_dir>/wandb``, ``wandb sync`` uploads
    them later), ``online`` (``WANDB_API_KEY`` from the environment) or ``disabled``; ``project``, ``entity``,
    ``name``, ``tags``, ``group``."""

    def __init__(self, run_dir: Path, config: dict, resumed: bool = False, mode: str = "offline",
                 project: str = "blendrl", entity: str | None = None, name: str | None = None,
                 tags: list | None = None, group: str | None = None) -> None:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.wandb = wandb
        run_id = _run_id(run_dir, "wandb", resumed, lambda: uuid.uuid4().hex[:12])
        self.run = wandb.init(project=project, entity=entity, name=name, tags=tags, group=group, mode=mode,
                              dir=str(run_dir), config=config, id=run_id, resume="allow",
                              settings=wandb.Settings(console="off", x_disable_stats=True))

    def log(self, step: int, metrics: dict) -> None:
        self.run.log(_scalars(metrics), step=step)

    def log_samples(self, step: int, tag: str, rows: list[dict]) -> None:
        columns = _columns(rows)
        table = self.wandb.Table(columns=columns, data=[[_cell(r.get(c)) for c in columns] for r in rows])
        self.run.log({f"samples/{tag}": table}, step=step)

    def close(self) -> None:
        self.run.finish()


class MLflowTracker:
    """MLflow. ``tracking_uri``: default a file store in ``<run_dir>/mlruns`` (no server, no database; MLflow 3 has
    it in maintenance mode); any MLflow URI (a server, ``sqlite:///...``, ``databricks``) otherwise. ``experiment``
    (default ``blendrl``), ``run_name``. The config goes in as params (dotted keys) and as ``config.json``; sample
    tables as ``samples/<tag>-<step>.json`` artifacts."""

    def __init__(self, run_dir: Path, config: dict, resumed: bool = False, tracking_uri: str | None = None,
                 experiment: str = "blendrl", run_name: str | None = None) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if tracking_uri is None:  # MLflow 3 keeps its file store working only when asked (it prefers a database)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri or (run_dir / "mlruns").resolve().as_uri())
        found = self.client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        fresh = {}

        def new() -> str:
            fresh["yes"] = True
            return self.client.create_run(exp_id, run_name=run_name).info.run_id

        self.run_id = _run_id(run_dir, "mlflow", resumed, new)
        if fresh:
            params = [Param(k, v) for k, v in _flat(config).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
                self.client.log_batch(self.run_id, params=params[i: i + 100])
            self.client.log_dict(self.run_id, config, "config.json")

    def log(self, step: int, metrics: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k.replace("/", "."), v, now, step) for k, v in _scalars(metrics).items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i: i + 1000])

    def log_samples(self, step: int, tag: str, rows: list[dict]) -> None:
        self.client.log_dict(self.run_id, [{k: _cell(v) for k, v in r.items()} for r in rows],
                             f"samples/{tag.replace('/', '_')}-{step:06d}.json")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class TrackioTracker:
    """trackio (Hugging Face's local-first tracker): its local database (``TRACKIO_DIR``, default
    ``<run_dir>/trackio``); ``project`` (default ``blendrl``), ``name``, ``space_id`` (a Space to sync to; none
    by default). ``trackio show`` opens the dashboard."""

    def __init__(self, run_dir: Path, config: dict, resumed: bool = False, project: str = "blendrl",
                 name: str | None = None, space_id: str | None = None) -> None:
        os.environ.setdefault("TRACKIO_DIR", str((run_dir / "trackio").resolve()))
        import trackio

        self.trackio = trackio
        run_name = _run_id(run_dir, "trackio", resumed, lambda: name or f"run-{int(time.time())}")
        self.run = trackio.init(project=project, name=run_name, config=config, space_id=space_id,
                                resume="allow" if resumed else "never")

    def log(self, step: int, metrics: dict) -> None:
        self.run.log(_scalars(metrics), step=step)

    def log_samples(self, step: int, tag: str, rows: list[dict]) -> None:
        import pandas as pd

        columns = _columns(rows)
        frame = pd.DataFrame([[_cell(r.get(c)) for c in columns] for r in rows], columns=columns)
        self.run.log({f"samples/{tag}": self.trackio.Table(dataframe=frame)}, step=step)

    def close(self) -> None:
        self.run.finish()


TRACKERS.register("wandb")(WandbTracker)
TRACKERS.register("mlflow")(MLflowTracker)
TRACKERS.register("trackio")(TrackioTracker)


def build_trackers(configs, run_dir: Path, config: dict, resumed: bool) -> list:
    """One tracker per ``logging.trackers`` entry (``kind``, ``options``)."""
    return [TRACKERS[c.kind](run_dir, config, resumed, **c.options) for c in configs]
