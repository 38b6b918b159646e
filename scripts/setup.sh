#!/usr/bin/env bash
# Create ./.venv (Python 3.11) and install the project with its test tools. Idempotent: a second
# run only checks that everything is installed. Sourced by demo.sh and test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENV="${VENV:-$ROOT/.venv}"
LOG="$VENV/setup.log"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >"$LOG" 2>&1 || { cat "$LOG"; exit 1; }
fi
# The build backend's warnings are noise on success; show the whole log only when it fails.
"$VENV/bin/python" -m pip install --disable-pip-version-check -e "$ROOT[train,dev]" >"$LOG" 2>&1 \
  || { cat "$LOG"; echo "setup failed (log: $LOG)" >&2; exit 1; }
export PATH="$VENV/bin:$PATH"
