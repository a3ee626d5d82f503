"""TrainConfig -> TRL's SFTConfig / DPOConfig keyword arguments shared by every method."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.train.config import ConfigError, TrainConfig
from pipeline.train.hardware import Hardware
from pipeline.train.model import Plan


def accumulation_steps(config: TrainConfig, hw: Hardware) -> int:
    """Micro-batches per optimizer step on each GPU so that batch_size examples make one step."""
    per_step = config.micro_batch_size * hw.world_size
    if config.batch_size % per_step:
        raise ConfigError(f"batch_size {config.batch_size} is not a multiple of micro_batch_size "
                          f"{config.micro_batch_size} x {hw.world_size} processes; change one of them")
    return config.batch_size // per_step


def common_arguments(config: TrainConfig, run_plan: Plan, hw: Hardware, checkpoints: Path,
                     has_eval: bool) -> dict[str, Any]:
    """Keyword arguments for TRL's config classes (both derive from transformers.TrainingArguments)."""
    early_stop = has_eval and config.early_stopping_patience > 0
    return {
        "output_dir": str(checkpoints),
        "seed": config.seed,
        "data_seed": config.seed,
        "per_device_train_batch_size": config.micro_batch_size,
        "per_device_eval_batch_size": config.micro_batch_size,
        "gradient_accumulation_steps": accumulation_steps(config, hw),
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "warmup_steps": config.warmup_steps,
        "lr_scheduler_type": config.lr_scheduler,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "optim": run_plan.optimizer,
        "bf16": run_plan.bf16,
        "fp16": False,
        "use_cpu": not hw.cuda,
        # auto and N enable it here; pipeline.train.checkpointing then sets which layers (at train begin).
        # transformers 5.23 renamed gradient_checkpointing* to activation_checkpointing* (the old names warn).
        "activation_checkpointing": config.gradient_checkpointing != "none",
        "activation_checkpointing_kwargs": {"use_reentrant": False},
        "logging_steps": config.logging_steps,
        "logging_first_step": True,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": config.eval_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "load_best_model_at_end": early_stop,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "report_to": "none",  # TensorBoard and the JSONL log are attached as callbacks by the runner
        "ddp_find_unused_parameters": False,
        "dataloader_num_workers": 0,
        "disable_tqdm": not hw.is_main,
    }
