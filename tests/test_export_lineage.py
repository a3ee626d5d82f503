"""What every export leaves behind: whole files or none, the manifest, the table row, the run; and its checks."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from db import open_db
from db.runs import list_runs
from exports import (
    DpoOptions,
    EmptyExportError,
    ExportOptionError,
    ExportTargetError,
    SftOptions,
    TokenizerLoadError,
    list_exports,
    manifest_path,
    plan,
    write_to,
)
from exports.sink import JsonlSink, dir_sha256
from pipeline.importing import import_file


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_crash_midway_leaves_the_old_file_whole_and_no_temporary(seed_db, tmp_path, monkeypatch):
    out = tmp_path / "train.jsonl"
    first = write_to(seed_db, SftOptions(ablation="correct-only"), out=out)
    before = out.read_bytes()
    def crash(self: JsonlSink, lines: list[str]) -> None:
        original(self, lines[:50])
        self._flush()  # half the rows are on disk under the temporary name
        raise KeyboardInterrupt

    original = JsonlSink.write
    monkeypatch.setattr(JsonlSink, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        write_to(seed_db, SftOptions(ablation="unmodified"), out=out, overwrite=True)
    assert out.read_bytes() == before and _leftovers(tmp_path) == []
    assert [e.id for e in list_exports(seed_db)] == [first.export_id]
    assert list_runs(seed_db, "export")[0].status == "cancelled"


def test_manifest_table_row_and_run_agree(seed_db, tmp_path):
    out = tmp_path / "r.jsonl"
    manifest = write_to(seed_db, SftOptions(ablation="reflected", shuffle_seed=3), out=out)
    assert manifest_path(out) == tmp_path / "r.jsonl.manifest.json" == Path(manifest.manifest)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == manifest.sha256 == manifest.content_sha256
    (record,) = list_exports(seed_db)
    assert (record.id, record.kind, record.rule, record.format, record.sha256, record.path) == (
        manifest.export_id, "sft", "reflected", "inst", manifest.sha256, str(out))
    assert record.counts == manifest.counts and record.options["shuffle_seed"] == 3 and record.present
    run = list_runs(seed_db, "export")[0]
    assert run.id == manifest.run_id and run.status == "completed"
    assert run.artifacts == {"path": str(out), "manifest": manifest.manifest, "export_id": manifest.export_id}
    on_disk = json.loads(Path(manifest.manifest).read_text(encoding="utf-8"))
    assert on_disk["options"]["ablation"] == "reflected" and on_disk["counts"]["rows"] == 99
    assert "reflected" in on_disk["rule_text"] and on_disk["created_at"] == record.created_at


def test_shuffle_is_a_seeded_permutation(seed_db, tmp_path):
    plain = write_to(seed_db, SftOptions(), out=tmp_path / "a.jsonl")
    shuffled = [write_to(seed_db, SftOptions(shuffle_seed=7), out=tmp_path / f"s{i}.jsonl") for i in range(2)]
    lines = [Path(m.path).read_text(encoding="utf-8").splitlines() for m in (plain, *shuffled)]
    assert lines[1] == lines[2] != lines[0] and sorted(lines[1]) == sorted(lines[0])
    assert shuffled[0].counts == plain.counts


def test_hf_dataset_holds_the_same_rows_as_the_jsonl(seed_db, tmp_path):
    from datasets import load_from_disk

    jsonl = write_to(seed_db, SftOptions(fmt="messages"), out=tmp_path / "m.jsonl")
    hf = write_to(seed_db, SftOptions(fmt="messages"), hf_dir=tmp_path / "m_ds")
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text(encoding="utf-8").splitlines()]
    assert load_from_disk(str(tmp_path / "m_ds")).to_list() == rows
    assert hf.content_sha256 == jsonl.sha256 and hf.sha256 == dir_sha256(tmp_path / "m_ds")
    assert hf.storage == "hf" and Path(hf.manifest) == tmp_path / "m_ds.manifest.json"
    assert _leftovers(tmp_path) == []


def test_hf_dpo_dataset_keeps_provenance(seed_db, tmp_path):
    from datasets import load_from_disk

    from db.reviews import record
    from exports import write_to

    record(seed_db, "accept", [1, 2], reviewer="ana")
    write_to(seed_db, DpoOptions(), out=tmp_path / "d.jsonl")
    write_to(seed_db, DpoOptions(), hf_dir=tmp_path / "d_ds")
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()]
    assert load_from_disk(str(tmp_path / "d_ds")).to_list() == rows and len(rows) == 2


@pytest.fixture
def copies_db(db, tmp_path):
    """The same pair twice in train (two source ids) and once in dev; one more distinct pair in train."""
    rows = [("a", "A cat sat.", "A cat is sitting.", 1), ("b", "A cat sat.", "A cat is sitting.", 1),
            ("c", "Dogs bark.", "Cats bark.", 0)]
    for split, chosen in (("train", rows), ("dev", rows[:1])):
        path = tmp_path / f"copies_{split}.csv"
        path.write_text("id,premise,hypothesis,label\n" + "".join(f"{i},{p},{h},{g}\n" for i, p, h, g in chosen),
                        encoding="utf-8")
        thoughts = tmp_path / f"copies_{split}_thoughts.jsonl"
        thoughts.write_text("".join(json.dumps({"id": i, "premise": p, "hypothesis": h, "true_label": g,
                                                "thought_process": f"thought {i}", "predicted_label": g}) + "\n"
                                    for i, p, h, g in chosen), encoding="utf-8")
        import_file(db, path)
        import_file(db, thoughts, model="m")
    return db


def test_duplicates_are_written_once_and_cross_split_pairs_reported(copies_db, tmp_path):
    manifest = write_to(copies_db, SftOptions(ablation="unmodified"), out=tmp_path / "c.jsonl")
    ids = dict(copies_db.execute("SELECT split || source_id, id FROM examples").fetchall())
    assert manifest.rows == 2 and manifest.counts["left_out_ids"] == {"duplicate": [ids["trainb"]]}
    assert manifest.counts["cross_split"] == [{"id": ids["traina"], "scope": "copies/train",
                                               "also_in": [f"copies/dev#{ids['deva']}"]}]
    assert manifest.counts["warnings"]
    both = plan(copies_db, SftOptions(ablation="unmodified", splits=("train", "dev")))
    assert both.rows == 2 and both.left_out == {"duplicate": 2}


def test_parse_failed_thoughts_never_go_in(demo_db_path):
    db = open_db(demo_db_path)
    for ablation in ("unmodified", "correct-only", "reflected", "curated"):
        planned = plan(db, SftOptions(ablation=ablation))
        assert planned.left_out.get("parse_failed") == 1, ablation
    db.conn.close()


def test_a_tokenizer_measures_exactly_and_a_bad_one_says_how_to_fix(seed_db, tmp_path):
    from pipeline.tiny_model import build_tokenizer

    folder = tmp_path / "tok"
    build_tokenizer().save_pretrained(folder)
    by_tokenizer = plan(seed_db, SftOptions(ablation="unmodified", max_tokens=400, tokenizer=str(folder)))
    by_estimate = plan(seed_db, SftOptions(ablation="unmodified", max_tokens=400))
    assert by_tokenizer.length_measure == f"tokenizer: {folder}" and by_estimate.length_measure.startswith("estimate")
    assert by_tokenizer.left_out != by_estimate.left_out  # a byte-level toy tokenizer counts differently
    assert by_tokenizer.rows + by_tokenizer.left_out.get("too_long", 0) == 100
    with pytest.raises(TokenizerLoadError, match="local folder"):
        plan(seed_db, SftOptions(tokenizer=str(tmp_path / "nowhere")))


@pytest.mark.parametrize("options, match", [
    (dict(ablation="best"), "--ablation must be one of"),
    (dict(fmt="alpaca"), "--format must be one of"),
    (dict(ablation="reflected", include_bias=True), "--include-bias"),
    (dict(splits=()), "at least one split"),
    (dict(max_tokens=0), "--max-tokens"),
])
def test_bad_options_say_what_to_fix(options, match):
    with pytest.raises(ExportOptionError, match=match):
        SftOptions(**options)


def test_targets_in_the_way_are_refused(seed_db, tmp_path):
    with pytest.raises(ExportTargetError, match="is a directory"):
        write_to(seed_db, SftOptions(), out=tmp_path)
    with pytest.raises(ExportTargetError, match="does not exist"):
        write_to(seed_db, SftOptions(), out=tmp_path / "no" / "x.jsonl")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for overwrite in (False, True):  # a folder of other files is never replaced
        with pytest.raises(ExportTargetError, match="not a datasets folder"):
            write_to(seed_db, SftOptions(), hf_dir=tmp_path / "full", overwrite=overwrite)
    assert (tmp_path / "full" / "x").read_text() == "x"
    assert list_exports(seed_db) == []


def test_an_export_with_nothing_in_it_is_refused(seed_db, tmp_path):
    from exports import write_to

    with pytest.raises(EmptyExportError, match="pending: 100"):
        write_to(seed_db, DpoOptions(), out=tmp_path / "d.jsonl")
    assert not (tmp_path / "d.jsonl").exists() and _leftovers(tmp_path) == []
    assert list_runs(seed_db, "export")[0].status == "failed"


def test_progress_reaches_the_total(seed_db):
    seen: list[tuple[int, int]] = []
    plan(seed_db, SftOptions(), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (100, 100)


def test_the_written_part_is_handed_to_the_kernel_as_it_goes(seed_db, tmp_path, monkeypatch):
    """A large export asks the kernel to write back and drop what it wrote (page cache), with the same bytes."""
    import os

    from exports import sink

    plain = write_to(seed_db, SftOptions(), out=tmp_path / "plain.jsonl")
    advised: list[tuple[int, int, int]] = []
    monkeypatch.setattr("exports.fast.block.BLOCK_EXAMPLES", 10)  # ten writes
    monkeypatch.setattr(sink, "_FLUSH_BYTES", 1000)
    monkeypatch.setattr(sink, "_DROP_BYTES", 5000)
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, start, length, advice: advised.append((start, length, advice)),
                        raising=False)
    dropped = write_to(seed_db, SftOptions(), out=tmp_path / "dropped.jsonl")
    assert Path(dropped.path).read_bytes() == Path(plain.path).read_bytes() and dropped.sha256 == plain.sha256
    assert len(advised) > 3 and all(start == 0 and advice == os.POSIX_FADV_DONTNEED for start, _, advice in advised)
    assert [length for _, length, _ in advised] == sorted(length for _, length, _ in advised)
