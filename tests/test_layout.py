"""exports.layout: one prompt layout per model, the same for training, evaluation and the label scorer.

The tiny random Mistral keeps the paper's [INST] layout byte for byte (token ids pinned as they were before
the layout existed); SmolLM2 (ChatML, BOS <|im_start|>) uses its own chat template.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from exports import formats
from exports.layout import CHAT, MISTRAL, LayoutError, layout_for
from pipeline.evaluate.prompts import forced_label_prefix, prompt_ids, prompt_text, prompt_version
from pipeline.train import data
from pipeline.train.label_scores import label_slots
from pipeline.train.model import load_tokenizer

PAIR = ("A cat sits.", "An animal sits.")


def _records() -> list[data.SftRecord]:
    return [data.SftRecord(i, formats.user_prompt(f"A cat {i} sits.", "An animal sits.", with_thought=i % 2 == 0),
                           formats.cot_target("Step 1: x.", i % 2) if i % 2 == 0 else formats.label_target(1), "x")
            for i in range(4)]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def smol(smollm2_dir):
    return load_tokenizer(str(smollm2_dir))


def test_the_tiny_mistral_keeps_the_inst_layout_byte_for_byte(tiny):
    layout = layout_for(tiny)
    assert layout.kind == MISTRAL and layout.stop_ids == (tiny.eos_token_id,)
    records = _records()
    rows = data.encode_sft(records, tiny, 512).rows
    pairs = [data.PairRecord(1, records[0].prompt, formats.cot_target("a", 1), formats.cot_target("b", 0), "x")]
    evals = [prompt_ids(layout, [PAIR], with_thought=w)[0] for w in (True, False)]
    # Pinned from data.encode_sft, encode_pairs and prompts.encode_prompt as they were before exports.layout.
    assert _digest(rows) == "7a1954a40fa68467"
    assert _digest(data.encode_pairs(pairs, tiny, 512).rows) == "e83c79df3e6c2eb0"
    assert _digest(evals) == "41c99c57fad95e21"
    assert [prompt_version(with_thought=w, shuffle_thoughts=s, layout=layout)
            for w, s in ((True, False), (False, False), (True, True))] == [
        "c0b17abe4d9aa67f", "4be2ea327de13570", "e295a124b1cf1044"]
    for record, row in zip(records, rows):  # and the same as the [INST] text of exports.formats
        assert row["input_ids"] == data.encode_texts(tiny, [formats.inst_text(record.prompt, record.target)])[0]
    assert prompt_text(*PAIR, layout=layout) == prompt_text(*PAIR) == formats.inst_prompt(formats.user_prompt(*PAIR))


def test_mistral_family_is_known_by_model_type_token_or_template(tiny, tmp_path, smol):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mistral"}), encoding="utf-8")
    assert layout_for(smol, tmp_path).kind == MISTRAL  # model_type decides, whatever the tokenizer
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path)}))
    assert layout_for(smol, adapter).kind == MISTRAL  # an adapter folder: its base's model_type
    assert layout_for(tiny, tmp_path / "nowhere").kind == MISTRAL  # the [INST] control token


def test_a_model_without_chat_template_is_refused_with_the_fix(smol, tmp_path, monkeypatch):
    monkeypatch.setattr(smol, "chat_template", None)
    with pytest.raises(LayoutError, match=f"{tmp_path}: the tokenizer has no chat template.*add one"):
        layout_for(smol, tmp_path)


def test_smollm2_trains_on_its_own_chat_template(smol):
    layout = layout_for(smol)
    assert layout.kind == CHAT and layout.answer_prefix == "" and layout.end_of_turn == "<|im_end|>"
    assert layout.stop_ids == (smol.convert_tokens_to_ids("<|im_end|>"),)
    records = _records()
    encoded = data.encode_sft(records, smol, 512)
    heads = layout.prompt_ids([r.prompt for r in records])
    end = smol("<|im_end|>", add_special_tokens=False)["input_ids"]
    for record, head, row in zip(records, heads, encoded.rows):
        full = row["input_ids"]
        assert full[:len(head)] == head and row["labels"][:len(head)] == [-100] * len(head)
        trained = row["labels"][len(head):]
        assert trained == full[len(head):] and smol.decode(trained) == record.target + "<|im_end|>"
        assert trained[-len(end):] == end
        text = smol.decode(head)
        assert text.count("<|im_start|>assistant\n") == 1 and text.endswith("<|im_start|>assistant\n")
        assert full[:2] != [smol.bos_token_id] * 2 and not text.startswith("<|im_start|><|im_start|>")
        assert "[INST]" not in smol.decode(full)


def test_smollm2_evaluation_prompts_exactly_as_training(smol):
    layout = layout_for(smol)
    record = data.SftRecord(0, formats.user_prompt(*PAIR), formats.cot_target("t", 1), "x")
    head = layout.prompt_ids([record.prompt])[0]
    assert prompt_ids(layout, [PAIR], with_thought=True) == [head]
    assert data.encode_sft([record], smol, 512).rows[0]["labels"].count(-100) == len(head)
    assert smol.decode(head) == prompt_text(*PAIR, layout=layout)
    forced = forced_label_prefix("t", layout)
    assert forced == formats.cot_target("t", 1)[:-2]  # the answer starts right after the generation prompt
    assert prompt_ids(layout, [PAIR], with_thought=True, forced=[forced])[0][:len(head)] == head
    assert prompt_version(with_thought=True, shuffle_thoughts=False, layout=layout) != prompt_version(
        with_thought=True, shuffle_thoughts=False)


def test_label_scores_find_the_label_token_for_smollm2(smol):
    encoded = data.encode_sft(_records(), smol, 512)
    found = label_slots(encoded.records, encoded.rows, smol)
    assert found.unscorable == [] and len(found.slots) == 4
    for slot, row in zip(found.slots, encoded.rows):
        assert {smol.decode([slot.gold_token]), smol.decode([slot.other_token])} == {"0", "1"}
        assert smol.decode([slot.gold_token]) == str(slot.gold_label)
        assert list(slot.prefix) == row["input_ids"][:len(slot.prefix)]


def test_smollm2_preference_rows_reach_the_model_as_the_layout_writes_them(smol):
    """DPO on a chat-template model: TRL's preference collator joins the pre-tokenized prompt and target and adds
    nothing (no second end of turn, no extra EOS), so each row is the layout's full row, ending at its end of turn."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    prompt = formats.user_prompt(*PAIR)
    pair = data.PairRecord(7, prompt, formats.cot_target("Step 1: a cat is an animal.", 1),
                           formats.cot_target("Step 1: no.", 0), "x")
    row = data.encode_pairs([pair], smol, 512).rows[0]
    batch = DataCollatorForPreference(pad_token_id=smol.pad_token_id)([row])
    layout = layout_for(smol)
    for i, target in enumerate((pair.chosen, pair.rejected)):
        full = layout.full_ids([prompt], [target])[0]
        ids = [t for t, m in zip(batch["input_ids"][i].tolist(), batch["attention_mask"][i].tolist()) if m]
        assert ids == full
        completion = ids[len(row["prompt_ids"]):]
        assert sum(t in layout.stop_ids for t in completion) == 1  # one end of turn, nothing after it but text


def test_export_measures_a_row_as_training_encodes_it(smol, smollm2_dir):
    """`export --tokenizer DIR` counts a row's tokens through the model's own layout, as training will encode it
    (it counted the [INST] text, which a chat-template model never sees)."""
    from exports.length import TokenCounter

    row = ("A cat sits on the mat.", "An animal sits.", "Step 1: a cat is an animal.", 1)
    record = data.SftRecord(1, formats.user_prompt(*row[:2]), formats.cot_target(*row[2:]), "x")
    trained = len(data.encode_sft([record], smol, 4096).rows[0]["input_ids"])
    assert TokenCounter(str(smollm2_dir)).count([row]) == [trained]
    assert trained != len(smol(formats.inst_text(record.prompt, record.target), add_special_tokens=False)["input_ids"])
