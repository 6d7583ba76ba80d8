"""Preference datasets: pairs (prompt, chosen, rejected) in the shapes people have, validated row by row.

Sources: a ``.jsonl`` / ``.json`` / ``.parquet`` file, a folder written by ``datasets.Dataset.save_to_disk``, a
``builtin:NAME`` synthetic set (:mod:`blendrl.data.synthetic`), or any name ``datasets.load_dataset`` resolves
(a hub id in the local cache; ``name:split`` picks a split, default ``train``): the same reader as the prompts'
(:func:`blendrl.data.prompts.read_table_rows`).

Row shapes (each column may also hold extra fields, which are kept and written back):

- plain: ``prompt`` (string or message list), ``chosen`` and ``rejected`` strings;
- UltraFeedback: ``chosen`` / ``rejected`` are message lists ending with the assistant turn (``prompt`` optional;
  the shared messages before the last turn are the prompt);
- HH-RLHF: no ``prompt``; ``chosen`` / ``rejected`` are transcripts ``"\\n\\nHuman: …\\n\\nAssistant: …"``.

Optional ``mu`` / ``sigma`` columns hold preference strength (written by ``blendrl rm strength``, Secrets II eq. 4).
A bad row raises :class:`DataError` naming the source, row (1-based) and field.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .prompts import DataError, EmptyFieldError, read_table_rows, skip_empty

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


@dataclass
class PreferencePair:
    """One comparison: the prompt as chat messages, the two responses, and the row it came from."""

    prompt: list[dict]
    chosen: str
    rejected: str
    raw: dict = field(default_factory=dict)  # the original row, written back with new columns
    where: str = ""  # "source, row N"

    @property
    def mu(self) -> float | None:
        return self.raw.get("mu")


def _messages(value: Any, where: str) -> list[dict]:
    if isinstance(value, list) and not value:
        raise EmptyFieldError(f"{where}: empty message list")
    if not isinstance(value, list):
        raise DataError(f"{where}: expected a non-empty message list")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or not isinstance(m.get("content"), str):
            raise DataError(f"{where}[{i}]: expected {{'role': ..., 'content': str}}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _hh_transcript(text: str, where: str) -> list[dict]:
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise DataError(f"{where}: not an HH-RLHF transcript ('\\n\\nHuman: …\\n\\nAssistant: …') and no 'prompt'")
    return [{"role": _HH_ROLES[r], "content": c} for r, c in zip(parts[1::2], parts[2::2])]


def _split_conversation(value: Any, where: str) -> tuple[list[dict] | None, str]:
    """A response field → (prompt messages it carries or None, the response text)."""
    if isinstance(value, str):
        if _HH_TURN.match(value):
            msgs = _hh_transcript(value, where)
        else:
            return None, value
    else:
        msgs = _messages(value, where)
    if msgs[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's response, got '{msgs[-1]['role']}'")
    return msgs[:-1], msgs[-1]["content"]


def parse_pair(obj: Any, where: str) -> PreferencePair:
    """Validate one row and normalise it to a :class:`PreferencePair`."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object, got {type(obj).__name__}")
    for key in ("chosen", "rejected"):
        if key not in obj:
            raise DataError(f"{where}, field '{key}': missing")
        if not isinstance(obj[key], (str, list)):
            raise DataError(f"{where}, field '{key}': expected a string or message list, got {type(obj[key]).__name__}")
    prompt_c, chosen = _split_conversation(obj["chosen"], f"{where}, field 'chosen'")
    prompt_r, rejected = _split_conversation(obj["rejected"], f"{where}, field 'rejected'")
    if prompt_c != prompt_r:
        raise DataError(f"{where}, field 'rejected': its conversation before the response differs from 'chosen'")
    if "prompt" in obj:
        value = obj["prompt"]
        if isinstance(value, str):
            if not value.strip():
                raise EmptyFieldError(f"{where}, field 'prompt': empty")
            prompt = [{"role": "user", "content": value}]
        else:
            prompt = _messages(value, f"{where}, field 'prompt'")
        if prompt_c:  # UltraFeedback: the response lists carry the whole conversation
            prompt = prompt_c
    elif prompt_c:
        prompt = prompt_c
    else:
        raise DataError(f"{where}, field 'prompt': missing (and 'chosen' is not a conversation)")
    for key, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise EmptyFieldError(f"{where}, field '{key}': empty response")
    for key in ("mu", "sigma"):
        if key in obj and obj[key] is not None and not isinstance(obj[key], (int, float)):
            raise DataError(f"{where}, field '{key}': expected a number, got {type(obj[key]).__name__}")
    return PreferencePair(prompt, chosen, rejected, dict(obj), where)


def _read_rows(source: str) -> list[tuple[int, Any]]:
    if source.startswith("builtin:"):
        from .synthetic import BUILTIN_PREFERENCES

        name = source.split(":", 1)[1]
        if name not in BUILTIN_PREFERENCES:
            raise DataError(f"unknown built-in preference set '{name}'; choose one of {sorted(BUILTIN_PREFERENCES)}")
        return list(enumerate(BUILTIN_PREFERENCES[name](), 1))
    return read_table_rows(source, "preference")


def load_preferences(source: str, on_empty: str = "error") -> list[PreferencePair]:
    """Read and validate every row of ``source``; raises :class:`DataError` on the first bad row. A row with an
    empty prompt or response raises too, or is skipped, counted and logged under ``on_empty="skip"``."""
    pairs = [pair for _, pair in skip_empty(_read_rows(source), parse_pair, on_empty, source)]
    if not pairs:
        raise DataError(f"{source}: no preference pairs found (the file is empty)")
    return pairs


def require_strength(pairs: list[PreferencePair], why: str, column: str = "mu") -> None:
    """Raise unless every pair carries ``column`` (``mu`` or ``sigma``, from ``blendrl rm strength``)."""
    for p in pairs:
        if p.raw.get(column) is None:
            raise DataError(f"{p.where}, field '{column}': missing; {why} needs preference strength "
                            "(run `blendrl rm strength` and train on the file it writes)")


def write_preferences(rows: list[dict], path: str | Path) -> Path:
    """Write rows (the original fields plus new columns) as .jsonl or .parquet, atomically."""
    from ..core.fsutil import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(pa.Table.from_pylist(rows), tmp)
        tmp.replace(path)
    elif path.suffix == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        raise DataError(f"{path}: write preferences as .jsonl or .parquet")
    return path
