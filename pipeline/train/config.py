"""The training config: one dataclass of flat, commented defaults; YAML holds changes, --set overrides.

Order of precedence: the defaults below < the YAML file < each `--set key=value` (left to right).
Unknown keys, values of the wrong type and inconsistent combinations are errors that name the key
and where it came from. The resolved config is written beside the adapter as `config.yaml`.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UsageError

METHODS = ("sft", "dpo", "label-only")
DPO_LOSSES = ("dpo", "cal-dpo", "dr-dpo")
QUANTIZATION = ("auto", "nf4", "none")
ATTENTION = ("auto", "varlen", "sdpa", "eager")
CHECKPOINTING = ("auto", "full", "none")  # or a number of decoder layers
SCHEDULERS = ("cosine", "linear", "constant_with_warmup")
OPTIMIZERS = ("auto", "paged_adamw_8bit", "adamw_torch")
COMPILE = ("auto", "on", "off")
KERNELS = ("auto", "liger", "none")
TINY_MODEL = "tiny-random"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(UsageError):
    """A training config is invalid; the message names the key, where it was set and the fix."""


@dataclass
class TrainConfig:
    """Everything a training run needs. Comments give the meaning and the allowed values."""

    # --- what to train on --------------------------------------------------------------------
    method: str = "sft"  # sft (CoT target) | label-only (the label alone: the baseline) | dpo
    data: str = ""  # an export JSONL file, or an export id from the database: "export:12" (or 12)
    eval_data: str = ""  # a second export used for evaluation; empty: hold out eval_fraction of data
    eval_fraction: float = 0.05  # share of `data` held out for eval loss when eval_data is empty
    base_model: str = "mistralai/Mistral-7B-v0.3"  # HF id or local dir; "tiny-random": a tiny random model
    output_dir: str = ""  # adapter, checkpoints, logs; empty: runs/<config file name>
    seed: int = 42
    max_length: int = 512  # tokens per example; longer examples are dropped and counted, never truncated
    # --- LoRA ------------------------------------------------------------------------------
    lora_r: int = 16
    lora_alpha: int | None = None  # required (no silent default): usually 2 * lora_r
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # --- model loading ---------------------------------------------------------------------
    quantization: str = "auto"  # auto: NF4 4-bit (double quant, bf16 compute) on CUDA, plain LoRA on CPU | nf4 | none
    attention: str = "auto"  # auto: varlen flash on CUDA with packing, else sdpa | varlen | sdpa | eager
    # --- optimisation ------------------------------------------------------------------------
    learning_rate: float = 2e-4
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 16  # effective batch: examples (DPO: pairs) per optimizer step, all GPUs together
    micro_batch_size: int = 16  # examples per forward pass per GPU; batch_size / (micro * GPUs) = accumulation
    warmup_steps: int = 100  # fixed warm-up steps (not a ratio)
    lr_scheduler: str = "cosine"  # cosine | linear | constant_with_warmup
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # gradient clipping; 0 disables
    optimizer: str = "auto"  # auto: paged_adamw_8bit on CUDA, adamw_torch on CPU | paged_adamw_8bit | adamw_torch
    # Which decoder layers recompute their activations in the backward pass (pipeline/train/checkpointing.py).
    # auto: as few as fit the memory (measured on the model, planned for the largest micro-batch); CPU and DPO:
    # every layer | full: every layer | none | N: the first N layers
    gradient_checkpointing: str = "auto"
    # GiB of GPU memory to plan the run within (checkpointing auto: a smaller card, or room left for other
    # work); empty: what is free on the card. A plan, not a hard limit.
    max_memory_gib: float | None = None
    # sft, label-only: torch.compile each decoder layer; about 1 min to compile, then +18 % tokens/s on an H200
    # (benchmarks/results/train_speed.md). auto: on where that pays, a CUDA run of more than COMPILE_PAYS_TOKENS
    # (pipeline/train/model.py decide_compile), else off | on | off (true / false mean on / off)
    compile: str = "auto"
    # sft, label-only: Liger's fused Triton kernels for RMSNorm, SwiGLU and RoPE (pip install liger-kernel), applied
    # through TRL's use_liger_kernel. auto: off until measured faster on a GPU (pipeline/train/model.py
    # decide_kernels; the plan line says why) | liger (CUDA with liger-kernel, else an error) | none
    kernels: str = "auto"
    packing: bool = True  # sft, label-only: concatenate a micro-batch's examples without padding, attention
    # kept within each example (DPO always pads its chosen/rejected batches)
    # --- evaluation, early stopping, checkpoints, logs --------------------------------------------
    eval_steps: int = 50
    save_steps: int = 50  # a multiple of eval_steps when early stopping is on
    save_total_limit: int = 3
    early_stopping_patience: int = 3  # evaluations without a lower eval loss before stopping; 0 disables
    logging_steps: int = 10
    # --- training dynamics (sft, label-only; pipeline/train/cartography.py, `nlistral cartography`) ------
    cartography: bool = True  # score P(gold label token) of every training example at each checkpoint
    cartography_every_steps: int = 0  # 0: a checkpoint at the end of each epoch; N: every N optimizer steps
    # --- DPO (method: dpo) -----------------------------------------------------------------------
    loss: str = "dpo"  # dpo (sigmoid) | cal-dpo (arXiv 2412.14516) | dr-dpo (arXiv 2407.07880)
    beta: float = 0.1
    beta_start: float = 0.01  # β at step 0 when beta_warmup_steps > 0, ramped linearly to beta
    beta_warmup_steps: int = 0  # 0: β is constant
    dr_dpo_beta_prime: float = 1.0  # Dr-DPO's β′: smaller trusts low-loss pairs more; large β′ tends to DPO
    drop_disagreeing_fraction: float = 0.0  # drop this share of pairs the base model most disagrees with

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (what config.yaml and the runs table hold)."""
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    """The config keys, in declaration order."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def preset_path(name: str) -> Path:
    """configs/<name>.yaml of the repository."""
    return CONFIG_DIR / f"{name}.yaml"


def list_presets() -> list[str]:
    """The preset names shipped in configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(path: Path | None, sets: list[str] | None = None) -> TrainConfig:
    """The config from defaults, then the YAML file (may be None), then each `key=value` in sets."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        for key, value in _read_yaml(Path(path)).items():
            values[key], origin[key] = _coerce(key, value, str(path)), str(path)
    for item in sets or []:
        key, sep, raw = item.partition("=")
        where = f"--set {item}"
        if not sep or not key.strip():
            raise ConfigError(f"{where}: expected key=value, e.g. --set learning_rate=1e-4")
        key = key.strip()
        values[key], origin[key] = _coerce(key, _parse_scalar(raw), where), where
    config = TrainConfig(**values)
    check(config, origin, default_origin=str(path) if path else "the defaults")
    return config


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the resolved config as YAML (temp file + rename)."""
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text("# Resolved training config (defaults + file + --set).\n"
                   + yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        presets = ", ".join(list_presets()) or "none"
        raise ConfigError(f"{path}: no such config file (presets in {CONFIG_DIR}: {presets})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config is a mapping of key: value lines, not {type(data).__name__}")
    return data


def _parse_scalar(raw: str) -> Any:
    """A --set value: YAML scalar rules (true, 12, [a, b]), strings as given otherwise."""
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def _coerce(key: str, value: Any, where: str) -> Any:
    """The value converted to the field's type, or a ConfigError naming key and origin."""
    hints = typing.get_type_hints(TrainConfig)
    if key not in hints:
        close = difflib.get_close_matches(key, hints, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown key {key!r}{hint}. Known keys: {', '.join(hints)}")
    kind = hints[key]
    if key == "compile" and isinstance(value, bool):  # compile: true / false, as before auto existed
        return "on" if value else "off"
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    try:
        return _convert(kind, value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be {_describe(kind)}, not {value!r}") from None


def _convert(kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError
        return float(value)  # YAML reads 2e-4 as a string; float() does not
    if kind is str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError
        return str(value)
    if typing.get_origin(kind) is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError
        return value
    raise TypeError


def _describe(kind: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(kind, "a list of strings such as [q_proj, v_proj]")


def check(config: TrainConfig, origin: dict[str, str], default_origin: str = "the defaults") -> None:
    """Cross-field checks; each error names the key and the file or --set that set it."""

    def where(key: str) -> str:
        return origin.get(key, default_origin)

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where(key)}: {key}: {message}")

    if config.gradient_checkpointing not in CHECKPOINTING and not config.gradient_checkpointing.isdigit():
        fail("gradient_checkpointing", f"{config.gradient_checkpointing!r} is not one of {', '.join(CHECKPOINTING)}, "
                                       "or a number of decoder layers to checkpoint")
    if config.max_memory_gib is not None and config.max_memory_gib <= 0:
        fail("max_memory_gib", f"must be positive, not {config.max_memory_gib} (leave it out to use what is free)")
    for key, allowed in (("method", METHODS), ("loss", DPO_LOSSES), ("quantization", QUANTIZATION),
                         ("attention", ATTENTION),
                         ("lr_scheduler", SCHEDULERS), ("optimizer", OPTIMIZERS), ("compile", COMPILE),
                         ("kernels", KERNELS)):
        if getattr(config, key) not in allowed:
            fail(key, f"{getattr(config, key)!r} is not one of {', '.join(allowed)}")
    if config.lora_alpha is None:
        fail("lora_alpha", f"is missing: set it (usually 2 * lora_r = {2 * config.lora_r}) in the config file "
                           f"or with --set lora_alpha={2 * config.lora_r}")
    for key in ("lora_r", "lora_alpha", "batch_size", "micro_batch_size", "max_length", "eval_steps",
                "save_steps", "logging_steps", "save_total_limit"):
        if getattr(config, key) <= 0:
            fail(key, f"must be positive, not {getattr(config, key)}")
    for key in ("warmup_steps", "early_stopping_patience", "beta_warmup_steps", "cartography_every_steps"):
        if getattr(config, key) < 0:
            fail(key, f"must be 0 or more, not {getattr(config, key)}")
    if not config.lora_targets:
        fail("lora_targets", "needs at least one module name, e.g. [q_proj, k_proj, v_proj, o_proj]")
    if not 0.0 <= config.lora_dropout < 1.0:
        fail("lora_dropout", f"must be in [0, 1), not {config.lora_dropout}")
    if config.learning_rate <= 0:
        fail("learning_rate", f"must be positive, not {config.learning_rate}")
    if config.max_steps <= 0 and config.epochs <= 0:
        fail("epochs", "must be positive unless max_steps is set")
    if config.batch_size % config.micro_batch_size:
        fail("batch_size", f"{config.batch_size} is not a multiple of micro_batch_size "
                           f"({config.micro_batch_size}, set in {where('micro_batch_size')})")
    if not 0.0 <= config.eval_fraction < 0.5:
        fail("eval_fraction", f"must be in [0, 0.5), not {config.eval_fraction}")
    if config.early_stopping_patience and not config.eval_data and config.eval_fraction == 0:
        fail("early_stopping_patience", "early stopping needs eval loss: set eval_data, or eval_fraction > 0, "
                                        "or early_stopping_patience: 0")
    if config.early_stopping_patience and config.save_steps % config.eval_steps:
        fail("save_steps", f"{config.save_steps} must be a multiple of eval_steps ({config.eval_steps}) so the "
                           "best checkpoint can be restored when early stopping is on")
    if config.cartography_every_steps and not config.cartography:
        fail("cartography_every_steps", "needs cartography: true (or leave it out)")
    if config.method == "dpo":
        for key in ("cartography", "cartography_every_steps"):
            if key in origin and getattr(config, key):
                fail(key, "is for method sft and label-only (a DPO pair has no single gold label to score); "
                          "leave it out")
        if config.compile == "on":
            fail("compile", "is for method sft and label-only (DPO's padded pairs were not measured with it)")
        if config.gradient_checkpointing.isdigit():
            fail("gradient_checkpointing", "a number of layers is for method sft and label-only (TRL's DPO trainer "
                                           "turns checkpointing back on for every layer after its reference pass); "
                                           "use auto, full or none")
        if config.kernels == "liger":
            fail("kernels", "liger is for method sft and label-only (TRL's DPO trainer swaps in its own Liger loss); "
                            "use kernels: auto or none")
        if config.beta <= 0:
            fail("beta", f"must be positive, not {config.beta}")
        if config.beta_warmup_steps and not 0 < config.beta_start <= config.beta:
            fail("beta_start", f"must be in (0, beta={config.beta}] for the β warm-up, not {config.beta_start}")
        if config.dr_dpo_beta_prime <= 0:
            fail("dr_dpo_beta_prime", f"must be positive, not {config.dr_dpo_beta_prime}")
        if not 0.0 <= config.drop_disagreeing_fraction < 1.0:
            fail("drop_disagreeing_fraction", f"must be in [0, 1), not {config.drop_disagreeing_fraction}")
    else:
        defaults = TrainConfig()
        for key in ("loss", "beta_warmup_steps", "drop_disagreeing_fraction"):
            if getattr(config, key) != getattr(defaults, key):
                fail(key, f"only applies to method: dpo (method is {config.method!r}, set in {where('method')})")
    if config.attention == "varlen" and (not config.packing or config.method == "dpo"):
        fail("attention", "varlen attention needs packed batches (method sft or label-only with packing: true); "
                          "use attention: sdpa")
