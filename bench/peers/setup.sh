#!/usr/bin/env bash
# Creates the PyTorch peer's virtualenv from PyPI (CPU use only; a measuring stick for `apsig bench`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$here/.venv/bin/python" ] || ! "$here/.venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install --quiet --no-cache-dir torch numpy
fi
"$here/.venv/bin/python" -c "import torch; print('PyTorch', torch.__version__, 'ready')"
