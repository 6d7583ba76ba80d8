#!/usr/bin/env bash
# Opt-in mutation testing of blendrl/functional and blendrl/algorithms (mutmut; settings in pyproject.toml
# [tool.mutmut]): about 1,100 mutants, each run against the model-free unit tests that cover it. Prints mutmut's
# summary; `mutmut results` lists the survivors, `mutmut show NAME` shows one. Results: docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m pip install -q --disable-pip-version-check "mutmut==3.8.1"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/mutmut run "$@" || true
.venv/bin/mutmut results
