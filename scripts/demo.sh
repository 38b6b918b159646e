#!/usr/bin/env bash
# The whole pipeline, as far as it exists, on the shipped synthetic sample:
#   sample (2,000 raw ShareGPT rows) → clean → data/clean/
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
sharegpt-tools sample --n 2000 --seed 0 -o data/raw/sample.json
sharegpt-tools clean data/raw/sample.json -w data
echo "clean stage: $ROOT/data/clean (conversations.parquet, rejects.parquet, manifest.json)"
