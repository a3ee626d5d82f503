"""`nlistral train`: a thin command over pipeline.train.runner."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import (
    DEFAULT_DB_PATH,
    DbOption,
    console,
    fail,
    require_train_extra,
)


def register(app: typer.Typer) -> None:
    """Add train to the CLI."""

    @app.command()
    def train(
        config: Annotated[Path, typer.Option("--config", "-c", help="A YAML training config, or the name of a "
                          "preset in configs/ (ablation0, ablation1, ablation2, smoke, dpo, label_only, ...).",
                          show_default=False)],
        sets: Annotated[list[str] | None, typer.Option("--set", help="Override one key, e.g. --set "
                        "data=export:3 --set learning_rate=1e-4 (repeatable; wins over the file).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in "
                          "output_dir (global step, optimizer and scheduler state, data order).")] = False,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Train a LoRA adapter (QLoRA on CUDA) on an export: SFT, label-only baseline or DPO.

        The run is recorded in the runs table; logs go to OUTPUT_DIR/train_log.jsonl and
        OUTPUT_DIR/tensorboard; the adapter to OUTPUT_DIR/adapter. Several GPUs:
        accelerate launch --num_processes N $(command -v nlistral) train --config FILE.
        """
        require_train_extra("train")  # before importing what needs it
        from pipeline.train.config import load_config, preset_path
        from pipeline.train.hardware import is_main_process
        from pipeline.train.runner import run_training

        path = config if config.exists() or config.suffix else preset_path(str(config))
        # A ConfigError (a UsageError: exit 2) and the rest go to the one handler (cli/common.py).
        resolved = load_config(path, sets)
        result = run_training(resolved, db_path=db, config_path=path, resume=resume,
                              echo=lambda line: console.print(line, markup=False))
        if not is_main_process():  # a secondary process of a multi-GPU launch: the main one reports
            raise typer.Exit(0 if result.status == "completed" else 130 if result.status == "cancelled" else 1)
        where = f"run {result.run_id}" if result.run_id is not None else "run (not recorded)"
        if result.status == "completed":
            console.print(f"{where} completed: adapter in {result.adapter_dir}", markup=False)
            return
        if result.status == "cancelled":
            console.print(f"{where} cancelled; continue it with --resume", markup=False)
            raise typer.Exit(130)
        fail(f"{where} failed: {result.error} (details in {result.log_path})")
