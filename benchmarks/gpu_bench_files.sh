#!/usr/bin/env bash
# Build .bench/ (ignored by git): what benchmarks/eval_gpu.sh, train_gpu.sh and attribution_speed.py carry to the
# device machine, which has Python 3.12, torch 2.11 and transformers 5.17 but no index and no model hub.
#   bash benchmarks/gpu_bench_files.sh        (from the project root, with network to the package index)
# .bench/gpu/bnbs    bitsandbytes 0.50.2, its CUDA 12.8/13.0/13.2 libraries only (14 MB instead of 42 MB)
# .bench/gpu/small   trl, datasets and the CLI's small dependencies
# .bench/gpu/pyd     pydantic
# .bench/gpu/tf523   transformers 5.23 with the huggingface_hub, tokenizers, safetensors and regex it needs
# .bench/gpu/liger   liger-kernel 0.8.5
# .bench/gpu/captum  captum 0.9.0 and matplotlib (`import captum.attr` imports it)
# .bench/eval        Mistral's v0.3 tokenizer (from the mistral_common package) and the RTE CSVs of ../shared/data
# .bench/train       the plain QLoRA baseline of ../shared/device
# Each call carries at most 64 MiB: eval takes bnbs, small, pyd, tf523, eval (about 45 MB); training takes bnbs,
# small, pyd, tf523, liger, train.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
shared=../shared
dl() {
  local to=$1; shift
  mkdir -p ".bench/gpu/$to"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d ".bench/gpu/$to" "$@"
}
dl bnbs bitsandbytes==0.50.2
dl small trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 sqlite-utils==4.2.1 sqlite-fts4==1.0.3 \
  click-default-group==1.2.4 typer shellingham rich markdown-it-py mdurl pygments click pyyaml xxhash tabulate \
  python-dateutil pluggy gguf
dl pyd pydantic pydantic-core annotated-types typing-inspection
dl tf523 transformers==5.23.0 'huggingface_hub==1.33.*' 'tokenizers>=0.23.1,<0.24' 'safetensors>=0.8' 'regex>=2025.10.22'
dl liger liger-kernel==0.8.5
dl captum captum==0.9.0 matplotlib contourpy cycler fonttools kiwisolver pyparsing pillow

# bitsandbytes: keep the CUDA 12.8+ libraries (torch 2.11 there is a CUDA 13 build) and the CPU one
wheel=$(ls .bench/gpu/bnbs/bitsandbytes-*.whl)
work=$(mktemp -d)
(cd "$work" && python3 -m zipfile -e "$OLDPWD/$wheel" . \
  && rm -f bitsandbytes/libbitsandbytes_cuda1{18,21,24,26}.so bitsandbytes/libbitsandbytes_rocm*.so \
           bitsandbytes/libbitsandbytes_xpu*.so \
  && rm "$OLDPWD/$wheel" && python3 -m zipfile -c "$OLDPWD/$wheel" bitsandbytes bitsandbytes-*.dist-info)
rm -rf "$work"

mkdir -p .bench/eval .bench/train
cp "$shared/data/external/rte_dev.csv" "$shared/data/external/rte_train.csv" .bench/eval/
cp "$shared/device/plain_qlora_baseline.py" .bench/train/
if [ ! -f .bench/eval/mistral_v3_tokenizer/tokenizer.json ]; then
  venv=$(mktemp -d)
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q mistral_common sentencepiece protobuf 'transformers==5.23.0'
  spm=$("$venv/bin/python" -c "import mistral_common, pathlib; print(next(pathlib.Path(mistral_common.__file__).parent.glob('data/mistral_instruct_tokenizer_240323.model.v3')))")
  "$venv/bin/python" benchmarks/eval_speed.py make-tokenizer "$spm" .bench/eval/mistral_v3_tokenizer
  rm -rf "$venv"
fi
du -sh .bench/gpu/* .bench/eval .bench/train
