"""One training run end to end: config -> data -> model -> trainer -> adapter, recorded and logged.

The run is a row of the runs table (kind "train"), a JSONL log the TUI tails, TensorBoard events
and the output folder (see pipeline/train/__init__.py for the exact layout and formats). Only the
main process of a multi-GPU launch writes the row, the logs and the adapter.
"""
from __future__ import annotations

import dataclasses
import shutil
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlite_utils import Database
from transformers import TrainerCallback

from pipeline.errors import PipelineError
from pipeline.quantization import write_base_load
from pipeline.train import checkpointing
from pipeline.train import data as train_data
from pipeline.train.config import ConfigError, TrainConfig, save_config
from pipeline.train.hardware import Hardware, detect
from pipeline.train.tracking import (
    JsonlLog,
    JsonlLogger,
    Throughput,
    gpu_peak_gib,
    tensorboard_callback,
)

LOG_NAME = "train_log.jsonl"


class TrainingCancelled(PipelineError):
    """The run was asked to stop (SIGTERM from the TUI, or Ctrl-C)."""


class TrainingError(PipelineError):
    """The run cannot start; the message says what to change."""


class Sources(NamedTuple):
    """The export a run trains on, and the one it evaluates on (None: eval rows are held out of the first)."""

    train: train_data.Source
    held: train_data.Source | None


@dataclass
class RunResult:
    """What a finished (or stopped) run produced."""

    status: str  # completed | failed | cancelled
    output_dir: Path
    log_path: Path
    run_id: int | None = None
    adapter_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cartography: Any = None  # the CartographyTracker when it ran; its dynamics are stored once the run completes


def default_output_dir(config_path: Path | None) -> Path:
    """runs/<config file name> (runs/train without a file)."""
    return Path("runs") / (config_path.stem if config_path else "train")


def checkpoints_in(output_dir: Path) -> list[Path]:
    """The saved checkpoints of a run folder, oldest first."""
    folder = output_dir / "checkpoints"
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def run_training(config: TrainConfig, *, db_path: Path | None, config_path: Path | None = None,
                 resume: bool = False, callbacks: tuple[Any, ...] = (),
                 echo: Callable[[str], None] = print) -> RunResult:
    """Train one adapter as configured; never raises for a failed run (see RunResult.status)."""
    hw = detect()
    if not hw.is_main:  # one process of a multi-GPU launch speaks for all of them
        echo = _silent
    output_dir = Path(config.output_dir) if config.output_dir else default_output_dir(config_path)
    config.output_dir = str(output_dir)
    _check_output_dir(output_dir, resume)
    log_path = output_dir / LOG_NAME
    # Every process may need the exports table (data: export:ID); only the main one writes the run.
    store = _open_db(db_path, hw.is_main) if db_path is not None else None
    sources = _resolve_sources(config, store)
    record = {**config.to_dict(), "export": _describe(sources.train),
              "eval_export": _describe(sources.held) if sources.held else None, "log_path": str(log_path),
              "resume": resume, "hardware": hw.describe()}
    run_id = None
    if hw.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / "config.yaml")
        if store is not None:
            from db.runs import start_run

            run_id = start_run(store, "train", record)
    log = JsonlLog(log_path if hw.is_main else None)
    log.write({"event": "start", "run_id": run_id, "method": config.method, "output_dir": str(output_dir),
               "config": record})
    echo(f"run {run_id if run_id is not None else '-'}: logging to {log_path}")
    result = RunResult(status="failed", output_dir=output_dir, log_path=log_path, run_id=run_id)
    try:
        cancel = CancelOnSignal()
        with _stop_on_sigterm(cancel):
            _train(config, hw, sources, output_dir, resume, log, [cancel, *callbacks], echo, result)
            if cancel.requested:
                raise TrainingCancelled()
            if result.cartography is not None:
                from pipeline.train.cartography import record_dynamics

                result.metrics.update(record_dynamics(store, run_id, result.cartography, log, echo))
        result.status = "completed"
    except (TrainingCancelled, KeyboardInterrupt):
        result.status, result.error = "cancelled", "stopped by request"
    except Exception as exc:  # noqa: BLE001 - any failure is recorded as the run's; the caller picks the exit code
        result.error = f"{type(exc).__name__}: {exc}"
        log.write({"event": "traceback", "text": traceback.format_exc()})
    finally:
        log.write({"event": "end", "status": result.status, "metrics": result.metrics, "error": result.error,
                   "adapter": str(result.adapter_dir) if result.adapter_dir else None})
        log.close()
        if store is not None and run_id is not None:
            from db.runs import finish_run

            artifacts = {"output_dir": str(output_dir), "log": str(log_path),
                         "tensorboard": str(output_dir / "tensorboard"), "config": str(output_dir / "config.yaml")}
            if result.adapter_dir:
                artifacts["adapter"] = str(result.adapter_dir)
            finish_run(store, run_id, result.status, metrics=result.metrics, artifacts=artifacts,
                       error=result.error)
        if store is not None:
            store.conn.close()
        _leave_process_group()
    return result


