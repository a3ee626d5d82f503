"""Reading `nlistral export` files and turning them into token ids and loss labels.

Accepted records (JSON Lines, or the same rows in a `--hf` datasets folder; one format per export):
  SFT inst:     {"id": ..., "text": "<s>[INST] {user prompt} [/INST] {target} </s>"}
  SFT messages: {"id": ..., "messages": [{"role": "user", ...}, {"role": "assistant", ...}]}
  DPO:          {"id": ..., "prompt": "{user prompt}", "chosen": "{target}", "rejected": "{target}", ...}
Both SFT layouts give back the same (prompt, target), which exports.layout turns into the token ids of
the model being trained: the paper's Mistral [INST] text for Mistral-family bases (exactly one BOS, the
text's own "<s>"), the model's own chat template for any other. Evaluation prompts through the same layout.
Loss labels are -100 over the prompt; the target and the end of the turn are trained.
Examples longer than max_length are dropped and counted, never truncated.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from db.exports_log import export_record, newest_export_with
from db.paths import store_path
from exports import formats
from exports.layout import Layout, LayoutError, layout_for
from exports.sink import export_sha256
from pipeline.errors import PipelineError

IGNORE = -100
T = TypeVar("T")
Row = dict[str, list[int]]  # one encoded example: token id lists by column (input_ids, labels, prompt_ids, ...)


class DataError(PipelineError):
    """An export file is missing, unreadable or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Source:
    """An export file as training reads it: where, its sha256, and its exports-table id if known."""

    path: Path
    sha256: str
    export_id: int | None = None


@dataclass(frozen=True)
class SftRecord:
    """One SFT example: the user prompt and the assistant target, as exported."""

    id: Any
    prompt: str
    target: str
    where: str  # "file:line" for error messages


@dataclass(frozen=True)
class PairRecord:
    """One preference pair: the user prompt, the chosen and the rejected target."""

    id: Any
    prompt: str
    chosen: str
    rejected: str
    where: str


@dataclass
class Encoded:
    """Token rows ready for a trainer, and what was left out."""

    rows: list[Row]
    dropped_ids: list[Any] = field(default_factory=list)  # longer than max_length
    records: list[Any] = field(default_factory=list)  # the record of each row, in the same order


def resolve_source(spec: str, db: Database | None = None) -> Source:
    """An export file path, or an export id ("export:12" or "12") looked up in the exports table."""
    text = spec.strip()
    ref = text.removeprefix("export:")
    if ref.isdigit() and (text.startswith("export:") or not Path(text).exists()):
        return _source_from_db(int(ref), db)
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such export. Give a JSONL file (or --hf folder) written by `nlistral export`, "
                        "or an export id as export:ID (`nlistral exports` lists them).")
    sha = export_sha256(path)
    export_id = newest_export_with(db, sha) if db is not None else None
    return Source(path=path, sha256=sha, export_id=export_id)


def _source_from_db(export_id: int, db: Database | None) -> Source:
    if db is None:
        raise DataError(f"export:{export_id}: an export id needs the database (--db)")
    record = export_record(db, export_id)
    if record is None:
        raise DataError(f"export:{export_id}: no export with that id in the database; "
                        "`nlistral export` lists what it writes")
    path = Path(record.path)
    if not path.is_absolute() and not path.exists():
        store = store_path(db)  # in memory: the current folder
        beside_db = (store.parent if store else Path()) / path
        path = beside_db if beside_db.exists() else path
    if not path.exists():
        raise DataError(f"export:{export_id}: its file {path} is gone; export again")
    sha = export_sha256(path)
    if sha != record.sha256:
        raise DataError(f"export:{export_id}: {path} changed since it was exported (sha256 {sha[:12]}… "
                        f"!= recorded {record.sha256[:12]}…); export again rather than train on an edited file")
    return Source(path=path, sha256=sha, export_id=export_id)


def _lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    if path.is_dir():  # `nlistral export --hf`: the same records in a datasets folder
        from datasets import load_from_disk

        try:
            rows = load_from_disk(str(path))
        except (OSError, ValueError, FileNotFoundError) as exc:
            raise DataError(f"{path}: not a datasets folder written by `nlistral export --hf`: {exc}") from None
        return [(f"{path}[{i}]", dict(row)) for i, row in enumerate(rows)]
    try:
        # Only "\n" ends a record: str.splitlines() would also split at U+2028 and the like, which
        # JSON strings (written with ensure_ascii=False) may hold raw.
        raw = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    out = []
    for number, line in enumerate(raw, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg}); export files hold one JSON object per line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        out.append((where, obj))
    if not out:
        raise DataError(f"{path}: the file holds no examples")
    return out


def read_sft(path: Path) -> list[SftRecord]:
    """The examples of an SFT export (inst or messages lines)."""
    records = []
    for where, obj in _lines(path):
        if isinstance(obj.get("text"), str):
            prompt, target = _split_inst(obj["text"], where)
        elif isinstance(obj.get("messages"), list):
            prompt, target = _split_messages(obj["messages"], where)
        elif "chosen" in obj:
            raise DataError(f"{where}: this is a DPO export (prompt/chosen/rejected); use method: dpo")
        else:
            raise DataError(f"{where}: expected a \"text\" (inst) or \"messages\" field, found {sorted(obj)}")
        records.append(SftRecord(id=obj.get("id"), prompt=prompt, target=target, where=where))
    return records


