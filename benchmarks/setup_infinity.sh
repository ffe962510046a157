#!/usr/bin/env bash
# Create benchmarks/.venv-infinity: the Infinity server (infinity-emb 0.0.78) on CPU torch 2.13.0, for
# benchmarks/serve_load.py. Usage: bash benchmarks/setup_infinity.sh [python]   (default python3.11)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-infinity"
python="${1:-python3.11}"
"$python" -m venv "$venv"
# torch first, spelled exactly: it resolves to the local CPU wheel; other spellings may download CUDA builds.
"$venv/bin/pip" install torch==2.13.0
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==2.13.0" > "$constraints"
"$venv/bin/pip" install -c "$constraints" -r "$here/requirements-infinity.txt"
"$venv/bin/python" -c "import torch, infinity_emb; print('infinity-emb', infinity_emb.__version__, 'torch', torch.__version__)"
echo "ready: $venv/bin/infinity_emb"
