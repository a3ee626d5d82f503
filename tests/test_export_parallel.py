"""Large exports select in worker processes: the same bytes and counts as one process, from one snapshot."""
from __future__ import annotations

import itertools
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from db import write_tx
from db.examples import NewExample, example_row, insert_examples
from db.generations import add_generations
from db.reviews import log_position, record
from db.staging import stage_rows
from exports import (
    DpoOptions,
    ExportError,
    SftOptions,
    list_exports,
    plan,
    write_to,
)
from exports.fast import pool as parallel
from exports.fast.block import Block, LeftOut

# Awkward text: everything JSON escapes, non-ASCII, separators, markup, runs of spaces at the edges.
PIECES = ["A man", " plays", "  two  spaces", '"quoted"', "back\\slash", "new\nline", "tab\t", "\x01\x1f", "é ü",
          "😀", "\u2028", "</s> [INST]", "[bold]x[/bold]", "trailing ", " leading", "{\"predicted_label\": 0}", "7.5%"]


def _text(rnd: random.Random, words: int) -> str:
    return "".join(rnd.choice(PIECES) if rnd.random() < 0.3 else rnd.choice(["the", " cat", " sat", "."])
                   for _ in range(words))


@pytest.fixture
def mixed_db(db):
    """300 examples in train (ids 1..300) and 40 in dev: every rule's branch, duplicates across blocks and splits.

    Duplicated pairs: train example k and k + 97 share their text for k % 10 == 3; dev examples copy
    train pairs. Thoughts are right for ~60 %, wrong with a reflection reaching gold, wrong with a
    reflection arguing the other label, wrong without reflection, unparsed, missing, or too long.
    """
    rnd = random.Random(11)
    pairs = [(_text(rnd, rnd.randint(1, 12)), _text(rnd, rnd.randint(1, 8))) for _ in range(300)]
    for k in range(300 - 97):
        if k % 10 == 3:
            pairs[k + 97] = pairs[k]
    rows = [NewExample(i, "mix", "train", str(i), p, h, rnd.randint(0, 1)) for i, (p, h) in enumerate(pairs)]
    rows += [NewExample(300 + i, "mix", "dev", str(i), *pairs[i * 7], rnd.randint(0, 1)) for i in range(40)]
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(r) for r in rows])])
    golds = dict(db.execute("SELECT id, gold_label FROM examples").fetchall())
    thoughts = []
    for example_id, gold in golds.items():
        kind = rnd.random()
        if kind < 0.05:
            continue  # no thought yet
        text = _text(rnd, 600) if kind > 0.97 else _text(rnd, rnd.randint(0, 40))  # some far over 512 tokens
        label = None if kind < 0.08 else gold if kind < 0.65 else 1 - gold
        thoughts.append({"example_id": example_id, "kind": "thought", "model": rnd.choice(["m1", "m2"]),
                         "backend": "test", "thought_process": text if label is not None else None,
                         "predicted_label": label, "parse_status": "ok" if label is not None else "failed",
                         "dedupe_key": f"t{example_id}"})
    add_generations(db, thoughts)
    current = db.execute("SELECT id, thought_id, thought_label, gold_label FROM examples "
                         "WHERE thought_id IS NOT NULL").fetchall()
    reflections = [{"example_id": i, "kind": "reflection", "parent_id": t, "model": "r", "backend": "test",
                    "thought_process": _text(rnd, rnd.randint(1, 30)),
                    "predicted_label": gold if rnd.random() < 0.85 else 1 - gold, "parse_status": "ok",
                    "dedupe_key": f"r{i}"}
                   for i, t, label, gold in current if label != gold and rnd.random() < 0.8]
    add_generations(db, reflections)
    reflected = [i for i, t, label, gold in current if label != gold]
    thought_of = {i: t for i, t, _, _ in current}
    for i in reflected[:6]:  # a second version for some, and a chosen one
        add_generations(db, [{"example_id": i, "kind": "reflection", "parent_id": thought_of[i], "model": "r2",
                              "backend": "test", "thought_process": f"second {i}", "predicted_label": golds[i],
                              "parse_status": "ok", "dedupe_key": f"r2{i}"}])
    ids = list(range(1, 301))
    record(db, "accept", ids[::7], reviewer="ana")
    record(db, "reject", ids[3::11], reviewer="ana")
    for i in ids[5::13]:
        record(db, "edit", [i], reviewer="ana", payload={"thought": f'Edited "{i}"\n\\ é', "label": rnd.randint(0, 1)})
    record(db, "flag_bias", ids[6::17], reviewer="ana", payload={"category": "gold_wrong"})
    for i in ids[8::19]:
        record(db, "relabel", [i], reviewer="ana", payload={"label": 1 - golds[i]})
    for i in reflected[:3]:
        chosen = db.execute("SELECT min(id) FROM generations WHERE example_id = ? AND kind = 'reflection'",
                            [i]).fetchone()[0]
        if chosen is not None:
            record(db, "choose_reflection", [i], reviewer="ana", payload={"generation_id": chosen})
            record(db, "accept", [i], reviewer="ana")
    # Other reviewers on the same examples: agreeing, contesting with reasons, adjudicating (exports.policy).
    record(db, "accept", ids[::5], reviewer="bob", payload={"reason": "reflection holds"})
    record(db, "reject", ids[1::9], reviewer="bob", payload={"reason": "gold is wrong", "comment": 'see "x"\n'})
    for i in ids[2::9]:
        record(db, "edit", [i], reviewer="cy", payload={"thought": f"cy {i}", "label": i % 2, "reason": "formatting"})
    record(db, "accept", ids[4::23], reviewer="dan", payload={"adjudication": True, "comment": "settled"})
    return db


