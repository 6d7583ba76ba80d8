"""Name → object registries: every name a config can hold (a reward source kind, a judge, a KL estimator, an
algorithm, ...) is looked up in one of these, so a user's own code can add names without editing blendrl.

``@REG.register("name")`` adds an entry. An entry owns the checks of its config node (:meth:`Registry.validate`,
called once per node with the node's key path before any model loads): the option names it takes (``options=``:
the callables its options are handed to; with ``options_from_entry`` the entry's own parameters) and any
``check(node, root)`` of its own (``check=``: a value range, a setting elsewhere that the kind needs).

A registry imports the modules that hold its built-ins at its first lookup, so every built-in is there before a
name is checked: modules of its own layer it names itself (``builtins=``); a registry that lives below the layers
that fill it gets them declared from above (:meth:`Registry.add_builtins`, called by the root package), so no layer
names a module above it. ``load_plugins`` imports a user's modules (the ``plugins:`` config key) so their
``@REG.register`` decorators run.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Callable, Dict, Generic, Iterable, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """A named table. ``@REG.register("name")`` adds one; ``REG["name"]`` fetches it; ``"name" in REG``."""

    def __init__(self, kind: str, builtins: Iterable[str] = (), options_from_entry: bool = False) -> None:
        self.kind = kind
        self._items: Dict[str, F] = {}
        self._checks: Dict[str, tuple] = {}  # name → (check, callables taking the options)
        self._options_from_entry = options_from_entry
        self._builtins = tuple(builtins)  # modules whose import registers the built-in entries
        self._loaded = not self._builtins

    def add_builtins(self, *modules: str) -> None:
        """Declare more modules whose import registers built-in entries (loaded at the next lookup): how a layer
        above names its modules to a registry that lives below it."""
        self._builtins = (*self._builtins, *modules)
        self._loaded = False

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtins:
                importlib.import_module(module)

    def register(self, name: str, check: Callable | None = None, options: tuple = ()) -> Callable[[F], F]:
        """``check(node, root)``: the entry's own checks of its config node (``root``: the whole run config), raising
        ValueError with a message that starts with the field (``options.members: ...``); ``options``: the callables
        the node's ``options`` are handed to (their parameter names are the options it takes)."""
        def deco(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = fn
            self._checks[name] = (check, tuple(options) or ((fn,) if self._options_from_entry else ()))
            return fn

        return deco

    def option_names(self, name: str) -> frozenset[str] | None:
        """The option names entry ``name`` takes (None: it does not say)."""
        self._load_builtins()
        return option_names(self._checks.get(name, (None, ()))[1])

    def validate(self, name: str, node, root=None) -> None:
        """The checks entry ``name`` owns on its config ``node`` (module doc); raises ValueError."""
        self._load_builtins()
        check, takes = self._checks.get(name, (None, ()))
        options = getattr(node, "options", None)
        allowed = option_names(takes)
        if isinstance(options, dict) and allowed is not None:
            unknown = sorted(set(options) - allowed)
            if unknown:
                raise ValueError(f"options.{unknown[0]}: {self.kind} '{name}' has no such option; it takes "
                                 f"{sorted(allowed) or 'none'}")
        if check is not None:
            check(node, root)

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


NOT_OPTIONS = frozenset({"self", "name", "cfg", "path", "placement", "loaded"})  # set elsewhere than ``options``


def option_names(callables) -> frozenset[str] | None:
    """The option names ``callables`` take together; None when there are none to go by or one takes ``**kwargs``
    it does not name (then nothing can be said)."""
    if not callables:
        return None
    names: set[str] = set()
    for fn in callables:
        params = inspect.signature(fn).parameters.values()
        if len(callables) == 1 and any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return frozenset(names - NOT_OPTIONS)


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
