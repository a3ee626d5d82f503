"""Training runs as the review app's training screen lists them."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from db.runs import Run

SHOWN_METRICS = ("train_loss", "eval_loss", "best_eval_loss", "global_step", "tokens_per_s", "adapter_mb")


def runs_table(runs: list[Run]) -> Table:
    """Finished and running training runs with their main metrics."""
    table = Table(title="Training runs", title_justify="left")
    for col in ("id", "status", "started", "method", "metrics", "adapter / error"):
        table.add_column(col, justify="right" if col == "id" else "left", overflow="fold")
    for run in runs[:30]:
        metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in run.metrics.items() if k in SHOWN_METRICS and v is not None)
        where = run.error or run.artifacts.get("output_dir", "")
        table.add_row(str(run.id), run.status, run.started_at[:16].replace("T", " "),
                      Text(str(run.config.get("method", ""))), Text(metrics), Text(str(where)))
    return table
