"""Typed dataclass configs from YAML with ``--set key=value`` overrides, validated at load.

Every error is one line that names the key (``train.lr``) and what was wrong with it.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value is wrong; the message names it."""


def _type_name(tp: Any) -> str:
    """``bool | 'reference' | 'rewards'`` for ``Union[bool, Literal["reference", "rewards"]]``."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in get_args(tp) if arg is not type(None))
    if origin is Literal:
        return " | ".join(repr(choice) for choice in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(value, bool) and value not in choices:  # YAML 1.1 reads no/off/yes/on as booleans
            value = next((c for c in choices if isinstance(c, str) and c.lower() in (
                ("no", "off", "false") if value is False else ("yes", "on", "true"))), value)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, prefix=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp,) = get_args(tp)[:1] or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise :class:`ConfigError`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            moved = getattr(cls, "MOVED_KEYS", {})  # a key that now lives elsewhere: say where
            if name in moved:
                raise ConfigError(f"{key}: moved to {moved[name]} (set that instead)")
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            raise ConfigError(f"unknown config key '{key}'{hint}")
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as exc:
            raise ConfigError(f"{prefix}.{exc}" if prefix else str(exc)) from None
    return obj


def to_dict(obj: Any) -> Any:
    """A plain-data copy of a config (for saving next to checkpoints)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML: ``3``, ``1e-5``, ``true``, ``[a, b]``).

    A part that meets a list picks one element: by position (``tasks.0.optimizer.name=codpo``) or by the element's
    ``name`` field (``tasks.chat.judges=[{kind: eos}]``); missing sections of mappings are created."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        dotted, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        dotted = dotted.strip()
        node: dict | list = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[_list_index(node, part, dotted)]
                if not isinstance(node, (dict, list)):
                    raise ConfigError(f"--set {dotted}: '{part}' is not a section")
                continue
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, (dict, list)):
                raise ConfigError(f"--set {dotted}: '{part}' is not a section")
            node = child
        if isinstance(node, list):
            node[_list_index(node, parts[-1], dotted)] = value
        else:
            node[parts[-1]] = value
    return data


def _list_index(items: list, part: str, dotted: str) -> int:
    """Position of ``part`` in a config list: an integer index, else the element whose ``name`` equals it."""
    if re.fullmatch(r"-?\d+", part):
        index = int(part)
        if not -len(items) <= index < len(items):
            raise ConfigError(f"--set {dotted}: index {index} is out of range (the list has {len(items)} items)")
        return index
    names = [item.get("name") for item in items if isinstance(item, dict)]
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    raise ConfigError(f"--set {dotted}: no item named '{part}' in the list (names: {', '.join(map(str, names))})")


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Read YAML ``path`` (optional), apply ``overrides``, and build a validated ``cls``."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    apply_overrides(data, overrides or [])
    return from_dict(cls, data)
