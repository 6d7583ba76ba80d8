"""Prompt datasets: files in the formats people have, validated row by row, tokenised with the chat template.

Accepted sources:
- ``builtin:NAME`` (see :mod:`blendrl.data.builtin`);
- ``.jsonl`` — one JSON object per line; ``.json`` — a list of objects. Each object has ``prompt`` (a string or a
  chat message list ``[{"role": ..., "content": ...}]``) or ``messages``; ``metadata`` (an object) is optional and
  any other field is kept in the metadata too;
- ``.txt`` — one prompt per non-empty line;
- ``.parquet`` (verl's format), a ``datasets`` ``save_to_disk`` folder, or a dataset cached from the hub (offline;
  ``name:split``), with the same columns as a ``.jsonl`` row (:func:`read_table_rows`, shared with preferences).
A bad row raises :class:`DataError` naming the file, row (1-based line for jsonl) and field.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.seeds import stream
from .builtin import BUILTIN_PROMPTS


class DataError(ValueError):
    """A data file or row is malformed; the message names the file, row and field."""


class EmptyFieldError(DataError):
    """A row whose prompt or response is empty: an error, or skipped and counted under ``data.on_empty: skip``."""


def skip_empty(rows, parse, on_empty: str, source: str) -> list[tuple[int, Any]]:
    """``[(row, parse(obj, where)) for (row, obj) in rows]``, where a row raising :class:`EmptyFieldError` raises
    (``on_empty="error"``) or is left out, counted and logged with its row numbers (``"skip"``)."""
    out, skipped = [], []
    for row, obj in rows:
        where = f"{source}, row {row}"
        try:
            out.append((row, parse(obj, where)))
        except EmptyFieldError as exc:
            if on_empty != "skip":
                raise DataError(f"{exc} (or set data.on_empty=skip to leave such rows out)") from None
            skipped.append(row)
    if skipped:
        import logging

        shown = ", ".join(map(str, skipped[:20])) + (", ..." if len(skipped) > 20 else "")
        logging.getLogger("blendrl").warning("%s: skipped %d of %d rows with an empty prompt or response "
                                             "(data.on_empty=skip): rows %s", source, len(skipped), len(rows), shown)
    return out


@dataclass
class PromptExample:
    """One prompt: its chat messages, its token ids after the chat template, and its metadata."""

    messages: list[dict]
    text: str  # the prompt as the model sees it (after the chat template)
    input_ids: list[int]
    metadata: dict = field(default_factory=dict)
    source: str = ""
    row: int = 0

    @property
    def user_text(self) -> str:
        return self.messages[-1]["content"]


def row_to_messages(obj: Any, where: str) -> tuple[list[dict], dict]:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    key = "prompt" if "prompt" in obj else "messages" if "messages" in obj else None
    if key is None:
        raise DataError(f"{where}: missing field 'prompt' (or 'messages')")
    value = obj[key]
    if isinstance(value, str):
        if not value.strip():
            raise EmptyFieldError(f"{where}, field '{key}': empty prompt")
        messages = [{"role": "user", "content": value}]
    elif isinstance(value, list) and not value:
        raise EmptyFieldError(f"{where}, field '{key}': empty message list")
    elif isinstance(value, list):
        for i, m in enumerate(value):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
                raise DataError(f"{where}, field '{key}[{i}]': expected {{'role': ..., 'content': str}}")
        messages = [{"role": m["role"], "content": m["content"]} for m in value]
    else:
        raise DataError(f"{where}, field '{key}': expected a non-empty string or message list")
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise DataError(f"{where}, field 'metadata': expected an object")
    extra = {k: v for k, v in obj.items() if k not in (key, "metadata")}
    return messages, {**extra, **metadata}


def _column(obj: dict, path: str, where: str, key: str):
    """``obj``'s value at ``path`` (dots go into nested objects), or a :class:`DataError` naming the row, the column
    and the ``data.columns`` key that asked for it."""
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"{where}, field '{path}': missing (data.columns.{key} names it)")
        value = value[part]
    return value


def map_columns(obj: Any, columns, where: str) -> Any:
    """A table row in blendrl's shape under a ``data.columns`` mapping (:class:`~blendrl.config.settings.
    ColumnsConfig`): the prompt column as ``prompt``, each mapped metadata field into ``metadata``, every other
    column kept. With no mapping (None, or nothing set) the row as it is."""
    if columns is None or (columns.prompt is None and not columns.metadata) or not isinstance(obj, dict):
        return obj
    out = dict(obj)
    if columns.prompt is not None:
        value = _column(obj, columns.prompt, where, "prompt")
        out.pop(columns.prompt, None)  # a top-level column moves to prompt; a nested one stays where it is
        out["prompt"] = value
    meta = out.get("metadata", {})
    if columns.metadata and isinstance(meta, dict):  # (a metadata that is not an object is row_to_messages' error)
        out["metadata"] = {**meta, **{k: _column(obj, path, where, f"metadata.{k}")
                                      for k, path in columns.metadata.items()}}
    return out


def read_text(path: Path) -> str:
    """The file as UTF-8 text; a file that is not UTF-8 is a :class:`DataError` naming the file, the row (line) and
    the byte offset of the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}, row {row}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        f"save the file as UTF-8") from None


def read_json_rows(path: Path) -> list[tuple[int, Any]]:
    """``(row, object)`` pairs of a .jsonl file (1-based line numbers, blank lines skipped) or of a .json list.
    Raises :class:`DataError` naming the file and row of invalid JSON or of bytes that are not UTF-8."""
    text = read_text(path)
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of objects")
        return list(enumerate(data, 1))
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, row {lineno}: not valid JSON ({exc.msg})") from None
    return rows


def read_table_rows(source: str, what: str) -> list[tuple[int, Any]]:
    """``(row, object)`` pairs (1-based rows) of a table: a ``.jsonl`` / ``.json`` / ``.parquet`` file, a folder
    written by ``datasets`` ``save_to_disk`` (a DatasetDict: its ``train`` split), or any name
    ``datasets.load_dataset`` resolves offline (a hub id in the local cache; ``name:split``, default ``train``).
    ``what`` (``prompt``, ``preference``) names the data in errors (:class:`DataError`)."""
    path = Path(source)
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return read_json_rows(path)
    if path.is_file() and path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return list(enumerate(pq.read_table(path).to_pylist(), 1))
        except Exception as exc:  # pyarrow's errors for a file that is not parquet
            raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    if path.is_file():
        raise DataError(f"{path}: unsupported {what} file type '{path.suffix}' (use .jsonl, .json or .parquet)")
    if path.is_dir():
        from datasets import load_from_disk

        try:
            ds = load_from_disk(str(path))
        except FileNotFoundError as exc:
            raise DataError(f"{path}: not a datasets folder ({exc})") from None
        if hasattr(ds, "keys"):  # a DatasetDict: take train
            ds = ds["train"]
        return list(enumerate(ds.to_list(), 1))
    if source.startswith((".", "/", "~")) or path.suffix in (".jsonl", ".json", ".parquet", ".txt"):
        raise DataError(f"{what} file {path} does not exist")  # a path, not a dataset name
    from datasets import load_dataset

    name, _, split = source.partition(":")
    try:
        ds = load_dataset(name, split=split or "train")
    except Exception as exc:  # datasets raises many types for a missing dataset
        raise DataError(f"{what} data '{source}' is not a file, a folder, builtin:NAME, or a dataset that datasets can "
                        f"load offline ({type(exc).__name__}: {exc})") from None
    return list(enumerate(ds.to_list(), 1))


def message_rows(path: str, what: str):
    """``(file, "file, row N", messages, other fields)`` for every row of a .jsonl/.json file of conversations
    (:func:`row_to_messages`); a missing file is a :class:`DataError` naming ``what`` (the config key)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{what}: {file} does not exist")
    for row, obj in read_json_rows(file):
        where = f"{file}, row {row}"
        yield (file, where, *row_to_messages(obj, where))


def read_prompt_rows(source: str, on_empty: str = "error", columns=None) -> list[tuple[list[dict], dict, str, int]]:
    """Rows of ``(messages, metadata, source, row)`` from a built-in set or a file; raises :class:`DataError`.
    A row with an empty prompt raises, or is skipped and counted under ``on_empty="skip"``. ``columns``: a table's
    ``data.columns`` mapping (:func:`map_columns`)."""
    if source.startswith("builtin:"):
        name = source.split(":", 1)[1]
        if name not in BUILTIN_PROMPTS:
            raise DataError(f"unknown built-in prompt set '{name}'; choose one of {sorted(BUILTIN_PROMPTS)}")
        objs = [(i + 1, o) for i, o in enumerate(BUILTIN_PROMPTS[name]())]
    elif Path(source).is_file() and Path(source).suffix == ".txt":
        lines = read_text(Path(source)).splitlines()
        objs = [(i, {"prompt": line}) for i, line in enumerate(lines, 1) if line.strip()]
    else:  # .jsonl / .json / .parquet, a datasets folder, a cached hub dataset
        objs = [(row, map_columns(obj, columns, f"{source}, row {row}"))
                for row, obj in read_table_rows(source, "prompt")]
    rows = [(*parsed, source, row) for row, parsed in skip_empty(objs, row_to_messages, on_empty, source)]
    if not rows:
        raise DataError(f"{source}: no prompts found (the file is empty)")
    return rows


def load_prompts(
    source: str,
    tokenizer,
    max_prompt_tokens: int,
    chat_template: bool = True,
    system_prompt: str | None = None,
    too_long: str = "error",
    on_empty: str = "error",
    columns=None,
) -> tuple[list[PromptExample], int]:
    """Read, validate and tokenise prompts. Returns ``(examples, n_skipped_too_long)``.

    A prompt longer than ``max_prompt_tokens`` raises (``too_long="error"``) or is skipped and counted (``"skip"``);
    an empty prompt raises or is skipped and counted (``on_empty``); ``columns``: a table's ``data.columns``.
    """
    examples, skipped = [], 0
    for messages, metadata, src, row in read_prompt_rows(source, on_empty, columns):
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
        if chat_template and tokenizer.chat_template:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = "\n".join(m["content"] for m in messages)
        ids = tokenizer(text, add_special_tokens=not chat_template)["input_ids"]
        if len(ids) > max_prompt_tokens:
            if too_long == "error":
                raise DataError(
                    f"{src}, row {row}, field 'prompt': {len(ids)} tokens exceed data.max_prompt_tokens="
                    f"{max_prompt_tokens} (raise it, or set data.too_long=skip)"
                )
            skipped += 1
            continue
        examples.append(PromptExample(messages, text, ids, metadata, src, row))
    if not examples:
        raise DataError(f"{source}: every prompt was longer than {max_prompt_tokens} tokens")
    return examples, skipped


def load_prompt_set(source: str, tokenizer, data, system_prompt: str | None) -> list[PromptExample]:
    """:func:`load_prompts` with the options of a prompt-data config section ``data`` (``max_prompt_tokens``,
    ``chat_template``, ``too_long``, ``on_empty``, ``columns``)."""
    return load_prompts(source, tokenizer, data.max_prompt_tokens, data.chat_template, system_prompt, data.too_long,
                        data.on_empty, getattr(data, "columns", None))[0]


def epoch_batch(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Rows of optimizer step ``step`` over ``n`` rows in batches of ``batch_size``: each epoch a permutation seeded
    by (``seed``, epoch), cut into batches (the last may be short). A pure function of its arguments: resume at any
    step gives the same batches."""
    steps_per_epoch = -(-n // batch_size)
    epoch, k = divmod(step, steps_per_epoch)
    order = torch.randperm(n, generator=stream(seed, "epoch_order", epoch))
    return order[k * batch_size: (k + 1) * batch_size].tolist()


class PromptSampler:
    """Draws batches of prompts in a seeded shuffled order, epoch after epoch; its state resumes exactly."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0
        self._order = self._shuffle()

    def _shuffle(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 100_003 + self.epoch).shuffle(order)
        return order

    def next_indices(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._shuffle()
            out.append(self._order[self.pos])
            self.pos += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._order = self._shuffle()
