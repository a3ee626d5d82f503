"""Leakage check: does the evaluated set share pairs (by content hash) with what the adapter trained on?

The adapter's training data is found through (1) `train` runs in the database whose artifacts or
config name the adapter folder (pipeline/train records "export" and "eval_export" {path, sha256,
export_id} and artifacts.adapter), and (2) the resolved config of the training folder the adapter
sits in (`config.yaml` beside `train_log.jsonl`) or beside it. The data files and `export:ID`s under
the keys that name training data (DATA_KEYS) are read; other paths a config names (the run's own
log, its output folder, a local base model) are not data. Under a key with "eval", "valid" or "dev"
in it: the early-stopping set; otherwise training data, which also holds the early-stopping rows
when training split off an `eval_fraction`. Each file gives its manifest's example ids or content
hashes when present, else the premise and hypothesis of each record (fields, or read back out of
the training prompt).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlite_utils import Database

from db.examples import content_hash
from db.examples_read import content_hashes
from db.exports_log import export_record
from db.runs import list_runs
from pipeline.evaluate.prompts import split_user_prompt

CONFIG_NAMES = ("nlistral_train_config.json", "nlistral_train_config.yaml", "config.yaml")
EARLY_STOPPING, TRAINING, BOTH = "early-stopping", "training", "training (and early-stopping)"
_DATA_SUFFIXES = (".jsonl", ".json")
# The config keys that name data: TrainConfig's data / eval_data, and the run record's export /
# eval_export ({path, sha256, export_id}, pipeline/train/runner.py).
DATA_KEYS = ("data", "eval_data", "export", "eval_export")
_EVAL_WORDS = ("eval", "valid", "dev")


@dataclass(frozen=True)
class DataSource:
    """One file the adapter trained or early-stopped on."""

    role: str  # training | early-stopping
    path: Path


@dataclass(frozen=True)
class Overlap:
    """How many evaluated examples also appear in one training source."""

    role: str
    source: str
    shared: int
    evaluated: int

    def message(self) -> str:
        """A warning line for the user."""
        share = 100 * self.shared / self.evaluated if self.evaluated else 0.0
        return (f"{self.shared} of the {self.evaluated} evaluated examples ({share:.1f}%) are in the "
                f"{self.role} data of this adapter ({self.source}): scores on them are not held-out scores.")


def find_overlaps(db: Database, adapter: Path | None, evaluated_hashes: set[str]) -> tuple[list[Overlap], list[str]]:
    """Overlaps with each training source, and notes on sources that could not be checked."""
    if adapter is None:
        return [], []
    notes: list[str] = []
    sources = list(dict.fromkeys(data_sources(db, adapter, notes)))
    if not sources:
        notes.append(f"no training record found for {adapter} (no train run names it and no training "
                     "config beside it): overlap with its training data was not checked")
    overlaps = []
    for source in sources:
        hashes = source_hashes(db, source.path, notes)
        shared = len(hashes & evaluated_hashes)
        if shared:
            overlaps.append(Overlap(source.role, str(source.path), shared, len(evaluated_hashes)))
    return overlaps, notes


def data_sources(db: Database, adapter: Path, notes: list[str]) -> Iterator[DataSource]:
    """The training and early-stopping files the adapter's train run(s) and saved config name."""
    target = adapter.resolve()
    for config in _train_configs(db, target, notes):
        found = [s for key in DATA_KEYS if key in config for s in _files_in(db, config[key], key)]
        split_off = not any(s.role == EARLY_STOPPING for s in found) and bool(config.get("eval_fraction"))
        for source in found:
            yield DataSource(BOTH, source.path) if split_off and source.role == TRAINING else source


def _train_configs(db: Database, adapter: Path, notes: list[str]) -> Iterator[dict[str, Any]]:
    for run in reversed(list_runs(db, "train")):  # oldest first
        config, artifacts = run.config, run.artifacts
        if any(_same_path(v, adapter) for v in _strings(artifacts)) or any(
                _same_path(v, adapter) for v in _strings(config)):
            yield config
    folders = [adapter, adapter.parent] if (adapter.parent / "train_log.jsonl").exists() else [adapter]
    for path in (folder / name for folder in folders for name in CONFIG_NAMES):
        if not path.exists():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            notes.append(f"{path}: cannot read it ({exc}); overlap not checked against it")
            continue
        if isinstance(loaded, dict):
            yield loaded


def _files_in(db: Database, value: Any, key: str | None) -> Iterator[DataSource]:
    """Data files (and export ids) named anywhere in a config, with the role their key suggests."""
    role = EARLY_STOPPING if key and any(w in key.lower() for w in _EVAL_WORDS) else TRAINING
    if isinstance(value, dict):
        for k, v in value.items():
            inner = k if key is None or not any(w in key.lower() for w in _EVAL_WORDS) else key
            yield from _files_in(db, v, str(inner))
    elif isinstance(value, list):
        for v in value:
            yield from _files_in(db, v, key)
    elif isinstance(value, str) and value.endswith(_DATA_SUFFIXES) and Path(value).is_file():
        yield DataSource(role, Path(value).resolve())
    elif isinstance(value, str) and value.startswith("export:") and value[7:].isdigit():
        yield from _export_file(db, int(value[7:]), role)
    elif isinstance(value, int) and not isinstance(value, bool) and key and "export" in key.lower():
        yield from _export_file(db, value, role)


def _export_file(db: Database, export_id: int, role: str) -> Iterator[DataSource]:
    record = export_record(db, export_id)
    if record and Path(record.path).is_file():
        yield DataSource(role, Path(record.path).resolve())


def source_hashes(db: Database, path: Path, notes: list[str]) -> set[str]:
    """Content hashes of the pairs in one data file (its manifest's list when it has one)."""
    manifest = path.with_name(path.name + ".manifest.json")
    if manifest.exists():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = {}
        hashes = set(data.get("content_hashes") or [])
        ids = [int(i) for i in data.get("example_ids") or []]
        hashes |= content_hashes(db, ids)
        if hashes:
            return hashes
    hashes, unread = set(), 0
    try:
        for record in _records(path):
            found = record_hash(record)
            if found is None:
                unread += 1
            else:
                hashes.add(found)
    except OSError as exc:
        notes.append(f"{path}: cannot read it ({exc}); overlap not checked against it")
    if unread:
        notes.append(f"{path}: {unread} records name no premise/hypothesis; they were not checked for overlap")
    return hashes


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def record_hash(record: dict[str, Any]) -> str | None:
    """The content hash of a record's pair (its own field, its fields, or its prompt), else None."""
    own = record.get("content_hash")
    if isinstance(own, str):
        return own
    if isinstance(record.get("premise"), str) and isinstance(record.get("hypothesis"), str):
        return content_hash(record["premise"], record["hypothesis"])
    for text in _prompt_texts(record):
        pair = split_user_prompt(text)
        if pair:
            return content_hash(*pair)
    return None


def _prompt_texts(record: dict[str, Any]) -> Iterator[str]:
    for key in ("text", "prompt"):
        value = record.get(key)
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from _message_texts(value)
    if isinstance(record.get("messages"), list):
        yield from _message_texts(record["messages"])


def _message_texts(messages: Iterable[Any]) -> Iterator[str]:
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            yield m["content"]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def _same_path(value: str, target: Path) -> bool:
    if not value or len(value) > 4096 or "\n" in value:
        return False
    try:
        return Path(value).resolve() == target
    except (OSError, ValueError):
        return False
