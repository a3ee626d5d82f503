"""Training: QLoRA SFT, a label-only baseline and DPO (Cal-DPO, Dr-DPO), driven by `nlistral train`.

Modules: config (the TrainConfig dataclass, YAML + --set, checks), data (export files -> token
rows), model (loading, LoRA, adapter checks), attention (varlen flash for packed batches; its GPU
self-check for benchmarks in attention_check), sft,
dpo + losses, tracking (JSONL / TensorBoard / tokens per second), runner (one run end to end),
hardware (CUDA, bitsandbytes, DDP rank), cartography (training dynamics: P(gold label) of every training
row at each epoch's end, stored per example; `nlistral cartography`) with label_scores (where the label
token sits in a row, and the batched teacher-forced scoring pass).

Command: `nlistral train --config FILE|PRESET [--set key=value ...] [--resume] [--db DB]`.
It prints `run <id>: logging to <output_dir>/train_log.jsonl` first and exits 0 when the run
completed, 1 when it failed, 130 when cancelled, 2 on a config error. Cancelling (how the TUI
stops a run): SIGTERM stops at the end of the current optimizer step and saves a checkpoint there,
so `--resume` continues from it; a second SIGTERM, or Ctrl-C, stops at once.

Output folder (`output_dir`, default runs/<config file name>):
  config.yaml          the resolved config
  train_log.jsonl      the event log below (appended to on --resume)
  tensorboard/         TensorBoard event files
  checkpoints/checkpoint-<step>/   Trainer checkpoints (adapter, optimizer, scheduler, RNG): --resume uses the last
  adapter/             the final adapter (adapter_model.safetensors + adapter_config.json), LoRA weights only
  cartography.jsonl    sft, label-only with cartography: true: one line per scoring pass (see cartography.py)
  base_model/          only for base_model: tiny-random (the tiny random model built for the run)

train_log.jsonl: one JSON object per line, each with "time" (UTC ISO-8601) and "event":
  {"event": "start", "run_id": int|null, "method": str, "output_dir": str, "config": {...}}
  {"event": "plan", "note": str, "quantized": bool, "attention": str, "optimizer": str}
  {"event": "data", "train_examples": int, "eval_examples": int, "dropped_overlong": int}
  {"event": "log", "step": int, "epoch": float, "loss": float, "learning_rate": float, "grad_norm": float,
   "tokens_per_s": float|null, "gpu_mem_gib": float|null, "num_tokens": float, ...}  (every logging_steps;
   DPO adds rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/*, beta)
  {"event": "eval", "step": int, "epoch": float, "eval_loss": float, ...}           (every eval_steps)
  {"event": "summary", "step": int, "train_runtime": float, "train_loss": float, ...}  (end of training)
  {"event": "cartography_plan", "examples": int, "unscorable": int, "when": str, "problems": [str]}
  {"event": "cartography", "step": int, "epoch": float, "examples": int, "seconds": float,
   "examples_per_s": float, "mean_p_gold": float}                                  (each scoring pass)
  {"event": "cartography_stored", "run_id": int, "cartography_rows": int, "cartography_checkpoints": int,
   "cartography_not_stored": {"missing_id", "not_in_store", "duplicate_id"}, ...}   (once completed)
  {"event": "traceback", "text": str}                                              (only on failure)
  {"event": "end", "status": "completed"|"failed"|"cancelled", "metrics": {...}, "error": str|null,
   "adapter": str|null}                                                            (always the last line)

runs table row (db/runs.py, kind "train"): config = the resolved config plus "export" and
"eval_export" ({"path", "sha256", "export_id"}), "log_path", "resume", "hardware"; status running ->
completed | failed | cancelled | interrupted (process killed); metrics = {"train_examples", "eval_examples",
"dropped_overlong", ["dropped_disagreeing"], "train_loss", "eval_loss" (the last evaluation), "best_eval_loss" (the
lowest; with early stopping on, the saved adapter is that checkpoint's), "global_step", "epoch",
"train_runtime_s", "tokens_per_s", "tokens", "export_sha256", "peak_gpu_gib" (CUDA), "adapter_mb",
"adapter_tensors", with cartography: "cartography_passes", "cartography_examples", "cartography_unscorable",
"cartography_s_per_pass", "cartography_examples_per_s", "cartography_rows", "cartography_checkpoints",
"cartography_not_stored"} (a cancelled run: the counts, "global_step" and "resume_from", the checkpoint
--resume will use); artifacts = {"output_dir", "log", "tensorboard", "config", "adapter"} ("adapter"
only when completed).
"""
