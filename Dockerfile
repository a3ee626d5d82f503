# NLIstral workbench with CUDA training: `docker run --gpus all ... nlistral train --config ...`.
# UNTESTED: Docker cannot run on the machines this project is developed on. The same steps
# (CUDA torch, then `pip install -e '.[train,cuda]'`) are what the GPU measurements used.
#
#   docker build -t nlistral .
#   docker run --gpus all -v $PWD/work:/work -w /work nlistral \
#       train --config ablation0 --set data=/work/sft.jsonl --set base_model=/work/Mistral-7B-v0.3 --db /work/nlistral.db
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential git \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv $VIRTUAL_ENV

# A CUDA build of torch first (the project's extras do not pick one), then the project.
RUN pip install torch --index-url https://download.pytorch.org/whl/cu128
WORKDIR /app
COPY pyproject.toml README.md ./
COPY db ./db
COPY exports ./exports
COPY pipeline ./pipeline
COPY nlistral_tui ./nlistral_tui
COPY configs ./configs
RUN pip install -e '.[train,cuda]'

# Weights are not baked in: mount a local copy of the base model (or let it download from the hub).
ENTRYPOINT ["nlistral"]
CMD ["train", "--help"]