def _silent(_message: str) -> None:
    pass


def _leave_process_group() -> None:
    """End this process's part in a multi-GPU launch (torch warns, and NCCL may leak, otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _train(config: TrainConfig, hw: Hardware, sources: Sources, output_dir: Path, resume: bool,
           log: JsonlLog, callbacks: list[Any], echo: Callable[[str], None], result: RunResult) -> None:
    from pipeline.train import model as model_mod

    run_plan = model_mod.plan(config, hw)
    echo(f"Hardware: {hw.describe()}")
    echo(f"Plan: {run_plan.note}")
    log.write({"event": "plan", "note": run_plan.note, "quantized": run_plan.quantized,
               "attention": run_plan.attention, "optimizer": run_plan.optimizer})
    base = model_mod.base_model_path(config, output_dir)
    tokenizer = model_mod.load_tokenizer(base)
    train_rows, eval_rows, counts, train_records = _rows(config, sources, tokenizer)
    echo(f"Data: {counts['train_examples']} train / {counts['eval_examples']} eval examples; "
         f"{counts['dropped_overlong']} dropped as longer than {config.max_length} tokens")
    log.write({"event": "data", **counts})
    model = model_mod.load_model(base, run_plan, hw)
    meter = Throughput()
    extra = [meter, JsonlLogger(log, meter), *callbacks]
    if config.cartography and config.method != "dpo":
        from pipeline.train.cartography import start_tracker

        cancel = next((c for c in callbacks if isinstance(c, CancelOnSignal)), CancelOnSignal())
        result.cartography = start_tracker(config, hw, train_records, train_rows, tokenizer, log, meter,
                                           lambda: cancel.requested, echo)
        extra.append(result.cartography)
    if hw.is_main:
        extra.append(tensorboard_callback(output_dir / "tensorboard"))
    compiled, why = model_mod.decide_compile(config, hw, tokens_to_train(config, train_rows))
    echo(_sentence(why))
    log.write({"event": "compile", "compile": compiled, "note": why})
    config = dataclasses.replace(config, compile="on" if compiled else "off")
    builder = _builder(config.method)
    trainer = builder(config, model, tokenizer, run_plan, hw, train_rows, eval_rows,
                      output_dir / "checkpoints", extra)
    layers, installed = checkpointing.setup_layers(trainer, config, hw, train_rows)
    echo(_sentence(layers.note))
    log.write({"event": "checkpointing", "checkpointed": layers.checkpointed, "layers": layers.layers,
               "setting": layers.config_value, "note": layers.note})
    meter.trainer = trainer
    if result.cartography is not None:
        result.cartography.trainer = trainer
    if config.method == "dpo" and config.drop_disagreeing_fraction > 0:
        from pipeline.train.dpo import drop_disagreeing

        dropped = drop_disagreeing(trainer, config.drop_disagreeing_fraction)
        counts["dropped_disagreeing"] = len(dropped)
        echo(f"Dropped {len(dropped)} pairs the base model disagrees with most")
        log.write({"event": "data", "dropped_disagreeing": len(dropped)})
    checkpoint = str(checkpoints_in(output_dir)[-1]) if resume else None
    if checkpoint:
        echo(f"Resuming from {checkpoint}")
    output = _train_or_checkpoint_all(trainer, checkpoint, config, hw, layers, installed, log, echo)
    if any(isinstance(c, CancelOnSignal) and c.requested for c in callbacks):
        # Stopped at a step boundary with a checkpoint saved there: no adapter, status cancelled.
        last = checkpoints_in(output_dir)
        result.metrics = {**counts, "global_step": trainer.state.global_step,
                          "resume_from": str(last[-1]) if last else None}
        return
    metrics: dict[str, Any] = {
        **counts, "train_loss": output.training_loss, "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch, "train_runtime_s": output.metrics.get("train_runtime"),
        "tokens_per_s": meter.mean_rate(), "tokens": getattr(trainer, "_total_train_tokens", None),
        "export_sha256": sources.train.sha256}
    if result.cartography is not None:
        metrics.update(result.cartography.metrics())
    if eval_rows:
        evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
        if not evals:  # training ended before the first scheduled evaluation
            evals = [trainer.evaluate()["eval_loss"]]
        metrics["eval_loss"], metrics["best_eval_loss"] = evals[-1], min(evals)
    if hw.cuda:
        metrics["peak_gpu_gib"] = gpu_peak_gib()
    adapter_dir, partial = output_dir / "adapter", output_dir / "adapter.partial"
    trainer.save_model(str(partial))  # written aside, then renamed: never a half-written adapter
    if hw.is_main:
        metrics.update(model_mod.adapter_report(partial))
        write_base_load(partial, model_mod.base_load(run_plan))  # evaluate loads the base the same way
        if adapter_dir.exists():  # a resumed run that had finished before
            shutil.rmtree(adapter_dir)
        partial.replace(adapter_dir)
        echo(f"Adapter: {adapter_dir} ({metrics['adapter_mb']} MB, LoRA weights only)")
    result.adapter_dir, result.metrics = adapter_dir, metrics


def tokens_to_train(config: TrainConfig, rows: list[Any]) -> int:
    """The tokens the run will train on: its epochs over the rows, or max_steps batches of rows of mean length."""
    per_pass = sum(len(r.get("input_ids") or r.get("prompt_ids", [])) for r in rows)
    if config.max_steps > 0:
        mean = per_pass / max(1, len(rows))
        return int(config.max_steps * config.batch_size * mean)
    return int(per_pass * config.epochs)


def _train_or_checkpoint_all(trainer: Any, checkpoint: str | None, config: TrainConfig, hw: Hardware,
                             layers: checkpointing.Checkpointing, installed: Any, log: JsonlLog,
                             echo: Callable[[str], None]) -> Any:
    """trainer.train(); if checkpointing auto left layers unchecked and the first step runs out of memory, check-
    point every layer and start again (nothing was learned yet), saying so. Any other out-of-memory is raised, and
    so is one under several processes (one restarting alone would leave the others waiting in a collective)."""
    import torch

    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    except torch.OutOfMemoryError:
        started = trainer.state.global_step > (0 if checkpoint is None else _step_of(checkpoint))
        if (config.gradient_checkpointing != "auto" or layers.checkpointed == layers.layers or started
                or hw.world_size > 1):
            raise
    note = (f"ran out of memory in the first step with {layers.checkpointed} of {layers.layers} layers "
            "checkpointed; checkpointing every layer and starting again")
    echo(_sentence(note))
    log.write({"event": "checkpointing", "checkpointed": layers.layers, "layers": layers.layers, "setting": "full",
               "note": note})
    installed.layers_to_checkpoint = layers.layers
    trainer.model.zero_grad(set_to_none=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return trainer.train(resume_from_checkpoint=checkpoint)


def _sentence(note: str) -> str:
    """A plan note as a log line: its first letter upper case, the rest as written (CUDA stays CUDA)."""
    return note[:1].upper() + note[1:]


def _step_of(checkpoint: str) -> int:
    """The optimizer step a checkpoint folder (checkpoint-N) was saved at."""
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def _builder(method: str) -> Callable[..., Any]:
    if method == "dpo":
        from pipeline.train.dpo import build_dpo_trainer

        return build_dpo_trainer
    from pipeline.train.sft import build_sft_trainer

    return build_sft_trainer


def _rows(config: TrainConfig, sources: Sources,
          tokenizer: Any) -> tuple[list[train_data.Row], list[train_data.Row], dict[str, int], list[Any]]:
    """Encoded train and eval rows, the counts that go into the run's metrics, and the train rows' records."""

    def encode(source: train_data.Source) -> train_data.Encoded:
        if config.method == "dpo":
            return train_data.encode_pairs(train_data.read_pairs(source.path), tokenizer, config.max_length)
        records = train_data.read_sft(source.path)
        if config.method == "label-only":
            records = [train_data.label_only(r) for r in records]
        return train_data.encode_sft(records, tokenizer, config.max_length)

    main = encode(sources.train)
    dropped = len(main.dropped_ids)
    if sources.held is not None:
        held = encode(sources.held)
        train_rows, eval_rows, train_records = main.rows, held.rows, main.records
        dropped += len(held.dropped_ids)
    else:
        train_rows, eval_rows = train_data.split_eval(main.rows, config.eval_fraction, config.seed)
        train_records, _ = train_data.split_eval(main.records, config.eval_fraction, config.seed)
    if not train_rows:
        raise TrainingError(f"{sources.train.path}: no training examples left (all longer than "
                            f"max_length {config.max_length}?)")
    return train_rows, eval_rows, {"train_examples": len(train_rows), "eval_examples": len(eval_rows),
                                   "dropped_overlong": dropped}, train_records


def _check_output_dir(output_dir: Path, resume: bool) -> None:
    found = checkpoints_in(output_dir)
    if resume and not found:
        raise TrainingError(f"{output_dir}: no checkpoint to resume from; run without --resume to start")
    if not resume and (found or (output_dir / "adapter").exists()):
        raise TrainingError(f"{output_dir} already holds a run: pass --resume to continue it, or choose another "
                            "folder with --set output_dir=PATH")


def _open_db(db_path: Path, main: bool) -> Database | None:
    """The main process opens (creating and migrating if needed); the others only read, and only an
    existing file, so that several processes never migrate one new file at once."""
    from db.connection import open_db
    from db.read_only import open_read_only

    return open_db(db_path) if main else open_read_only(db_path)


def _resolve_sources(config: TrainConfig, store: Database | None) -> Sources:
    if not config.data:
        raise ConfigError("data: is missing: set it to an export file or export:ID in the config file, or pass "
                          "--set data=PATH")
    try:
        main = train_data.resolve_source(config.data, store)
        held = train_data.resolve_source(config.eval_data, store) if config.eval_data else None
    except train_data.DataError as exc:
        raise TrainingError(str(exc)) from None
    return Sources(main, held)


def _describe(source: train_data.Source) -> dict[str, Any]:
    return {"path": str(source.path), "sha256": source.sha256, "export_id": source.export_id}


class CancelOnSignal(TrainerCallback):
    """Stops training at the end of the current optimizer step, saving a checkpoint to resume from."""

    def __init__(self) -> None:
        self.requested = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.requested:
            control.should_save = True
            control.should_training_stop = True


@contextmanager
def _stop_on_sigterm(cancel: CancelOnSignal) -> Iterator[None]:
    """SIGTERM (how the TUI cancels a run): stop after this step with a checkpoint; a second one: at once."""

    def handler(signum: int, frame: Any) -> None:
        if cancel.requested:
            raise TrainingCancelled()
        cancel.requested = True

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: no handler, the caller cancels otherwise
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
