# Sourced by the run scripts: make (once) and enter the project's virtual environment.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${TINYGRAD_ATTN_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.installed"
# Reinstall only when the package metadata changed.
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
PY="$venv/bin/python"