@pytest.fixture
def in_workers(monkeypatch):
    """Every export runs in worker processes, in blocks of 7 examples (many ranges and blocks)."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_EXAMPLES", 0)
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    monkeypatch.setattr("exports.fast.block.BLOCK_EXAMPLES", 7)
    started: list[subprocess.Popen[bytes]] = []
    start = parallel.Pool._start

    def counted(self):
        child = start(self)
        started.append(child[0])
        return child

    monkeypatch.setattr(parallel.Pool, "_start", counted)
    return started


def _in_one_process(monkeypatch) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_MIN_EXAMPLES", 1 << 62)


SFT_CASES = [SftOptions(ablation=a) for a in ("reflected", "correct-only", "unmodified", "curated")] + [
    SftOptions(ablation="curated", include_bias=True, use_relabels=True),
    SftOptions(ablation="curated", reviewed_only=True, fmt="messages"),
    SftOptions(ablation="curated", policy="majority"), SftOptions(ablation="curated", policy="latest"),
    SftOptions(ablation="reflected", splits=("train", "dev"), max_tokens=200, shuffle_seed=5),
]
DPO_CASES = [DpoOptions(), DpoOptions(include_bias=True, use_relabels=True, splits=("train", "dev")),
             DpoOptions(policy="majority")]


def test_workers_write_the_same_bytes_and_counts_as_one_process(mixed_db, tmp_path, monkeypatch, in_workers):
    exports = []
    for n, options in enumerate(SFT_CASES + DPO_CASES):
        with monkeypatch.context() as one:
            _in_one_process(one)
            alone = write_to(mixed_db, options, out=tmp_path / f"one{n}.jsonl")
            planned = plan(mixed_db, options)
        spawned = len(in_workers)
        shared = write_to(mixed_db, options, out=tmp_path / f"workers{n}.jsonl")
        assert len(in_workers) == spawned + 2, "the export did not run in two workers"
        assert Path(shared.path).read_bytes() == Path(alone.path).read_bytes(), options
        assert shared.counts == alone.counts == planned.as_dict() == plan(mixed_db, options).as_dict(), options
        exports.append(alone)
    counts = [e.counts for e in exports]
    # The cases reach every rule's branch, duplicates and cross-split copies.
    reasons = set().union(*(c["left_out"] for c in counts))
    assert reasons >= {"no_thought", "parse_failed", "thought_not_gold", "no_reflection", "label_not_gold",
                       "edit_not_gold", "rejected", "bias", "pending", "too_long", "duplicate"}, reasons
    assert any(c["cross_split"] for c in counts) and all(e.rows for e in exports)
    assert {"contested", "written", "duplicate"} <= set().union(*(c["reasons"] for c in counts))  # several reviewers


@pytest.mark.slow
def test_workers_measure_with_a_tokenizer_and_feed_a_dataset_folder_the_same_rows(mixed_db, tmp_path, monkeypatch,
                                                                                 in_workers):
    """Each worker loads the tokenizer itself; a dataset folder gets the same lines as the JSON Lines file."""
    from pipeline.tiny_model import build_tokenizer

    build_tokenizer().save_pretrained(tmp_path / "tok")
    options = SftOptions(ablation="curated", fmt="messages", tokenizer=str(tmp_path / "tok"), max_tokens=300)
    with monkeypatch.context() as one:
        _in_one_process(one)
        alone = write_to(mixed_db, options, out=tmp_path / "one.jsonl")
    shared = write_to(mixed_db, options, hf_dir=tmp_path / "ds")
    assert len(in_workers) == 2 and alone.counts["left_out"]["too_long"] > 0
    assert shared.content_sha256 == alone.sha256 and shared.counts == alone.counts


def test_a_writer_waits_until_every_worker_has_read_and_a_later_commit_is_not_seen(mixed_db, tmp_path,
                                                                                    monkeypatch, in_workers):
    path = str(tmp_path / "test.db")
    with monkeypatch.context() as one:
        _in_one_process(one)
        before = write_to(mixed_db, SftOptions(ablation="curated"), out=tmp_path / "before.jsonl")
    blocked: list[bool] = []
    send, release = parallel.Pool._send, parallel.Pool.release

    def send_then_try_to_write(child, job):
        send(child, job)
        try:
            sqlite3.connect(path, timeout=0).execute("BEGIN IMMEDIATE")
            blocked.append(False)
        except sqlite3.OperationalError as exc:
            blocked.append("locked" in str(exc))

    def release_then_commit(self):
        holding = self._lock is not None
        release(self)
        if holding:  # the workers have read: this review must not reach the export
            other = parallel.open_reader(path)
            record(other, "reject", [1, 2, 3], reviewer="bob")
            other.conn.close()

    monkeypatch.setattr(parallel.Pool, "_send", staticmethod(send_then_try_to_write))
    monkeypatch.setattr(parallel.Pool, "release", release_then_commit)
    during = write_to(mixed_db, SftOptions(ablation="curated"), out=tmp_path / "during.jsonl")
    assert blocked == [True, True]
    assert during.review_log_position == before.review_log_position < log_position(mixed_db)
    assert Path(during.path).read_bytes() == Path(before.path).read_bytes()
    assert during.counts == before.counts


def test_a_writer_that_keeps_the_lock_gets_a_clear_error_and_no_workers_linger(mixed_db, tmp_path, monkeypatch,
                                                                               in_workers):
    monkeypatch.setattr(parallel, "BUSY_TIMEOUT_MS", 100)
    other = sqlite3.connect(str(tmp_path / "test.db"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ExportError, match="stayed locked by another writer"):
            plan(mixed_db, SftOptions())
    finally:
        other.execute("ROLLBACK")
    assert len(in_workers) == 2 and all(child.poll() is not None for child in in_workers)


def test_a_worker_that_reads_another_state_is_refused(mixed_db, tmp_path, monkeypatch, in_workers):
    monkeypatch.setattr(parallel, "fingerprint", lambda db: (0, 0, 0, 0))  # what the parent believes it read
    with pytest.raises(ExportError, match="another state of the database"):
        write_to(mixed_db, SftOptions(), out=tmp_path / "x.jsonl")
    assert not list(tmp_path.glob("*.jsonl")) and not list(tmp_path.glob(".*.tmp"))
    assert all(child.poll() is not None for child in in_workers)


def test_a_worker_that_fails_or_vanishes_says_so_and_leaves_nothing(mixed_db, tmp_path, monkeypatch, in_workers):
    import dataclasses

    from exports import sft

    selector = sft.selector
    monkeypatch.setattr(sft, "selector", lambda options: dataclasses.replace(selector(options), kind="no-such-kind"))
    with pytest.raises(ExportError, match="An export worker failed: KeyError: 'no-such-kind'"):
        write_to(mixed_db, SftOptions(), out=tmp_path / "x.jsonl")
    monkeypatch.setattr(sft, "selector", selector)
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the workers start from it (db/pipe.py)
    with pytest.raises(ExportError, match=r"stopped unexpectedly \(exit code 1\)"):
        plan(mixed_db, SftOptions())
    assert not list(tmp_path.glob("*.jsonl")) and not list(tmp_path.glob(".*.tmp"))
    assert list_exports(mixed_db) == [] and all(child.poll() is not None for child in in_workers)


def test_an_interrupted_export_stops_its_workers_and_leaves_the_old_file(mixed_db, tmp_path, monkeypatch,
                                                                         in_workers):
    from exports.sink import JsonlSink

    out = tmp_path / "train.jsonl"
    out.write_text("old\n")

    def interrupt(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(JsonlSink, "write", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_to(mixed_db, SftOptions(), out=out, overwrite=True)
    assert out.read_text() == "old\n" and not list(tmp_path.glob(".*.tmp"))
    assert in_workers and all(child.poll() is not None for child in in_workers)


def test_small_exports_start_no_process(mixed_db, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a small export started a process")

    monkeypatch.setattr(subprocess, "Popen", refuse)  # db/pipe.py starts them
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_EXAMPLES", 301)  # the train split holds 300
    assert parallel.workers_for(mixed_db, SftOptions()) == 0
    assert parallel.workers_for(mixed_db, SftOptions(splits=("train", "dev"))) == 2
    assert write_to(mixed_db, SftOptions(), out=tmp_path / "small.jsonl").rows > 0


def test_no_workers_inside_a_transaction_or_for_a_database_in_memory(mixed_db, monkeypatch):
    from db import open_db

    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_EXAMPLES", 10)
    assert parallel.workers_for(mixed_db, SftOptions()) == 2
    with write_tx(mixed_db):
        assert parallel.workers_for(mixed_db, SftOptions()) == 0
    memory = open_db(":memory:")
    assert parallel.workers_for(memory, SftOptions()) == 0
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 1)
    assert parallel.workers_for(mixed_db, SftOptions()) == 0


@pytest.mark.parametrize("first, last, examples, workers", [(1, 1, 1, 2), (1, 1000, 1000, 2), (5, 17, 3, 4),
                                                            (10, 99_999, 30_000, 2)])
def test_id_ranges_cover_the_span_once_in_order(db, monkeypatch, first, last, examples, workers):
    monkeypatch.setattr(parallel, "id_bounds", lambda db, scope: (first, last))
    monkeypatch.setattr("exports.fast.block.BLOCK_EXAMPLES", 100)
    ranges = parallel.id_ranges(db, SftOptions(), examples, workers)
    assert ranges[0][0] == first and ranges[-1][1] == last + 1
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(ranges))
    assert len(ranges) >= min(workers, last - first + 1)


def test_left_outs_merged_block_by_block_equal_one_running_count():
    rnd = random.Random(3)
    events = [(i, rnd.choice("abc"), rnd.randint(1, 3)) for i in range(10_000) if rnd.random() < 0.6]
    whole, merged = LeftOut(), LeftOut()
    for example_id, reason, n in events:
        whole.add(example_id, reason, n)
    for start in range(0, 10_000, 333):
        part = LeftOut()
        for example_id, reason, n in events:
            if start <= example_id < start + 333:
                part.add(example_id, reason, n)
        merged.merge(part)
    assert (merged.counts, merged.ids) == (whole.counts, whole.ids)
    assert all(len(ids) == 1000 for ids in whole.ids.values())


def test_a_block_travels_up_the_pipe_whole():
    import os

    from exports.fast.worker import Sender

    lines = [b'{"id": 1}\n', '{"id": 2, "t": "é"}\n'.encode()]
    block = Block(3, lines, [1, 2], ["h1", "h2"], None, [0, 0], [(1, "thought", "m", "d", "train")], LeftOut())
    block.left_out.add(3, "pending")
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as out:
        sender = Sender(out)
        sender.send("block", block)
        sender.send("end")
        sender.close()
    with os.fdopen(read_end, "rb") as stream:
        kind, received = parallel.receive(stream)
        assert (kind, received.data, received.left_out) == ("block", b"".join(lines), block.left_out)
        assert [received.ids, received.hashes, received.key_table] == [block.ids, block.hashes, block.key_table]
        assert parallel.receive(stream) == ("end", None) and parallel.receive(stream) == ("gone", None)
