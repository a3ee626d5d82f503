"""NF4 4-bit loading: the one set-up QLoRA trains with and evaluation reloads the base in.

Training records how it loaded the base (BaseLoad, a small JSON beside the adapter); evaluation reads it
and decides the same load (eval_load, a pure function), so a `quantization: none` adapter is never
evaluated on an NF4 base and needs no bitsandbytes.

NF4 with double quantization and bfloat16 compute (the QLoRA recipe). bitsandbytes is optional (the
`cuda` extra); nothing here imports it, torch or transformers until a function is called.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def bitsandbytes_installed() -> bool:
    """Whether bitsandbytes can be imported here (found without importing it)."""
    return importlib.util.find_spec("bitsandbytes") is not None


def nf4_load_kwargs() -> dict[str, Any]:
    """`from_pretrained` keyword arguments that load a model's linear layers in NF4 and compute in bf16.

    Raises ImportError when bitsandbytes (or transformers' support for it) is missing.
    """
    import bitsandbytes  # noqa: F401  (transformers loads the 4-bit layers with it)
    import torch
    from transformers import BitsAndBytesConfig

    config_class: Any = BitsAndBytesConfig  # untyped in transformers
    config = config_class(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                          bnb_4bit_compute_dtype=torch.bfloat16)
    return {"quantization_config": config, "dtype": torch.bfloat16}


# How training loaded the base, saved beside the adapter so that evaluation loads it the same way.
BASE_LOAD_FILE = "nlistral_base_load.json"


@dataclass(frozen=True)
class BaseLoad:
    """How a base model is loaded: quantization ("nf4" or "none") and the dtype it computes in."""

    quantization: str
    dtype: str  # "bfloat16" or "float32"

    def describe(self) -> str:
        """e.g. "nf4 base computing in bfloat16"."""
        return f"{self.quantization} base computing in {self.dtype}"


def write_base_load(adapter_dir: Path, load: BaseLoad) -> Path:
    """Record how the base was loaded beside an adapter's adapter_config.json."""
    path = adapter_dir / BASE_LOAD_FILE
    path.write_text(json.dumps(asdict(load), indent=2) + "\n", encoding="utf-8")
    return path


def read_base_load(adapter_dir: Path) -> BaseLoad | None:
    """The recorded load settings of an adapter, or None for an adapter trained before they were recorded."""
    path = adapter_dir / BASE_LOAD_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        load = BaseLoad(quantization=data["quantization"], dtype=data["dtype"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read how training loaded the base: {exc}") from exc
    if load.quantization not in ("nf4", "none") or load.dtype not in ("bfloat16", "float32"):
        raise ValueError(f"{path}: unknown load settings {asdict(load)}")
    return load


@dataclass(frozen=True)
class EvalLoad:
    """What evaluation loads: 4-bit or not, in which dtype, and a warning to show (if any)."""

    four_bit: bool
    dtype: str
    warning: str | None = None


def eval_load(record: BaseLoad | None, *, device: str, four_bit: bool | None = None,
              has_adapter: bool = True) -> EvalLoad:
    """Decide how evaluate loads the base: as the adapter's record says on CUDA; float32 on CPU.

    four_bit is an explicit request (None: decide). Raises ValueError when it contradicts the record.
    Without a record: an adapter gets NF4 on CUDA (what training does by default), with a warning; a base
    alone is dense (bfloat16 on CUDA), as its makers ship it.
    """
    cuda = device == "cuda"
    if record is None:  # a base alone loads as its makers ship it (bf16 on CUDA): no bitsandbytes needed
        chosen = (cuda and has_adapter) if four_bit is None else four_bit
        warning = None
        if has_adapter and cuda and four_bit is None:
            warning = (f"the adapter has no {BASE_LOAD_FILE} (trained before load settings were recorded): "
                       "assuming an NF4 base as QLoRA trains by default; if it was trained with quantization: "
                       "none, evaluate it on a bf16 base instead")
        return EvalLoad(chosen, "bfloat16" if cuda else "float32", warning)
    if four_bit is not None and four_bit != (record.quantization == "nf4") and cuda:
        raise ValueError(f"the adapter was trained on a {record.describe()}, but a "
                         f"{'4-bit' if four_bit else 'dense'} base was asked for; leave the choice to the "
                         f"adapter's {BASE_LOAD_FILE}")
    if not cuda:  # a CPU computes in float32 whatever the training machine did (unless 4-bit is asked for)
        return EvalLoad(bool(four_bit), "float32")
    return EvalLoad(record.quantization == "nf4", record.dtype)
