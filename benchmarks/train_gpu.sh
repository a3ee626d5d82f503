#!/usr/bin/env bash
# Issue 17's training figures on the device machine in one command: the plain QLoRA baseline
# (../shared/device/plain_qlora_baseline.py, copied to .bench/train/), then benchmarks/train_speed.py's variants
# of the shipped presets in the same command, so every ratio has its baseline beside it.
#   bash benchmarks/train_gpu.sh                 # the presets as shipped and the settings they are chosen from
#   VARIANTS="name:key=value,...;..." bash benchmarks/train_gpu.sh
# The default variants, in an order that keeps each measurement clean (compile and Liger stay applied to the
# model for the rest of the process): ablation0 checkpointing every layer, then as shipped (auto: as few layers as
# the card holds), ablation0 on an 8 GiB budget, ablation1 as shipped (auto within its 16 GiB); the same with
# compile; then with compile and Liger.
# .bench/gpu holds the wheels (bitsandbytes, trl and the CLI's small dependencies, pydantic, liger-kernel,
# transformers 5.23 in tf523). Results: $OUT/results.jsonl, $OUT/plain_qlora_baseline.json,
# $OUT/train_speed_h100.json, stderr in $OUT/stderr.log.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${OUT:-/tmp/out}
mkdir -p "$out"
pip_to() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$@"; }
pip_to /tmp/site .bench/gpu/bnbs/*.whl .bench/gpu/small/*.whl .bench/gpu/pyd/*.whl .bench/gpu/liger/*.whl
pip_to /tmp/site_new .bench/gpu/tf523/*.whl
export PYTHONPATH=/tmp/site_new:/tmp/site:$here PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
date -u; nvidia-smi -L
python3 -c "import torch, transformers, trl, triton; print(torch.__version__, transformers.__version__, trl.__version__, triton.__version__)"
start=$(date +%s)
CONFIGS="16,512,1,32" OUT=$out python3 .bench/train/plain_qlora_baseline.py 2>> "$out/stderr.log" | tee -a "$out/results.jsonl"
echo "== baseline: $(( $(date +%s) - start )) s"
start=$(date +%s)
N=kernels=none
default="a0-full:config=ablation0,$N,compile=off,gradient_checkpointing=full;a0:config=ablation0,$N,compile=off;\
a0-8gib:config=ablation0,$N,compile=off,budget_gib=8;a1:config=ablation1,$N,compile=off;\
a0-c:config=ablation0,$N,compile=on;a1-c:config=ablation1,$N,compile=on;\
a0-c-liger:config=ablation0,kernels=liger,compile=on;a1-c-liger:config=ablation1,kernels=liger,compile=on"
VARIANTS=${VARIANTS:-$default} BASELINE_JSON=$out/plain_qlora_baseline.json OUT=$out TAG=${TAG:-h100} WARM=${WARM:-2} STEPS=${STEPS:-6} BATCH=32 \
  python3 benchmarks/train_speed.py 2>> "$out/stderr.log" | tee -a "$out/results.jsonl"
echo "== variants: $(( $(date +%s) - start )) s"
