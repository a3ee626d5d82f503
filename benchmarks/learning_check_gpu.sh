#!/usr/bin/env bash
# The learning check's GPU part: SmolLM2 zero-shot on SICK test, then label-only QLoRA training on SICK train
# (its own chat template), then the trained adapter on SICK test through evaluate's default fast path.
#   bash benchmarks/learning_check_gpu.sh STORE_DIR BASE_DIR RESULTS EPOCHS
set -euo pipefail
dir=$1 base=$2 out=$3 epochs=$4
mkdir -p "$out"
nlistral() { python3 -c "from pipeline.cli import main; main()" "$@"; }
nlistral evaluate --base "$base" --no-thought --dataset sick --split test --max-new-tokens 16 \
  --json "$out/zero_shot.json" --db "$dir/store.db"
nlistral train --config label_only --set base_model="$base" --set data="$dir/train.jsonl" \
  --set output_dir="$dir/run" --set epochs="$epochs" --set cartography=false --db "$dir/store.db"
nlistral evaluate --adapter "$dir/run/adapter" --no-thought --dataset sick --split test --max-new-tokens 16 \
  --json "$out/trained.json" --db "$dir/store.db"
cp "$dir/run/train_log.jsonl" "$out/"
