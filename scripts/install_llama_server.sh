#!/usr/bin/env bash
# Opt-in: build llama-cpp-python (with its OpenAI-compatible server) into .venv for the `openai` judge's test.
# Compiles llama.cpp from source: about 6 minutes on 2 CPU cores (2026-12-01).
# Built for AVX2/FMA/F16C, not -march=native: on a machine with AMX, a native build runs llama.cpp's AMX kernels,
# and its first matmul died with a general protection fault on `ldtilecfg` (2026-12-01, this workplace's VM).
# --no-cache-dir: a wheel built earlier with other flags must not be reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF" \
  .venv/bin/python -m pip install --no-cache-dir "llama-cpp-python[server]==0.3.36"
