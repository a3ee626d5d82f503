#!/usr/bin/env bash
# The flipped-label experiment's GPU part (BENCHMARKS.md, "Finding flipped gold labels"): for each seed, train a
# label-only QLoRA adapter on the noisy store with cartography on, then evaluate it on the same examples
# (its errors are the adapter_wrong signal); finally score every signal against the labels flipped.
#   bash benchmarks/flipped_labels_gpu.sh FLIP_DIR BASE_MODEL_DIR OUT_DIR SEED [SEED ...]
# FLIP_DIR comes from `python benchmarks/flipped_labels.py prepare ...`; with no seed, only the scoring runs.
set -euo pipefail
flip=$1 base=$2 out=$3
shift 3
mkdir -p "$out"
nlistral() { python3 -c "from pipeline.cli import main; main()" "$@"; }
for seed in "$@"; do
  nlistral train --config label_only --set base_model="$base" --set data="$flip/train.jsonl" \
    --set output_dir="$flip/run-$seed" --set seed="$seed" --set epochs=3 --set eval_fraction=0 \
    --set early_stopping_patience=0 --db "$flip/store.db"
  nlistral evaluate --adapter "$flip/run-$seed/adapter" --no-merge --no-thought --dataset noisy --split train \
    --max-new-tokens 16 --json "$out/evaluate-$seed.json" --db "$flip/store.db"
done
python3 benchmarks/flipped_labels.py score "$flip" --json "$out/flipped_scores.json"
