"""Name → object registries: every name a config can hold (a reward source kind, a judge, a KL estimator, an
algorithm, ...) is looked up in one of these, so a user's own code can add names without editing blendrl.

``@REG.register("name")`` adds an entry. A registry whose built-ins live in modules of a higher layer names those
modules (``builtins=``, listed once in :mod:`blendrl.core.registries`) and imports them at its first lookup, so a
low layer never imports a high one and every built-in is there before a name is checked. ``load_plugins`` imports a
user's modules (the ``plugins:`` config key) so their ``@REG.register`` decorators run.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable, Dict, Generic, Iterable, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """A named table. ``@REG.register("name")`` adds one; ``REG["name"]`` fetches it; ``"name" in REG``."""

    def __init__(self, kind: str, builtins: Iterable[str] = ()) -> None:
        self.kind = kind
        self._items: Dict[str, F] = {}
        self._builtins = tuple(builtins)  # modules whose import registers the built-in entries
        self._loaded = not self._builtins

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtins:
                importlib.import_module(module)

    def register(self, name: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = fn
            return fn

        return deco

    def __getitem__(self, name: str) -> F:
        self._load_builtins()
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} '{name}'; choose one of {sorted(self._items)}") from None

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        return name in self._items

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._items)


class PluginError(ImportError):
    """A module named in ``plugins:`` could not be imported."""


def load_plugins(modules: Iterable[str]) -> None:
    """Import each of ``modules`` (a dotted module name, or a path to a ``.py`` file) once, so the registrations
    in it run. A module already imported is not run again."""
    for spec in modules:
        if spec.endswith(".py"):
            path = Path(spec).expanduser().resolve()
            name = f"blendrl_plugin_{path.stem}_{abs(hash(str(path))) & 0xFFFFFFFF:x}"
            if name in sys.modules:
                continue
            if not path.is_file():
                raise PluginError(f"plugins: {spec} does not exist")
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            try:
                mod_spec.loader.exec_module(module)
            except Exception:
                del sys.modules[name]
                raise
        else:
            try:
                importlib.import_module(spec)
            except ModuleNotFoundError as exc:
                raise PluginError(f"plugins: cannot import module '{spec}': {exc}") from exc
