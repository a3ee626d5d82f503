#!/usr/bin/env bash
# Issue 17's evaluation figures on the device machine, each phase one process, in the order given:
#   bash benchmarks/eval_gpu.sh install build new80 old80:500 new80:500 new24 new8:500 speed
# install  wheels from .bench/gpu (bitsandbytes, the CLI's small dependencies, pydantic) into /tmp/site, and
#          transformers 5.23 (+ huggingface_hub) into /tmp/site_new
# build    the random Mistral-7B-shape model and adapter (benchmarks/eval_budget.py build)
# newG[:N] benchmarks/eval_budget.py at a budget of G GiB with transformers 5.23 (N prompts, default 2,000)
# oldG[:N] the same with the machine's own transformers (5.17 on the device machine of 2026-12)
# speed    benchmarks/eval_speed.py (the fast path against plain generate, in the same run) with 5.23
# Results: one JSON line per measurement in $OUT/results.jsonl (phase-tagged), stderr in $OUT/stderr.log.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${OUT:-/tmp/out}
mkdir -p "$out"
export TOKENIZER=.bench/eval/mistral_v3_tokenizer PAIRS=.bench/eval/rte_dev.csv,.bench/eval/rte_train.csv
export WORK=/tmp/eval_bench
pip_to() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$@"; }
for phase in "$@"; do
  name=${phase%%:*} n=2000
  [ "$phase" != "$name" ] && n=${phase#*:}
  start=$(date +%s)
  case $name in
    install) pip_to /tmp/site .bench/gpu/bnbs/*.whl .bench/gpu/small/*.whl .bench/gpu/pyd/*.whl
             pip_to /tmp/site_new .bench/gpu/tf523/*.whl ;;
    build) PYTHONPATH=/tmp/site_new:/tmp/site:$here python3 benchmarks/eval_budget.py build ;;
    new*|old*)
      site=/tmp/site_new:/tmp/site
      [ "${name:0:3}" = old ] && site=/tmp/site
      PYTHONPATH=$site:$here BUDGET_GIB=${name:3} N_PROMPTS=$n python3 benchmarks/eval_budget.py \
        2>> "$out/stderr.log" | sed "s/^{/{\"phase\": \"$phase\", /" | tee -a "$out/results.jsonl" ;;
    speed) PYTHONPATH=/tmp/site_new:/tmp/site:$here OUT=$out DEADLINE_S=${DEADLINE_S:-400} \
             python3 benchmarks/eval_speed.py 2>> "$out/stderr.log" | tee -a "$out/results.jsonl" ;;
    *) echo "unknown phase $phase"; exit 2 ;;
  esac
  status=$?
  echo "== $phase: $(( $(date +%s) - start )) s, exit $status"
done
