"""What a run reports while it trains: the JSONL event log, TensorBoard, and useful tokens per second."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


def tensorboard_callback(folder: Path) -> Any:
    """transformers' TensorBoard callback writing to `folder`."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations.integration_utils import TensorBoardCallback

    callback_class: Any = TensorBoardCallback  # untyped in transformers
    return callback_class(tb_writer=SummaryWriter(log_dir=str(folder)))


class JsonlLog:
    """Appends one JSON object per line, flushed at once (the TUI tails the file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh = path.open("a", encoding="utf-8") if path is not None else None

    def write(self, row: dict[str, Any]) -> None:
        """Write one event with a UTC timestamp (no-op outside the main process)."""
        if self._fh is None:
            return
        stamped = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **row}
        self._fh.write(json.dumps(stamped, default=str, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Throughput(TrainerCallback):
    """Useful (non-padding) training tokens per second, step to step, leaving out eval and save time.

    Tokens are TRL's own count (`trainer._total_train_tokens`, summed over all processes): with
    packing it counts the concatenated real tokens; without, the attention-mask ones.
    """

    def __init__(self) -> None:
        self.trainer: Any = None  # attached by the runner once the trainer exists
        self.steps: list[tuple[int, float]] = []  # (tokens, seconds) per measured optimizer step
        self._last: tuple[float, int] | None = None
        self._read = 0

    @staticmethod
    def _now() -> float:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now, tokens = self._now(), int(getattr(self.trainer, "_total_train_tokens", 0))
        if self._last is not None:
            self.steps.append((tokens - self._last[1], now - self._last[0]))
        self._last = (now, tokens)

    def restart_clock(self) -> None:
        """Time the next step from now: evaluation, saving and cartography passes run between two steps."""
        if self._last is not None:
            self._last = (self._now(), self._last[1])

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.restart_clock()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.restart_clock()

    def rate_since_last_read(self) -> float | None:
        """Tokens/s over the steps measured since the previous call."""
        window, self._read = self.steps[self._read:], len(self.steps)
        return rate(window)

    def mean_rate(self, skip: int = 0) -> float | None:
        """Tokens/s over all measured steps after the first `skip`."""
        return rate(self.steps[skip:])


class JsonlLogger(TrainerCallback):
    """Writes each Trainer log as a "log", "eval" or "summary" event of the JSONL file."""

    def __init__(self, log: JsonlLog, meter: Throughput) -> None:
        self.log, self.meter = log, meter

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        kind = "eval" if any(k.startswith("eval_") for k in logs) else (
            "summary" if "train_runtime" in logs else "log")
        row = {"event": kind, "step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
               **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
        if kind == "log":
            row["tokens_per_s"] = self.meter.rate_since_last_read()
            row["gpu_mem_gib"] = gpu_peak_gib()
        self.log.write(row)


def gpu_peak_gib() -> float | None:
    """Peak GPU memory allocated by this process so far, in GiB (None without CUDA)."""
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def rate(window: list[tuple[int, float]]) -> float | None:
    """Tokens per second over (tokens, seconds) steps, None when they took no time."""
    seconds = sum(s for _, s in window)
    return round(sum(t for t, _ in window) / seconds, 1) if seconds > 0 else None
