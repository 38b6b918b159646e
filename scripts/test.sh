#!/usr/bin/env bash
# Set up ./.venv (and Debian's chromium for the browser test), run the lint and the full test suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$(dirname "${BASH_SOURCE[0]}")/browser.sh"
cd "$ROOT"
ruff check .
ruff format --check .
python -m pytest -q "$@"
