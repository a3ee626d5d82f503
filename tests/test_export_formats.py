"""Byte-level pins of the export layouts, and the compiled line layout against its definition."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from db.reviews import record
from exports import DpoOptions, SftOptions, write_to
from exports.fast.sft_layout import SftLines
from exports.formats import INSTRUCTION_COT
from exports.length import estimate_tokens
from exports.lines import sft_line, sft_text
from pipeline.importing import import_file

INSTR = json.dumps(INSTRUCTION_COT, ensure_ascii=False)[1:-1]  # the instruction as it stands in a JSON string


@pytest.fixture
def tiny_db(db, tmp_path: Path):
    """Two examples with awkward text: quotes, a newline, non-ASCII, markup-like brackets, a backslash."""
    (tmp_path / "tiny.csv").write_text(
        'id,premise,hypothesis,label\n0,"He said ""hi"" — café","Line one\nline two",1\n'
        '1,[bold]not markup[/bold],back\\slash,0\n', encoding="utf-8")
    (tmp_path / "tiny_thoughts.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": 0, "premise": 'He said "hi" — café', "hypothesis": "Line one\nline two",
         "thought_process": 'Step 1: "quoted"\nStep 2: ok', "predicted_label": 1, "true_label": 1},
        {"id": 1, "premise": "[bold]not markup[/bold]", "hypothesis": "back\\slash",
         "thought_process": "wrong one", "predicted_label": 1, "true_label": 0},
    ]) + "\n", encoding="utf-8")
    (tmp_path / "tiny_reflections.jsonl").write_text(json.dumps({
        "id": 1, "premise": "[bold]not markup[/bold]", "hypothesis": "back\\slash", "thought_process": "wrong one",
        "predicted_label": 0, "true_label": 0, "error_analysis": "missed it",
        "improved_thought_process": "right: it's 0"}) + "\n", encoding="utf-8")
    import_file(db, tmp_path / "tiny.csv")
    import_file(db, tmp_path / "tiny_thoughts.jsonl", model="th")
    import_file(db, tmp_path / "tiny_reflections.jsonl", model="refl")
    return db


ROW1_INST = (r'{"id": 1, "dataset": "tiny", "source_id": "0", "text": "<s>[INST] Premise: He said \"hi\" — café\nHypothesis: Line one\nline two\n\n'
             + INSTR + r' [/INST] {\"thought_process\": \"Step 1: \\\"quoted\\\"\\nStep 2: ok\", '
             r'\"predicted_label\": 1} </s>"}' + "\n")
ROW2_INST = (r'{"id": 2, "dataset": "tiny", "source_id": "1", "text": "<s>[INST] Premise: [bold]not markup[/bold]\nHypothesis: back\\slash\n\n'
             + INSTR + r' [/INST] {\"thought_process\": \"right: it' + "'" + r's 0\", \"predicted_label\": 0} '
             r'</s>"}' + "\n")
ROW1_MESSAGES = (r'{"id": 1, "dataset": "tiny", "source_id": "0", "messages": [{"role": "user", "content": "Premise: He said \"hi\" — café\n'
                 r'Hypothesis: Line one\nline two\n\n' + INSTR + r'"}, {"role": "assistant", "content": '
                 r'"{\"thought_process\": \"Step 1: \\\"quoted\\\"\\nStep 2: ok\", \"predicted_label\": 1}"}]}' + "\n")


def test_inst_lines_are_pinned_byte_for_byte(tiny_db, tmp_path):
    out = tmp_path / "sft.jsonl"
    write_to(tiny_db, SftOptions(ablation="reflected"), out=out)
    assert out.read_bytes() == (ROW1_INST + ROW2_INST).encode("utf-8")


def test_messages_lines_are_pinned_byte_for_byte(tiny_db, tmp_path):
    out = tmp_path / "sft.jsonl"
    write_to(tiny_db, SftOptions(ablation="correct-only", fmt="messages"), out=out)
    assert out.read_bytes() == ROW1_MESSAGES.encode("utf-8")
    (record_,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [m["role"] for m in record_["messages"]] == ["user", "assistant"]
    assert json.loads(record_["messages"][1]["content"]) == {"thought_process": 'Step 1: "quoted"\nStep 2: ok',
                                                             "predicted_label": 1}


def test_dpo_lines_are_pinned_byte_for_byte(tiny_db, tmp_path):
    record(tiny_db, "accept", [2], reviewer="ana")
    out = tmp_path / "dpo.jsonl"
    write_to(tiny_db, DpoOptions(), out=out)
    expected = (
        r'{"id": 2, "dataset": "tiny", "source_id": "1", "prompt": "Premise: [bold]not markup[/bold]\nHypothesis: back\\slash\n\n' + INSTR + r'", '
        r'"chosen": "{\"thought_process\": \"right: it' + "'" + r's 0\", \"predicted_label\": 0}", '
        r'"rejected": "{\"thought_process\": \"wrong one\", \"predicted_label\": 1}", '
        r'"provenance": {"dataset": "tiny", "split": "train", "source_id": "1", "gold_label": 0, "target_label": 0, '
        r'"review_status": "accepted", "reviewer": "ana", "review_event": 1, "chosen_source": "reflection", '
        r'"chosen_generation_id": 3, "chosen_model": "refl", "rejected_source": "thought", '
        r'"rejected_generation_id": 2, "rejected_model": "th", "decisions": [{"reviewer": "ana", "decision": "accept", '
        r'"reason": null, "comment": null, "adjudication": false}]}}' + "\n")
    assert out.read_bytes() == expected.encode("utf-8")


def test_the_uncompiled_layout_writes_the_same_bytes(tiny_db, tmp_path, monkeypatch):
    fast, slow = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    write_to(tiny_db, SftOptions(ablation="reflected"), out=fast)
    slow_layout = SftLines("inst")
    slow_layout.compiled = False
    monkeypatch.setattr("exports.sft.sft_lines", lambda fmt: slow_layout)
    write_to(tiny_db, SftOptions(ablation="reflected"), out=slow)
    assert fast.read_bytes() == slow.read_bytes()


@pytest.mark.parametrize("fmt", ["inst", "messages"])
def test_compiled_lines_and_estimates_equal_their_definitions_on_awkward_text(fmt):
    layout = SftLines(fmt)
    assert layout.compiled
    rnd = random.Random(5)
    alphabet = ["a", "Q", " ", "  ", '"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "😀", "7", ".", "{", "</s>",
                "[INST]", "\u2028", "\ue000"]
    for _ in range(3000):
        dataset, source_id, premise, hypothesis, thought = (
            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10))) for _ in range(5))
        label = rnd.randint(0, 1)
        line, estimate = layout.line_and_estimate(42, dataset, source_id, premise, hypothesis, thought, label)
        assert line == sft_line(42, dataset, source_id, premise, hypothesis, thought, label, fmt)
        assert estimate == estimate_tokens(sft_text(premise, hypothesis, thought, label))


def test_lines_are_what_json_dumps_writes():
    line = sft_line(3, 'd"s', "07\n", "p", "h", 'x"\n', 1, "inst")
    assert line.endswith("}\n") and line.count("\n") == 1
    assert line == json.dumps(json.loads(line), ensure_ascii=False) + "\n"
    assert json.loads(line)["dataset"] == 'd"s' and json.loads(line)["source_id"] == "07\n"
    assert list(json.loads(line)) == ["id", "dataset", "source_id", "text"]


@pytest.mark.parametrize("fmt", ["inst", "messages"])
def test_compiled_lines_decide_the_length_limit_exactly(fmt):
    """Given a limit, repeated spaces are counted only where they could decide: the decision never changes."""
    layout = SftLines(fmt)
    rnd = random.Random(8)
    alphabet = ["word", "Word ", " ", "  ", "   ", '"', "\\", "\n", "é", "😀", "7", ".", "\u2028", "x" * 40]
    for _ in range(2000):
        premise, hypothesis, thought = ("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
                                        for _ in range(3))
        label, example_id = rnd.randint(0, 1), rnd.choice([1, 42, 918_273_645, 10**12])
        names = (rnd.choice(["rte", 'd"s', "é\n"]), str(example_id))
        exact = estimate_tokens(sft_text(premise, hypothesis, thought, label))
        expected = sft_line(example_id, *names, premise, hypothesis, thought, label, fmt).encode()
        assert layout.encoded(example_id, *names, premise, hypothesis, thought, label) == (expected, exact)
        for limit in (exact - 30, exact - 1, exact, exact + 1, exact + 30):
            line, bound = layout.encoded(example_id, *names, premise, hypothesis, thought, label, limit)
            assert line == expected and (bound <= limit) == (exact <= limit), (premise, hypothesis, thought, limit)


def test_training_reads_every_layout_with_the_dataset_and_source_id(tiny_db, tmp_path):
    """Rows carry the example's dataset and its id in the user's file; training reads them as before."""
    from pipeline.train.data import read_pairs, read_sft

    record(tiny_db, "accept", [2], reviewer="ana")
    for fmt in ("inst", "messages"):
        out = tmp_path / f"{fmt}.jsonl"
        write_to(tiny_db, SftOptions(ablation="reflected", fmt=fmt), out=out)
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [(r["dataset"], r["source_id"]) for r in rows] == [("tiny", "0"), ("tiny", "1")]
        assert [r.id for r in read_sft(out)] == [1, 2]
    write_to(tiny_db, SftOptions(ablation="reflected"), hf_dir=tmp_path / "ds")
    assert [r.id for r in read_sft(tmp_path / "ds")] == [1, 2]
    write_to(tiny_db, DpoOptions(), out=tmp_path / "dpo.jsonl")
    (pair,) = read_pairs(tmp_path / "dpo.jsonl")
    assert pair.id == 2 and json.loads(pair.chosen)["predicted_label"] == 0