def read_pairs(path: Path) -> list[PairRecord]:
    """The pairs of a DPO export."""
    records = []
    for where, obj in _lines(path):
        missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(obj.get(k), str)]
        if missing:
            hint = " (this looks like an SFT export; use method: sft)" if "text" in obj or "messages" in obj else ""
            raise DataError(f"{where}: a DPO line needs string fields prompt, chosen, rejected; "
                            f"missing {', '.join(missing)}{hint}")
        records.append(PairRecord(id=obj.get("id"), prompt=obj["prompt"], chosen=obj["chosen"],
                                  rejected=obj["rejected"], where=where))
    return records


def _split_inst(text: str, where: str) -> tuple[str, str]:
    # The target is a JSON object; a prompt may itself contain " [/INST] " (data is untrusted), so take
    # the first split whose tail is JSON and whose round trip through formats.inst_text gives the text.
    start = 0
    while (cut := text.find(" [/INST] ", start)) >= 0:
        prompt = text[:cut].removeprefix("<s>[INST] ")
        target = text[cut + len(" [/INST] "):].removesuffix(" </s>")
        if formats.inst_text(prompt, target) == text and _is_json_object(target):
            return prompt, target
        start = cut + 1
    raise DataError(f"{where}: \"text\" is not in the layout {formats.inst_text('{prompt}', '{json target}')!r}")


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _split_messages(turns: list[Any], where: str) -> tuple[str, str]:
    roles = [t.get("role") if isinstance(t, dict) else None for t in turns]
    if roles != ["user", "assistant"] or not all(isinstance(t.get("content"), str) for t in turns):
        raise DataError(f"{where}: \"messages\" must be one user turn then one assistant turn, got roles {roles}")
    return turns[0]["content"], turns[1]["content"]


def label_only(record: SftRecord) -> SftRecord:
    """The same example with the label-only instruction and the label alone as target."""
    premise, hypothesis = _pair_from_prompt(record.prompt, record.where)
    try:
        label = json.loads(record.target)["predicted_label"]
    except (json.JSONDecodeError, KeyError, TypeError):
        label = None
    if label not in (0, 1) or isinstance(label, bool):
        raise DataError(f"{record.where}: the target has no predicted_label 0 or 1, so there is no label to train")
    return SftRecord(id=record.id, prompt=formats.user_prompt(premise, hypothesis, with_thought=False),
                     target=formats.label_target(label), where=record.where)


def _pair_from_prompt(prompt: str, where: str) -> tuple[str, str]:
    for with_thought in (True, False):
        instruction = formats.user_prompt("", "", with_thought=with_thought).split("\n\n", 1)[1]
        body = prompt.removeprefix("Premise: ").removesuffix("\n\n" + instruction)
        premise, sep, hypothesis = body.partition("\nHypothesis: ")
        if sep and formats.user_prompt(premise, hypothesis, with_thought=with_thought) == prompt:
            return premise, hypothesis
    raise DataError(f"{where}: the prompt is not one exports.formats.user_prompt writes, so premise and "
                    "hypothesis cannot be recovered for the label-only target")


def encode_sft(records: list[SftRecord], tokenizer: Any, max_length: int) -> Encoded:
    """input_ids and labels (prompt masked with -100) for each record; overlong ones dropped."""
    layout = layout_for(tokenizer)
    prompts = [r.prompt for r in records]
    heads, fulls = layout.prompt_ids(prompts, check=False), layout.full_ids(prompts, [r.target for r in records])
    out = Encoded(rows=[])
    for record, head, full in zip(records, heads, fulls):
        _check_encoding(layout, record.where, head, full)
        if len(full) > max_length:
            out.dropped_ids.append(record.id)
            continue
        out.rows.append({"input_ids": full, "labels": [IGNORE] * len(head) + full[len(head):]})
        out.records.append(record)
    return out


def encode_pairs(records: list[PairRecord], tokenizer: Any, max_length: int) -> Encoded:
    """prompt_ids / chosen_ids / rejected_ids per pair, tokenized exactly as SFT; overlong pairs dropped."""
    layout = layout_for(tokenizer)
    prompts = [r.prompt for r in records]
    heads = layout.prompt_ids(prompts, check=False)
    chosen = layout.full_ids(prompts, [r.chosen for r in records])
    rejected = layout.full_ids(prompts, [r.rejected for r in records])
    out = Encoded(rows=[])
    for record, head, good, bad in zip(records, heads, chosen, rejected):
        _check_encoding(layout, record.where, head, good)
        _check_encoding(layout, record.where, head, bad)
        if max(len(good), len(bad)) > max_length:
            out.dropped_ids.append(record.id)
            continue
        out.rows.append({"prompt_ids": head, "chosen_ids": good[len(head):], "rejected_ids": bad[len(head):]})
        out.records.append(record)
    return out


def encode_texts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of [INST] layout texts, without the tokenizer's own BOS (the text's "<s>" is the only one)."""
    ids: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return ids


def _check_encoding(layout: Layout, where: str, head: list[int], full: list[int]) -> None:
    try:
        layout.check(head, full, where)
    except LayoutError as exc:
        raise DataError(str(exc)) from None


def split_eval(rows: list[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """A seeded held-out share of rows (at least one row when fraction > 0 and there are 2 or more).

    Any list splits the same way for the same length and seed (the runner splits rows and their records alike).
    """
    if fraction <= 0 or len(rows) < 2:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
