#!/usr/bin/env bash
# Create the peers' venvs under bench/interventions/.venvs/ (idempotent). CPU torch first (the local wheel), then
# transformers, then the peer, so pip never pulls a CUDA build; guardchain-core and guardchain-interventions are
# installed editable into each venv so that one process can interleave plain / ours / peer calls.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
for peer in "$@"; do
  case "$peer" in
    pyvene) spec="pyvene==0.1.8" ;;
    nnsight) spec="nnsight==0.8.1" ;;
    *) echo "unknown peer $peer" >&2; exit 2 ;;
  esac
  venv="$here/.venvs/$peer"
  if [ -f "$venv/.ready" ]; then continue; fi
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check transformers==5.23.0 safetensors
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo/core" \
    && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -e "$repo/adapters" -e "$repo/plugins/interventions"
  "$venv/bin/python" -c "import torch, transformers; print('$peer', torch.__version__, transformers.__version__)"
  touch "$venv/.ready"
done
