"""Load what is evaluated: a base model, optionally with a LoRA adapter, as training computed it.

On CUDA the base is loaded as the adapter's training recorded (NF4 for QLoRA, else bf16; an adapter
without the record: NF4, with a warning; pipeline.quantization) and a 4-bit base dequantised
once into a dense bf16 model (merge.py), with the adapter applied on top, unmerged, as in training:
the fast path. Folding the adapter into the bf16 weights (fold=True) measured no faster and rounds
small adapter deltas away (benchmarks/results/eval_speed.md). `merge=False` keeps the 4-bit base
(slow, for checking). On CPU: the float32 base plus the unmerged adapter.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exports.layout import Layout, layout_for
from pipeline import gpu_memory
from pipeline.errors import PipelineError
from pipeline.evaluate import memory
from pipeline.quantization import EvalLoad, eval_load, nf4_load_kwargs, read_base_load


class LoadError(PipelineError, ValueError):
    """The adapter or base model cannot be found or loaded (the message says how to fix it)."""


@dataclass
class LoadedModel:
    """A model ready for generation, its tokenizer, and how it was built."""

    model: Any
    tokenizer: Any
    name: str  # what predictions record as their model: the adapter dir, else the base
    base: str
    adapter: str | None
    mode: str  # e.g. "nf4 base + LoRA, base dequantised to bfloat16, LoRA unmerged"
    warning: str | None = None  # e.g. the adapter does not record how training loaded its base


def adapter_base(adapter: Path) -> str | None:
    """The base model an adapter dir names in its adapter_config.json, if any."""
    config = adapter / "adapter_config.json"
    if not config.exists():
        raise LoadError(f"{adapter} is not a LoRA adapter directory (no adapter_config.json); "
                        "pass the folder training saved the adapter to")
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path") or None
    except (OSError, json.JSONDecodeError) as exc:
        raise LoadError(f"{config}: cannot read it: {exc}") from exc


def resolve_base(adapter: Path | None, base: str | None) -> str:
    """The base model path: --base, else the one the adapter names; an error says which to pass."""
    if base:
        return base
    if adapter is None:
        raise LoadError("nothing to evaluate: pass --adapter DIR (a trained adapter) or --base PATH (a model)")
    named = adapter_base(adapter)
    if not named:
        raise LoadError(f"{adapter}/adapter_config.json names no base model; pass --base PATH")
    if not Path(named).exists():
        raise LoadError(f"the adapter's base model {named!r} is not a local folder (no hub access here); "
                        "pass --base PATH to a local copy")
    return named


def default_device() -> str:
    """cuda when a GPU is visible, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(adapter: Path | None, base: str | None, *, device: str | None = None, merge: bool | None = None,
               four_bit: bool | None = None, fold: bool = False, max_memory_gib: float | None = None) -> LoadedModel:
    """Load base (+ adapter) for evaluation; four_bit follows the adapter's record, merge defaults to CUDA only.

    merge makes the base dense (dequantised); fold also adds the LoRA deltas into its weights, otherwise
    the adapter is applied again, unmerged, on top of the dense base. On CUDA, with merge left to the
    default, a 4-bit base stays 4-bit when its dense copy does not fit the memory available (the card's
    free memory, or what --max-memory leaves), and says so; a dense base that cannot fit is refused.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if adapter is not None and not adapter.is_dir():
        raise LoadError(f"adapter folder {adapter} does not exist")
    base_path = resolve_base(adapter, base)
    device = device or default_device()
    decided = decide_load(adapter, device, four_bit)
    four_bit = decided.four_bit
    warnings = [decided.warning] if decided.warning else []
    auto_merge = merge is None
    merge = (device == "cuda") if merge is None else merge
    if device == "cuda" and not four_bit:
        check_dense_fits(base_path, decided.dtype, max_memory_gib)
    kwargs: dict[str, Any] = {"device_map": {"": device}}
    if four_bit:
        try:
            kwargs.update(nf4_load_kwargs())
        except ImportError as exc:
            raise LoadError("4-bit loading needs bitsandbytes: pip install -e '.[cuda]'") from exc
    else:
        kwargs["dtype"] = getattr(torch, decided.dtype)
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot load the base model from {base_path}: {exc}") from exc
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(adapter, base_path))
    parts = ["nf4 base" if four_bit else f"{str(kwargs['dtype']).removeprefix('torch.')} base"]
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        parts.append("LoRA")
    if merge and auto_merge and four_bit and (note := unpacked_does_not_fit(base_path, max_memory_gib)):
        merge = False
        warnings.append(note)
    if merge and (four_bit or adapter is not None):
        from pipeline.evaluate.merge import merge_to_dense

        dense = merge_to_dense(model, fold_lora=fold)
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
        dtype = str(dense.dtype).removeprefix("torch.")
        if adapter is not None and not fold:
            from peft import PeftModel

            model = PeftModel.from_pretrained(dense, adapter)
            mode = " + ".join(parts) + f", base dequantised to {dtype}, LoRA unmerged"
        else:
            model = dense
            mode = " + ".join(parts) + f" merged into {dtype}"
    else:
        mode = " + ".join(parts) + (" (unmerged)" if adapter is not None else "")
    model.eval()
    name = str(adapter.resolve()) if adapter is not None else str(base_path)
    return LoadedModel(model, tokenizer, name, str(base_path), str(adapter.resolve()) if adapter else None, mode,
                       warning="; ".join(warnings) or None)


def check_dense_fits(base_path: str, dtype: str, max_memory_gib: float | None) -> None:
    """LoadError, before loading, when the dense base is larger than the memory available on the card."""
    import torch

    card = gpu_memory.read_card(torch.device("cuda"), max_memory_gib)
    need = _dense_bytes(base_path, getattr(torch, dtype).itemsize)
    if need is not None and need > card.available(gpu_memory.allocated(torch.device("cuda"))):
        raise LoadError(f"the base {base_path} needs {need / gpu_memory.GIB:.1f} GiB in {dtype} (as the adapter was "
                        f"trained, or as shipped), more than {card.describe()}. Free the card, raise --max-memory, "
                        "or use a larger card; an adapter trained in 4-bit (the QLoRA default) evaluates in 4-bit")


def unpacked_does_not_fit(base_path: str, max_memory_gib: float | None) -> str | None:
    """Why a loaded 4-bit base stays 4-bit (its bf16 copy would not fit beside room to decode), or None."""
    import torch

    card = gpu_memory.read_card(torch.device("cuda"), max_memory_gib)
    dense = _dense_bytes(base_path, 2)
    if dense is None or memory.unpacked_fits(dense, card.available(gpu_memory.allocated(torch.device("cuda")))):
        return None
    return (f"the unpacked bf16 base ({dense / gpu_memory.GIB:.1f} GiB) would not leave room to decode in "
            f"{card.describe()}: computing with the 4-bit base as training did (slower; the same answers up to "
            "rounding)")


def _dense_bytes(base_path: str, itemsize: int) -> int | None:
    """The dense size of the base, or None when its config cannot be sized here (the load goes ahead unchecked)."""
    try:
        return memory.dense_bytes(base_path, itemsize)
    except Exception:  # noqa: BLE001 - an estimate for planning: a config transformers cannot build is no error here
        return None


def decide_load(adapter: Path | None, device: str, four_bit: bool | None) -> EvalLoad:
    """How to load the base for this adapter on device: as its training recorded (pipeline.quantization)."""
    try:
        record = read_base_load(adapter) if adapter is not None else None
        return eval_load(record, device=device, four_bit=four_bit, has_adapter=adapter is not None)
    except ValueError as exc:
        raise LoadError(str(exc)) from exc


def tokenizer_folder(adapter: Path | None, base_path: str) -> Path:
    """Where the model's tokenizer is read from: the adapter's folder when training saved one there, else the base."""
    if adapter is not None and ((adapter / "tokenizer.json").exists() or (adapter / "tokenizer_config.json").exists()):
        return adapter
    return Path(base_path)


def read_layout(adapter: Path | None, base: str | None) -> Layout | None:
    """The prompt layout of this adapter's (or base's) model from its tokenizer alone, without loading weights;
    None when the folders cannot be read yet (loading the model then says why)."""
    from transformers import AutoTokenizer

    try:
        base_path = resolve_base(adapter, base)
        folder = tokenizer_folder(adapter, base_path)
        if not folder.is_dir():  # a hub name or a typo: never a download (loading says what is wrong)
            return None
        return layout_for(AutoTokenizer.from_pretrained(folder, local_files_only=True), base_path)
    except (OSError, ValueError):  # LoadError and LayoutError are ValueErrors
        return None
