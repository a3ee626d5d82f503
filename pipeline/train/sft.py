"""SFT and the label-only baseline: TRL's SFTTrainer on pre-tokenized rows with completion-only labels.

Rows come from pipeline.train.data (prompt tokens labelled -100). With `packing: true` the
micro-batch's examples are concatenated into one row without padding ("padding-free"): TRL's
collator passes the example boundaries, which the varlen attention (CUDA) or transformers' packed
SDPA mask (CPU) use so that no example attends to another. TRL computes the loss with its fused
LM head on the labelled positions only, so the full (tokens x vocabulary) logits never exist.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.train.arguments import common_arguments
from pipeline.train.config import TrainConfig
from pipeline.train.data import Row
from pipeline.train.hardware import Hardware
from pipeline.train.model import Plan, lora_config


def build_sft_trainer(config: TrainConfig, model: Any, tokenizer: Any, run_plan: Plan, hw: Hardware,
                      train_rows: list[Row], eval_rows: list[Row], checkpoints: Path,
                      callbacks: list[Any]) -> Any:
    """An SFTTrainer with LoRA on `model`, ready for .train()."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    has_eval = bool(eval_rows)
    args = SFTConfig(
        **common_arguments(config, run_plan, hw, checkpoints, has_eval),
        packing=False,  # examples are never cut; padding_free below does the concatenation
        padding_free=config.packing,
        max_length=None,  # data.py already dropped examples longer than config.max_length
        completion_only_loss=None,  # the rows carry their own labels
        dataset_kwargs={"skip_prepare_dataset": False},
        use_liger_kernel=run_plan.kernels == "liger",  # TRL keeps its fused LM head: layer kernels only
    )
    if has_eval and config.early_stopping_patience:
        callbacks = [*callbacks, EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)]
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if has_eval else None,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )
    return trainer
