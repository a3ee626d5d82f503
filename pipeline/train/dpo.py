"""DPO on `nlistral export dpo` pairs: TRL's DPOTrainer with Cal-DPO / Dr-DPO losses and pair filtering.

The pairs arrive pre-tokenized by pipeline.train.data (the same tokens as SFT, one BOS). With
PEFT the reference model is the base model with the adapter switched off (TRL's own mechanism).
`loss: dpo` is TRL's sigmoid loss; `cal-dpo` and `dr-dpo` replace only the loss on the same
log-ratios (see losses.py for the formulas). `beta` is read from `trainer.beta` at every step,
which the β warm-up callback sets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trl.trainer.dpo_config import DPOConfig
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.utils import use_adapter

from pipeline.train import losses
from pipeline.train.arguments import common_arguments
from pipeline.train.config import TrainConfig
from pipeline.train.data import Row
from pipeline.train.hardware import Hardware
from pipeline.train.model import Plan, lora_config

_NOT_MODEL_INPUTS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}


class PreferenceTrainer(DPOTrainer):
    """DPOTrainer that takes pre-tokenized pairs and offers the Cal-DPO and Dr-DPO losses."""

    def __init__(self, *args: Any, loss: str = "dpo", beta_prime: float = 1.0, **kwargs: Any) -> None:
        self.preference_loss, self.beta_prime = loss, beta_prime
        super().__init__(*args, **kwargs)

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if "prompt_ids" in dataset.column_names:  # already tokenized by pipeline.train.data
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def sequence_logps(self, model: Any, inputs: dict[str, Any]) -> Any:
        """Summed target log-probabilities of every row (chosen rows first, then rejected)."""
        completion_mask = inputs["completion_mask"]
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NOT_MODEL_INPUTS}
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        out = model(**model_kwargs, labels=labels, use_cache=False, fused_lm_head=True)
        return out.log_probs[:, -(completion_mask.size(1) - 1):].sum(dim=1)  # zero on unlabelled positions

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        # TRL's own loss and reference log-probabilities are untyped: called through Any.
        trl_loss: Any = super()._compute_loss
        if self.preference_loss == "dpo":
            return trl_loss(model, inputs, return_outputs)
        trained: Any = self.model
        mode = "train" if trained.training else "eval"
        chosen_logps, rejected_logps = self.sequence_logps(model, inputs).chunk(2, dim=0)
        reference_logps: Any = self.compute_ref_log_probs
        ref_chosen, ref_rejected = reference_logps(model, inputs)
        chosen, rejected = chosen_logps - ref_chosen, rejected_logps - ref_rejected
        if self.preference_loss == "cal-dpo":
            loss = losses.cal_dpo_loss(chosen, rejected, self.beta).mean()
        else:
            loss = losses.dr_dpo_loss(chosen, rejected, self.beta, self.beta_prime)
        self._log_pair_metrics(mode, chosen.detach(), rejected.detach(), chosen_logps.detach(),
                               rejected_logps.detach())
        if mode == "train":  # the same token count TRL's own loss path keeps (tokens/s in the log)
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, None) if return_outputs else loss

    def _log_pair_metrics(self, mode: str, chosen: Any, rejected: Any, chosen_logps: Any, rejected_logps: Any) -> None:
        gather = self.accelerator.gather_for_metrics
        rewards_c, rewards_r = gather(self.beta * chosen), gather(self.beta * rejected)
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(rewards_c.mean().item())
        metrics["rewards/rejected"].append(rewards_r.mean().item())
        metrics["rewards/accuracies"].append((rewards_c > rewards_r).float().mean().item())
        metrics["rewards/margins"].append((rewards_c - rewards_r).mean().item())
        metrics["logps/chosen"].append(gather(chosen_logps).mean().item())
        metrics["logps/rejected"].append(gather(rejected_logps).mean().item())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Trainer logs plus the β in force (it moves during the warm-up)."""
        logs.setdefault("beta", float(self.beta))
        super().log(logs, start_time)


def build_dpo_trainer(config: TrainConfig, model: Any, tokenizer: Any, run_plan: Plan, hw: Hardware,
                      train_rows: list[Row], eval_rows: list[Row], checkpoints: Path,
                      callbacks: list[Any]) -> PreferenceTrainer:
    """A PreferenceTrainer with LoRA on `model`; the β warm-up callback is attached to it."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback

    has_eval = bool(eval_rows)
    warmup = losses.BetaWarmup(config.beta, config.beta_start, config.beta_warmup_steps)
    args = DPOConfig(
        **common_arguments(config, run_plan, hw, checkpoints, has_eval),
        beta=losses.beta_at(0, config.beta, config.beta_start, config.beta_warmup_steps),
        loss_type=["sigmoid"],
        max_length=None,  # data.py already dropped pairs longer than config.max_length
        precompute_ref_log_probs=False,
    )
    callbacks = [*callbacks, warmup]
    if has_eval and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = PreferenceTrainer(
        model=model, args=args, processing_class=tokenizer, peft_config=lora_config(config),
        train_dataset=Dataset.from_list(train_rows), eval_dataset=Dataset.from_list(eval_rows) if has_eval else None,
        callbacks=callbacks, loss=config.loss, beta_prime=config.dr_dpo_beta_prime,
    )
    warmup.trainer = trainer
    return trainer


def drop_disagreeing(trainer: PreferenceTrainer, fraction: float) -> list[int]:
    """Remove the `fraction` of training pairs the base model most disagrees with; returns their row indexes.

    Disagreement is the base model's per-token mean log-probability of the rejected target minus
    that of the chosen one (per-token, so that longer targets are not penalised for their length).
    """
    import torch
    from torch.utils.data import DataLoader

    dataset: Any = trainer.train_dataset  # a datasets.Dataset: build_dpo_trainer made it from rows
    n_drop = int(len(dataset) * fraction)
    if n_drop == 0:
        return []
    columns = dataset.select_columns(["prompt_ids", "chosen_ids", "rejected_ids"])
    loader = DataLoader(columns, batch_size=trainer.args.per_device_eval_batch_size,
                        collate_fn=trainer.data_collator, shuffle=False)
    model: Any = trainer.model  # the PEFT model
    was_training = model.training
    model.eval()
    scores: list[float] = []
    with torch.no_grad(), use_adapter(model, adapter_name=None):
        for batch in loader:
            batch = {k: v.to(trainer.accelerator.device) for k, v in batch.items()}
            logps = trainer.sequence_logps(model, batch)
            lengths = batch["completion_mask"].sum(dim=1).clamp(min=1)
            chosen, rejected = (logps / lengths).chunk(2, dim=0)
            scores.extend((rejected - chosen).float().cpu().tolist())
    model.train(was_training)
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    dropped = sorted(order[:n_drop])
    keep = sorted(set(range(len(dataset))) - set(dropped))
    trainer.train_dataset = dataset.select(keep)
    return dropped
