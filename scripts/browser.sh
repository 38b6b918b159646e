#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the report's browser test (tests/test_report.py).
# Installed from the distribution's packages, never downloaded by the tool itself. Sourced by
# test.sh; a no-op when both are already there.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  return 0 2>/dev/null || exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing Debian chromium + chromium-driver (for the report's browser test)"
BROWSER_LOG="${TMPDIR:-/tmp}/browser-install.log"
{ $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
    --no-install-recommends chromium chromium-driver; } >"$BROWSER_LOG" 2>&1 \
  || { tail -n 30 "$BROWSER_LOG"; echo "could not install chromium (log: $BROWSER_LOG)" >&2; exit 1; }
