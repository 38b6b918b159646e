#!/usr/bin/env bash
# The package as a user installs it: build the wheel, install it (not editable) into a fresh
# virtualenv, and run the whole tool chain from a folder outside the checkout, so that nothing
# can come from the source tree (schemas, rules presets, resources).
#
#   1. the wheel alone (no `train` extra): the data stages run; crlft-train says which extra to
#      install, in one line;
#   2. then the `train` extra: a 2-step crlft-train, crlft-chat, crlft-eval and the report.
#
# Usage: bash scripts/wheel_check.sh [WORK_DIR]   (default: a fresh temporary folder, removed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
WORK="${1:-$(mktemp -d "${TMPDIR:-/tmp}/wheel-check.XXXXXX")}"
[ $# -ge 1 ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
step() { printf '\n== %s\n' "$*"; }

step "build the wheel"
# From a copy of the source files (tracked, or new and not ignored): setuptools builds in the
# tree's build/ folder, where a module deleted since the last build would linger into the wheel.
mkdir -p "$WORK/src"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
  | tar -C "$ROOT" --null --files-from=- --ignore-failed-read -cf - | tar -xf - -C "$WORK/src"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$WORK/src" >"$WORK/build.log" \
  2>&1 || { cat "$WORK/build.log"; exit 1; }
WHEEL="$(ls "$WORK"/dist/sharegpt_tools-*.whl)"
echo "$WHEEL"
"$PYTHON" - "$WHEEL" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = ["sharegpt_tools/schemas/rules.schema.json", "sharegpt_tools/label/presets/paper.yaml",
          "sharegpt_tools/clean/refusal_phrases.txt", "sharegpt_tools/clean/models.yaml",
          "sharegpt_tools/synthetic/phrases.json",
          "crlft_contract/tokenized.schema.json", "crlft_contract/metrics.schema.json"]
missing = [n for n in needed if n not in names]
sys.exit(f"the wheel lacks {', '.join(missing)}" if missing else 0)
PY

step "install it into a fresh virtualenv (without the train extra)"
"$PYTHON" -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "$WHEEL" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; exit 1; }
export PATH="$WORK/venv/bin:$PATH"
mkdir -p "$WORK/user" && cd "$WORK/user"   # outside the checkout: only the wheel is importable
python -c "import sharegpt_tools, sys; p = sharegpt_tools.__file__; \
  sys.exit(f'imported from the checkout: {p}' if p.startswith('$ROOT/') else 0)"

step "crlft-train without the train extra: one line naming the extra"
set +e
crlft-train data --output runs/r >"$WORK/no-extra.out" 2>&1
rc=$?
set -e
cat "$WORK/no-extra.out"
[ "$rc" -eq 2 ] || { echo "expected exit 2, got $rc" >&2; exit 1; }
grep -q "sharegpt-tools\[train\]" "$WORK/no-extra.out" || { echo "no install hint" >&2; exit 1; }
if grep -q Traceback "$WORK/no-extra.out"; then echo "a traceback" >&2; exit 1; fi

step "the data stages"
sharegpt-tools rules list
sharegpt-tools sample --n 400 --seed 0 -o raw/sample.json
sharegpt-tools clean raw/sample.json -w data --workers 2
sharegpt-tools label --rules paper -w data
sharegpt-tools subsample --class gpt35 --ratio 0.8 -w data
sharegpt-tools toy-tokenizer -w data -o tokenizer
sharegpt-tools tokenize --tokenizer tokenizer -w data --max-length 1024

step "add the train extra; train 2 steps, chat, eval, report"
"${PIP[@]}" "$WHEEL[train]" >>"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; exit 1; }
crlft-train data --output runs/r --model-config tiny --max-steps 2 --batch-max-len 2048
crlft-chat runs/r --prompt "How do I reverse a list in Python?" --max-new-tokens 8
crlft-eval runs/r data
sharegpt-tools report -w data --run runs/r -o report.html
test -s report.html
echo "wheel check passed: $WHEEL installed into $WORK/venv ran the whole tool chain"
