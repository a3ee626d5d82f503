#!/usr/bin/env bash
# The learning check's GPU part, all through our own commands: SmolLM2 label-only training on SICK train with
# its own chat template, as QLoRA (the default on CUDA) and in bf16 (quantization: none), both at once on the
# one GPU, then each adapter on SICK test through
# evaluate's default fast path and the teacher-forced check of the same adapter (learning_check.py forced),
# then the base zero-shot on SICK test (as shipped: bf16).
#   bash benchmarks/learning_check_gpu.sh STORE_DIR BASE_DIR RESULTS EPOCHS
set -euo pipefail
dir=$1 base=$2 out=$3 epochs=$4
mkdir -p "$out"
nlistral() { python3 -c "from pipeline.cli import main; main()" "$@"; }
ev() { nlistral evaluate --no-thought --dataset sick --split test --max-new-tokens 16 --db "$dir/store.db" ${EVAL_ARGS:-} "$@"; }
train() {
  local name=$1; shift
  nlistral train --config label_only --set base_model="$base" --set data="$dir/train.jsonl" \
    --set output_dir="$dir/$name" --set epochs="$epochs" --set cartography=false --db "$dir/store.db" "$@" \
    > "$out/train_$name.log" 2>&1
}
train qlora & qlora=$!
train bf16 --set quantization=none --set optimizer=adamw_torch & bf16=$!
wait "$qlora"; wait "$bf16"
for name in qlora bf16; do
  cp "$dir/$name/train_log.jsonl" "$out/train_log_$name.jsonl"
  ev --adapter "$dir/$name/adapter" --json "$out/trained_$name.json" > "$out/eval_$name.log" 2>&1
  python3 benchmarks/learning_check.py forced "$dir/store.db" "$out/trained_$name.json" "$out/forced_$name.json"
done
ev --base "$base" --json "$out/zero_shot_bf16.json" > "$out/zero_shot_bf16.log" 2>&1
