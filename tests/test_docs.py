"""Documentation that cannot drift: the configuration reference is generated from the dataclasses."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_up_to_date():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"], cwd=ROOT)
    assert out.returncode == 0, "docs/configuration.md is stale: run python scripts/gen_config_docs.py"
