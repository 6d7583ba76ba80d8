"""Arguments every config-driven command shares."""
from __future__ import annotations


def add_config_arguments(parser, example: str, config_help: str = "YAML config") -> None:
    """``--config FILE.yaml`` and repeatable ``--set key=value`` (``example`` shows one override)."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {example} (repeatable)")
