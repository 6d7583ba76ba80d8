#!/usr/bin/env bash
# Set up, then the default test suite (tiny models, a few minutes). BLENDRL_SLOW=1 adds the real-model tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
