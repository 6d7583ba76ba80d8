import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("BLENDRL_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with BLENDRL_SLOW=1 bash scripts/run_tests.sh")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from tests.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def rm_tiny_dir(tmp_path_factory):
    """A tiny model whose tokenizer also knows the synthetic preference task's words (reward-model tests)."""
    from tests.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny_rm") / "model", words="rm")
