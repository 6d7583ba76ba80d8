"""Run logging: metrics as JSONL and TensorBoard, sample generations as JSONL, a progress bar, and the configured
experiment trackers (:mod:`blendrl.training.trackers`)."""
from __future__ import annotations

import json
import math
from pathlib import Path


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class RunLogger:
    """Appends to ``metrics.jsonl`` and ``samples.jsonl`` in ``folder`` (resume keeps appending) and mirrors scalars
    to TensorBoard when enabled, and metrics and samples to every tracker in ``trackers``."""

    def __init__(self, folder: Path, tensorboard: bool = True, progress: bool = True, total: int = 0,
                 start: int = 0, desc: str = "ppo", trackers: list | None = None) -> None:
        self.trackers = list(trackers or [])
        folder.mkdir(parents=True, exist_ok=True)
        self.metrics = open(folder / "metrics.jsonl", "a")
        self.samples = open(folder / "samples.jsonl", "a")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(folder / "tensorboard"))
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, unit="it", dynamic_ncols=True)

    def log(self, step: int, metrics: dict) -> None:
        self.metrics.write(json.dumps({"iteration": step, **{k: _clean(v) for k, v in metrics.items()}}) + "\n")
        self.metrics.flush()
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()
        for tracker in self.trackers:
            tracker.log(step, metrics)

    def log_samples(self, step: int, tag: str, rows: list[dict]) -> None:
        for row in rows:
            self.samples.write(json.dumps({"iteration": step, "tag": tag, **row}) + "\n")
        self.samples.flush()
        for tracker in self.trackers:
            if rows:
                tracker.log_samples(step, tag, rows)

    def progress(self, postfix: dict) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        for tracker in self.trackers:
            tracker.close()
        self.metrics.close()
        self.samples.close()


class NullLogger:
    """What a data-parallel run's other ranks log to: nothing (rank 0 writes the run's files)."""

    def log(self, step: int, metrics: dict) -> None:
        pass

    def log_samples(self, step: int, tag: str, rows: list[dict]) -> None:
        pass

    def progress(self, postfix: dict) -> None:
        pass

    def write(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass
