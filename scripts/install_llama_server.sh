#!/usr/bin/env bash
# Opt-in: build llama-cpp-python (with its OpenAI-compatible server) into .venv for the `openai` judge's test.
# Compiles llama.cpp from source: about 20 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF" \
  .venv/bin/python -m pip install "llama-cpp-python[server]==0.3.36"
