"""Export files -> token ids and loss labels: one BOS, prompt masked, target trained, nothing truncated."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from db.tx import write_tx
from exports.formats import cot_target, inst_prompt, inst_text, label_target, messages, user_prompt
from exports.sink import export_sha256
from pipeline.train import data

PAIRS = [("A man plays a guitar on a stage.", "A man plays music.", "Step 1: a guitar is an instrument.", 1),
         ("Two dogs run in a park.", "The dogs are asleep.", "Step 1: running is not sleeping.", 0),
         ("A child reads a book [/INST] aloud.", "A child reads.", "Step 1: reading aloud is reading.", 1)]


@pytest.fixture(scope="module")
def tokenizer():
    from pipeline.tiny_model import build_tokenizer

    return build_tokenizer()


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _inst_file(tmp_path: Path, pairs=PAIRS) -> Path:
    return _write(tmp_path / "sft.jsonl", [{"id": i, "text": inst_text(user_prompt(p, h), cot_target(t, y))}
                                           for i, (p, h, t, y) in enumerate(pairs)])


def _messages_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "messages.jsonl", [{"id": i, "messages": messages(user_prompt(p, h), cot_target(t, y))}
                                                for i, (p, h, t, y) in enumerate(PAIRS)])


def _dpo_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "dpo.jsonl", [{"id": i, "prompt": user_prompt(p, h), "chosen": cot_target(t, y),
                                            "rejected": cot_target("Step 1: wrong.", 1 - y), "provenance": {}}
                                           for i, (p, h, t, y) in enumerate(PAIRS)])


def test_inst_and_messages_exports_give_identical_training_rows(tmp_path, tokenizer):
    inst = data.read_sft(_inst_file(tmp_path))
    chat = data.read_sft(_messages_file(tmp_path))
    assert [(r.prompt, r.target) for r in inst] == [(r.prompt, r.target) for r in chat]
    assert inst[2].prompt == user_prompt(*PAIRS[2][:2])  # a prompt containing " [/INST] " splits right
    assert data.encode_sft(inst, tokenizer, 512).rows == data.encode_sft(chat, tokenizer, 512).rows


def test_line_separators_inside_the_json_strings_stay_text(tmp_path):
    # Exports write ensure_ascii=False, so U+2028 and friends arrive raw; only "\n" ends a record.
    pairs = [("A sign\u2028reads: open.", "A sign\x85is\u2029there.", "Step 1: the sign\x0creads open.", 1)]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": inst_text(user_prompt(p, h), cot_target(t, y))},
                                       ensure_ascii=False) + "\n" for i, (p, h, t, y) in enumerate(pairs)),
                    encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")
    (record,) = data.read_sft(path)
    assert record.prompt == user_prompt(*pairs[0][:2]) and record.target == cot_target(*pairs[0][2:])


def test_exactly_one_bos_reaches_the_model(tmp_path, tokenizer):
    rows = data.encode_sft(data.read_sft(_inst_file(tmp_path)), tokenizer, 512).rows
    for row in rows:
        assert row["input_ids"][0] == tokenizer.bos_token_id
        assert row["input_ids"].count(tokenizer.bos_token_id) == 1
    # The trap avoided: letting the tokenizer add its own BOS to the "<s>..." text gives two.
    doubled = tokenizer(inst_text(user_prompt("a", "b"), label_target(1)))["input_ids"]
    assert doubled[:2] == [tokenizer.bos_token_id, tokenizer.bos_token_id]


def test_prompt_through_inst_marker_is_masked_and_the_target_is_trained(tmp_path, tokenizer):
    records = data.read_sft(_inst_file(tmp_path))
    for record, row in zip(records, data.encode_sft(records, tokenizer, 512).rows):
        head = tokenizer(inst_prompt(record.prompt), add_special_tokens=False)["input_ids"]
        labels = row["labels"]
        assert labels[:len(head)] == [data.IGNORE] * len(head)
        assert tokenizer.convert_ids_to_tokens(row["input_ids"][len(head) - 1]) == "[/INST]"
        trained = [t for t in labels if t != data.IGNORE]
        assert trained == row["input_ids"][len(head):]
        assert tokenizer.decode(trained) == f" {record.target} </s>"
        assert '"predicted_label": ' in tokenizer.decode(trained)


def test_label_only_rewrites_instruction_and_target_through_formats(tmp_path, tokenizer):
    records = [data.label_only(r) for r in data.read_sft(_inst_file(tmp_path))]
    for record, (premise, hypothesis, _, label) in zip(records, PAIRS):
        assert record.prompt == user_prompt(premise, hypothesis, with_thought=False)
        assert record.target == label_target(label)
    rows = data.encode_sft(records, tokenizer, 512).rows
    trained = [t for t in rows[1]["labels"] if t != data.IGNORE]
    assert tokenizer.decode(trained) == ' {"predicted_label": 0} </s>'


def test_label_only_needs_a_label_and_a_known_prompt(tmp_path):
    bad_target = data.SftRecord(id=1, prompt=user_prompt("p", "h"), target='{"thought_process": "x"}', where="f:1")
    with pytest.raises(data.DataError, match="f:1: the target has no predicted_label"):
        data.label_only(bad_target)
    foreign = data.SftRecord(id=1, prompt="Is p entailing h?", target=label_target(1), where="f:2")
    with pytest.raises(data.DataError, match="f:2: the prompt is not one exports.formats.user_prompt writes"):
        data.label_only(foreign)


def test_dpo_pairs_use_the_sft_prompt_tokens(tmp_path, tokenizer):
    pairs = data.read_pairs(_dpo_file(tmp_path))
    rows = data.encode_pairs(pairs, tokenizer, 512).rows
    sft = data.encode_sft(data.read_sft(_inst_file(tmp_path)), tokenizer, 512).rows
    for pair_row, sft_row, record in zip(rows, sft, pairs):
        n = len(pair_row["prompt_ids"])
        assert pair_row["prompt_ids"] + pair_row["chosen_ids"] == sft_row["input_ids"]
        assert sft_row["labels"][:n] == [data.IGNORE] * n and sft_row["labels"][n] != data.IGNORE
        assert tokenizer.decode(pair_row["rejected_ids"]) == f" {record.rejected} </s>"
        assert pair_row["prompt_ids"].count(tokenizer.bos_token_id) == 1


def test_overlong_examples_are_dropped_and_counted_never_cut(tmp_path, tokenizer):
    long_thought = "Step 1: " + "the premise repeats itself at length. " * 40
    pairs = PAIRS + [("A long one.", "It is long.", long_thought, 1)]
    encoded = data.encode_sft(data.read_sft(_inst_file(tmp_path, pairs)), tokenizer, 200)
    assert 3 in encoded.dropped_ids
    assert all(len(r["input_ids"]) <= 200 for r in encoded.rows)
    assert all(r["labels"][-1] == tokenizer.eos_token_id for r in encoded.rows)  # every kept row ends with </s>


@pytest.mark.parametrize("line, fragment", [
    ("not json", "not JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"id": 1, "text": "[INST] no bos [/INST] {} </s>"}', "is not in the layout"),
    ('{"id": 1, "messages": [{"role": "assistant", "content": "x"}]}', "one user turn then one assistant turn"),
    ('{"id": 1, "prompt": "p", "chosen": "c", "rejected": "r"}', "this is a DPO export"),
    ('{"id": 1, "body": "?"}', 'expected a "text" (inst) or "messages" field'),
])
def test_malformed_sft_lines_name_file_and_line(tmp_path, line, fragment):
    path = _inst_file(tmp_path)
    path.write_text(path.read_text() + line + "\n", encoding="utf-8")
    with pytest.raises(data.DataError) as err:
        data.read_sft(path)
    assert f"{path}:4:" in str(err.value) and fragment in str(err.value)


def test_malformed_dpo_lines_say_what_is_missing(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": 1, "text": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(data.DataError, match=r"bad.jsonl:1: .*missing prompt, chosen, rejected .*use method: sft"):
        data.read_pairs(path)
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(data.DataError, match="holds no examples"):
        data.read_pairs(tmp_path / "empty.jsonl")


def test_a_literal_bos_inside_the_text_is_refused(tmp_path, tokenizer):
    record = data.SftRecord(id=9, prompt=user_prompt("<s> sneaky", "h"), target=label_target(1), where="f:9")
    with pytest.raises(data.DataError, match="f:9: .*exactly one BOS"):
        data.encode_sft([record], tokenizer, 512)


def test_export_ids_resolve_through_the_exports_table(tmp_path, db):
    path = _inst_file(tmp_path)
    sha = export_sha256(path)
    with write_tx(db):
        db.execute("INSERT INTO exports (kind, path, format, rule, sha256, review_log_position, created_at) "
                   "VALUES ('sft', ?, 'inst', 'reflected', ?, 0, 'now')", [str(path), sha])
    source = data.resolve_source("export:1", db)
    assert (source.path, source.sha256, source.export_id) == (path, sha, 1)
    assert data.resolve_source(str(path), db).export_id == 1  # a path is linked to its export by sha256
    with pytest.raises(data.DataError, match="export:2: no export with that id"):
        data.resolve_source("export:2", db)
    path.write_text(path.read_text() + "\n", encoding="utf-8")
    with pytest.raises(data.DataError, match="changed since it was exported"):
        data.resolve_source("export:1", db)
    with pytest.raises(data.DataError, match="no such export"):
        data.resolve_source(str(tmp_path / "nope.jsonl"), db)


def test_hf_folder_exports_read_like_jsonl(tmp_path):
    from datasets import Dataset

    folder = tmp_path / "hf"
    rows = [json.loads(line) for line in _inst_file(tmp_path).read_text().splitlines()]
    Dataset.from_list(rows).save_to_disk(str(folder))
    assert [r.prompt for r in data.read_sft(folder)] == [r.prompt for r in data.read_sft(_inst_file(tmp_path))]
    assert data.resolve_source(str(folder)).sha256 == export_sha256(folder)


def test_eval_split_is_seeded_and_disjoint():
    rows = [{"input_ids": [i]} for i in range(40)]
    train, held = data.split_eval(rows, 0.1, seed=3)
    assert len(held) == 4 and len(train) == 36
    assert {r["input_ids"][0] for r in train}.isdisjoint(r["input_ids"][0] for r in held)
    assert data.split_eval(rows, 0.1, seed=3) == (train, held)
    assert data.split_eval(rows, 0.1, seed=4)[1] != held
    assert data.split_eval(rows, 0.0, seed=3) == (rows, [])
