#!/usr/bin/env bash
# The learning check's second, small part: CoT targets from the original project's 100 real thoughts (the
# seed sample: 67 thoughts that match gold, 33 reflected ones), SmolLM2 trained on them with its own chat
# template, and evaluated with thoughts on the first LIMIT pairs of SICK test, after training and zero-shot.
#   bash benchmarks/cot_check.sh WORK_DIR BASE_DIR RESULTS EPOCHS LIMIT [--set KEY=VALUE ...]
# Extra --set arguments go to `nlistral train` (e.g. gradient_checkpointing=none on a CPU).
set -euo pipefail
dir=$1 base=$2 out=$3 epochs=$4 limit=$5; shift 5
here=$(cd "$(dirname "$0")/.." && pwd)
data=${SHARED_DATA:-$here/../shared/data}
mkdir -p "$dir" "$out"
nlistral() { python3 -c "from pipeline.cli import main; main()" "$@"; }
db=(--db "$dir/store.db")
if [ ! -s "$dir/cot.jsonl" ]; then
  nlistral import "$data/seed_sample/sample.csv" "${db[@]}"
  nlistral import "$data/seed_sample/sample_thoughts.json" --model open-mistral-7b "${db[@]}"
  nlistral import "$data/seed_sample/sample_reflections.json" --model open-mistral-nemo "${db[@]}"
  nlistral import "$data/external/sick_test.csv" --dataset sick --split test "${db[@]}"
  nlistral export sft --ablation reflected --dataset sample --out "$dir/cot.jsonl" "${db[@]}"
fi
ev() { nlistral evaluate --dataset sick --split test --limit "$limit" --max-new-tokens 320 "${db[@]}" "$@"; }
nlistral train --config ablation0 --set base_model="$base" --set data="$dir/cot.jsonl" --set output_dir="$dir/cot" \
  --set epochs="$epochs" --set warmup_steps=2 --set eval_fraction=0 --set early_stopping_patience=0 \
  --set cartography=false "$@" "${db[@]}" > "$out/cot_train.log" 2>&1
cp "$dir/cot/train_log.jsonl" "$out/cot_train_log.jsonl"
ev --adapter "$dir/cot/adapter" --json "$out/cot_trained.json" > "$out/cot_trained.log" 2>&1
ev --base "$base" --json "$out/cot_zero_shot.json" > "$out/cot_zero_shot.log" 2>&1
