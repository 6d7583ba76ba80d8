"""Arguments every config-driven command shares."""
from __future__ import annotations


def add_config_arguments(parser, example: str, config_help: str = "YAML config") -> None:
    """``--config FILE.yaml`` and repeatable ``--set key=value`` (``example`` shows one override)."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {example} (repeatable)")


def load_checked(cls, path: str | None, overrides: list[str]):
    """The config of type ``cls`` from ``path`` with ``overrides``, its plugins imported and every registered name
    in it checked (before any model loads)."""
    from ..config import load_config
    from ..training.names import check_names

    cfg = load_config(cls, path, overrides)
    check_names(cfg, _product_names(cfg))
    return cfg


def _product_names(cfg) -> dict:
    """Named fields a product adds to :data:`blendrl.training.names.NAMED_FIELDS` (the RM recipes)."""
    from ..config.rm_schema import RMRunConfig
    from ..training.rm.run import RM_NAMES

    return RM_NAMES if isinstance(cfg, RMRunConfig) else {}
