"""What changed between two exports: rows added, removed and changed, label balance, selection reasons.

Rows are matched by their `id` (the store's example id every export line carries). An SFT row changed
when its target (thought and label) differs; a DPO example changed when its set of (chosen, rejected)
pairs differs. The label of a row is its target's `predicted_label` (a DPO row: the chosen side's).
Selection reasons come from each export's manifest (`FILE.manifest.json`): rows by source and examples
left out by reason. Everything is ordered by id, so the same two exports always give the same JSON.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from exports.target import manifest_path
from pipeline.train.data import DataError, read_pairs, read_sft, resolve_source

Rows = dict[Any, tuple[int | None, tuple[str, ...], str]]  # id -> (label, what is compared, a text to show)


@dataclass(frozen=True)
class Side:
    """One export as compared: where it is, its kind, its rows by id, and its manifest's counts."""

    spec: str
    path: Path
    export_id: int | None
    kind: str  # sft | dpo
    rows: Rows
    counts: dict[str, Any] | None  # the manifest's "counts", when the manifest is there

    def balance(self) -> dict[str, Any]:
        labels = Counter("unknown" if label is None else str(label) for label, _, _ in self.rows.values())
        total = sum(labels.values())
        return {"rows": total, "by_label": dict(sorted(labels.items())),
                "share_1": round(labels.get("1", 0) / total, 4) if total else None}

    def reasons(self) -> dict[str, Any] | None:
        if self.counts is None:
            return None
        return {"by_source": self.counts.get("by_source", {}), "left_out": self.counts.get("left_out", {})}

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "path": str(self.path), "export_id": self.export_id, "kind": self.kind}


@dataclass(frozen=True)
class DatasetDiff:
    """Two exports side by side (a before b)."""

    a: Side
    b: Side

    @property
    def added(self) -> list[Any]:
        return sorted((i for i in self.b.rows if i not in self.a.rows), key=_order)

    @property
    def removed(self) -> list[Any]:
        return sorted((i for i in self.a.rows if i not in self.b.rows), key=_order)

    @property
    def changed(self) -> list[Any]:
        return sorted((i for i in self.a.rows if i in self.b.rows and self.a.rows[i][1] != self.b.rows[i][1]),
                      key=_order)

    def as_dict(self, examples: int = 3) -> dict[str, Any]:
        """The JSON of `nlistral diff --json` (keys sorted when dumped)."""
        def listed(ids: list[Any], side: Side) -> dict[str, Any]:
            return {"count": len(ids), "examples": [{"id": i, "label": side.rows[i][0], "text": side.rows[i][2]}
                                                    for i in ids[:examples]]}

        a_balance, b_balance = self.a.balance(), self.b.balance()
        shift = (None if a_balance["share_1"] is None or b_balance["share_1"] is None
                 else round(b_balance["share_1"] - a_balance["share_1"], 4))
        changed = self.changed
        return {
            "a": self.a.describe(), "b": self.b.describe(),
            "added": listed(self.added, self.b), "removed": listed(self.removed, self.a),
            "changed": {"count": len(changed), "examples": [
                {"id": i, "label_a": self.a.rows[i][0], "label_b": self.b.rows[i][0], "text_a": self.a.rows[i][2],
                 "text_b": self.b.rows[i][2]} for i in changed[:examples]]},
            "balance": {"a": a_balance, "b": b_balance, "share_1_shift": shift},
            "reasons": {"a": self.a.reasons(), "b": self.b.reasons()},
        }


def diff_exports(a: str, b: str, db: Database | None = None) -> DatasetDiff:
    """Compare two exports of one kind, each an export id (`export:3`) or a file `nlistral export` wrote."""
    first, second = read_side(a, db), read_side(b, db)
    if first.kind != second.kind:
        raise DataError(f"{a} is a {first.kind.upper()} export and {b} a {second.kind.upper()} one: their rows "
                        "cannot be matched; compare two SFT exports or two DPO exports")
    return DatasetDiff(first, second)


def read_side(spec: str, db: Database | None) -> Side:
    """One export's rows by id; DataError when it cannot be read or its rows carry no ids."""
    source = resolve_source(spec, db)
    manifest = manifest_path(source.path)
    counts = None
    if manifest.is_file():
        try:
            counts = json.loads(manifest.read_text(encoding="utf-8")).get("counts")
        except (OSError, ValueError) as exc:
            raise DataError(f"{manifest}: cannot read the manifest: {exc}") from None
    try:
        kind, rows = "sft", _sft_rows(source.path)
    except DataError as exc:
        if "DPO export" not in str(exc):
            raise
        kind, rows = "dpo", _dpo_rows(source.path)
    return Side(spec, source.path, source.export_id, kind, rows, counts)


def _sft_rows(path: Path) -> Rows:
    rows: Rows = {}
    for record in read_sft(path):
        key = _key(record.id, record.where)
        rows[key] = (_label(record.target), (record.target,), record.target)
    return rows


def _dpo_rows(path: Path) -> Rows:
    pairs: dict[Any, list[tuple[str, str]]] = {}
    for record in read_pairs(path):
        pairs.setdefault(_key(record.id, record.where), []).append((record.chosen, record.rejected))
    return {key: (_label(found[0][0]), tuple(f"{c}\n{r}" for c, r in sorted(set(found))), found[0][0])
            for key, found in pairs.items()}


def _key(raw: Any, where: str) -> Any:
    if raw is None:
        raise DataError(f"{where}: the row has no \"id\", so it cannot be matched across exports; compare "
                        "files written by `nlistral export`")
    return raw


def _label(target: str) -> int | None:
    try:
        label = json.loads(target).get("predicted_label")
    except (ValueError, AttributeError):
        return None
    return label if label in (0, 1) and not isinstance(label, bool) else None


def _order(key: Any) -> tuple[int, str]:
    return (0, f"{key:020d}") if isinstance(key, int) else (1, str(key))


def last_trained_export(db: Database) -> str | None:
    """The export the newest completed training run trained on (`export:ID`, else its file), or None."""
    from db.runs import list_runs

    for run in list_runs(db, kind="train"):
        source = run.config.get("export") if run.status == "completed" else None
        if isinstance(source, dict):
            return f"export:{source['export_id']}" if source.get("export_id") else source.get("path")
    return None


def summary_line(d: DatasetDiff) -> str:
    """One line for the training screen: what the chosen export changes against the last trained one."""
    a, b = d.a.balance(), d.b.balance()
    share = ("" if a["share_1"] is None or b["share_1"] is None
             else f"; label 1 {a['share_1'] * 100:.1f}% → {b['share_1'] * 100:.1f}%")
    return (f"vs {d.a.spec} (last completed training run): +{len(d.added)} added, −{len(d.removed)} removed, "
            f"{len(d.changed)} changed; {a['rows']:,} → {b['rows']:,} rows{share}")
