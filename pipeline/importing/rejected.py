"""The report of rejected rows that `--skip-bad` writes: checked before the import's transaction,
written inside it (a failure rolls the import back), put in place once the import is committed."""
from __future__ import annotations

import json
import os
from pathlib import Path

from db.paths import refuse_clobber
from pipeline.importing.errors import BadOption, BadRow


def default_report_path(source: Path) -> Path:
    """Where the rejected rows of source go without --report: ./FILE.rejected.jsonl."""
    return Path(f"{source.name}.rejected.jsonl")


def check_report(report: Path, *, store: str | Path | None, source: Path) -> None:
    """OutputPathError if report would overwrite the store or the input; BadOption if it cannot be written."""
    refuse_clobber(report, option="--report", store=store, inputs=[source])
    if report.is_dir():
        raise BadOption("--report", f"--report {report} is a folder; give the path of a file for the rejected rows.")
    folder = report.parent
    if not folder.is_dir():
        raise BadOption("--report", f"--report {report}: the folder {folder} does not exist; create it, or "
                        "choose another --report path.")
    probe = _temporary(report)
    try:
        probe.open("w").close()  # the honest test of a writable folder (permissions, read-only disks, quotas)
        probe.unlink()
    except OSError as exc:
        raise BadOption("--report", f"--report {report} cannot be written ({exc.strerror}); choose a path in a "
                        "folder you can write to.") from None


class PendingReport:
    """A report written under a temporary name inside the import's transaction, renamed after the commit."""

    def __init__(self, path: Path):
        self.path, self.tmp = path, _temporary(path)

    def write(self, bad: list[BadRow]) -> None:
        """Write the rejected rows (line, reason, fix, raw) as JSON Lines to the temporary file; OSError on failure."""
        with self.tmp.open("w", encoding="utf-8") as fh:
            for b in bad:
                fh.write(json.dumps({"line": b.line, "reason": b.reason, "fix": b.fix, "raw": b.raw},
                                    ensure_ascii=False) + "\n")

    def publish(self) -> Path:
        """Put the written report in place; its absolute path."""
        os.replace(self.tmp, self.path)
        return self.path.resolve()

    def discard(self) -> None:
        """Remove the temporary file (the import failed)."""
        self.tmp.unlink(missing_ok=True)


def write_rejected(bad: list[BadRow], path: Path) -> Path:
    """Write rejected rows as JSON Lines via a temporary file; returns the absolute path."""
    pending = PendingReport(path)
    pending.write(bad)
    return pending.publish()


def _temporary(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")
