#!/usr/bin/env bash
# Create one virtual environment per peer under bench/llc/.venvs/ (idempotent): CPU torch first, so that pip does
# not pull a CUDA build for the peer, then the peer at the version the anchor note describes.
#   canonical-interp 0.2.7 declares Python >= 3.12 only for itertools.batched: installed with --ignore-requires-python
#   and run through a shim (peer_worker.py) that provides itertools.batched on 3.11.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venvs="$here/.venvs"
python="${PYTHON:-python3}"
torch_pin="${TORCH_PIN:-torch==2.13.0}"
mkdir -p "$venvs"

make_venv() {  # name, pip args...
  local name="$1"; shift
  local venv="$venvs/$name"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch" 2>/dev/null && [ -f "$venv/.done" ]; then
    echo "$name: ready"; return
  fi
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$torch_pin" numpy
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  touch "$venv/.done"
  echo "$name: installed"
}

make_venv canonical --ignore-requires-python "canonical-interp==0.2.7"
make_venv devinterp1 "devinterp==1.3.2"
make_venv devinterp2 "devinterp==2.0.1"
