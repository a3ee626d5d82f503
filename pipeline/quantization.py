"""NF4 4-bit loading: the one set-up QLoRA trains with and evaluation reloads the base in.

NF4 with double quantization and bfloat16 compute (the QLoRA recipe). bitsandbytes is optional (the
`cuda` extra); nothing here imports it, torch or transformers until a function is called.
"""
from __future__ import annotations

import importlib.util
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
