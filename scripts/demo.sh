#!/usr/bin/env bash
# The whole pipeline, as far as it exists, on the shipped synthetic sample:
#   sample (2,000 raw ShareGPT rows) → clean → label (the paper's rules) → tokenize
# A small byte-level BPE tokenizer is trained locally, since no model can be downloaded here; use
# `--tokenizer PATH` with any local Hugging Face tokenizer folder for real work.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
sharegpt-tools sample --n 2000 --seed 0 -o data/raw/sample.json
sharegpt-tools clean data/raw/sample.json -w data
sharegpt-tools label --rules examples/sources.yaml -w data
sharegpt-tools toy-tokenizer -w data -o data/tokenizer
sharegpt-tools tokenize --tokenizer data/tokenizer --position before-speaker -w data
sharegpt-tools render --sample 1 -w data
echo "tokenized dataset (datasets.load_from_disk): $ROOT/data/tokenized"
