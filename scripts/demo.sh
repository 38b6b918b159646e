#!/usr/bin/env bash
# The whole pipeline on the shipped synthetic sample:
#   sample (2,000 raw ShareGPT rows) → clean → label (the paper's rules) → tokenize → crlft-train
#   (a tiny random-init Llama, a few dozen steps on the CPU) → one generation with the chat template
#   → the HTML report of the data and the run → crlft-eval's class × condition loss table (did the
#   model learn its condition tags?)
# A small byte-level BPE tokenizer is trained locally, since no model can be downloaded here; use
# `--tokenizer PATH` with any local Hugging Face tokenizer folder for real work.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
sharegpt-tools sample --n 2000 --seed 0 -o data/raw/sample.json
sharegpt-tools clean data/raw/sample.json -w data
sharegpt-tools label --rules paper -w data
sharegpt-tools toy-tokenizer -w data -o data/tokenizer
sharegpt-tools tokenize --tokenizer data/tokenizer --position before-speaker -w data
sharegpt-tools render --sample 1 -w data
echo "tokenized dataset (datasets.load_from_disk): $ROOT/data/tokenized"
crlft-train data --output runs/demo --overwrite --model-config tiny --max-steps 30 --batch-max-len 4096
crlft-chat runs/demo --prompt "How do I reverse a list in Python?" --max-new-tokens 32
echo "trained model (transformers.AutoModelForCausalLM.from_pretrained): $ROOT/runs/demo/final"
sharegpt-tools report -w data --run runs/demo -o data/report.html
crlft-eval runs/demo data
