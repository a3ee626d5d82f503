"""The one model-output parser: repairs what it safely can, never invents a label."""
from __future__ import annotations

import json

import pytest

from pipeline.parsing import (
    concluded_label,
    label_value,
    parse_judge,
    parse_prediction,
    parse_reflection,
    parse_thought,
)

GOOD = '{"thought_process": "Step 1: the premise says a man sleeps. Step 2: so he rests.", "predicted_label": 1}'


def test_clean_json_is_ok_and_text_kept_exactly() -> None:
    raw = '{"thought_process": "Step 1: Paris IS in France.\\nStep 2: so yes.", "predicted_label": 0}'
    parsed = parse_thought(raw)
    assert parsed.status == "ok"
    assert parsed.label == 0
    assert parsed.thought == "Step 1: Paris IS in France.\nStep 2: so yes."  # casing untouched
    assert parsed.problems == ()


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        ("```json\n" + GOOD + "\n```", "code fence"),
        ("```\n" + GOOD + "\n```", "code fence"),
        ("Here is my answer:\n" + GOOD + "\nHope this helps!", "text around"),
        ("{'thought_process': 'Step 1: the man sleeps.', 'predicted_label': 1}", "single quotes"),
        ('{"thought_process": "Step 1: the man sleeps.", "predicted_label": 1,}', "trailing commas"),
        ('{"thought_process": "Step 1: the man sleeps.", "predicted_label": "1"}', "string"),
        ('{"thought_process": "Step 1: the man sleeps.", "predicted_label": "entailment"}', "word"),
        ('{"thought_process": "Step 1: the man sleeps.", "predicted_label": "Entailment"}', "word"),
        ('{"thought_process": "Step 1: the man sleeps.", "predicted_label": 1.0}', "1.0"),
        ('{"thought_process": "Step 1: the man sleeps.", "label": 1}', "key 'label'"),
        ('{"Thought Process": "Step 1: the man sleeps.", "Predicted Label": 1}', "written differently"),
        ('"{\\"thought_process\\": \\"Step 1: the man sleeps.\\", \\"predicted_label\\": 1}"', "encoded twice"),
        ('{"thought_process": "Step 1: the man sleeps.", "predicted_label": True}', "Python literals"),
    ],
)
def test_repairs_are_noted(raw: str, note: str) -> None:
    parsed = parse_thought(raw)
    assert parsed.status == "repaired", parsed
    assert parsed.label == 1
    assert parsed.thought and parsed.thought.startswith("Step 1")
    assert any(note in p for p in parsed.problems), parsed.problems


def test_single_quotes_with_apostrophes_inside() -> None:
    raw = "{'thought_process': 'Step 1: the speaker's brother isn't named.', 'predicted_label': 0}"
    parsed = parse_thought(raw)
    assert parsed.label == 0
    assert parsed.thought == "Step 1: the speaker's brother isn't named."


def test_unescaped_double_quotes_inside_a_string() -> None:
    raw = '{"thought_process": "He said "no" to the offer.", "predicted_label": 0}'
    parsed = parse_thought(raw)
    assert parsed.label == 0
    assert parsed.thought == 'He said "no" to the offer.'


def test_word_labels_for_no_entailment() -> None:
    for word in ("not_entailment", "non-entailment", "No Entailment", "contradiction", "neutral", "0"):
        parsed = parse_thought(json.dumps({"thought_process": "x", "predicted_label": word}))
        assert parsed.label == 0, word
        assert parsed.status == "repaired"


@pytest.mark.parametrize("value", [2, -1, 0.5, "maybe", "2", None, [0, 1], {"x": 1}, "1 (not entailment)"])
def test_out_of_range_or_unknown_labels_are_never_invented(value: object) -> None:
    parsed = parse_thought(json.dumps({"thought_process": "Step 1: unclear.", "predicted_label": value}))
    assert parsed.label is None
    assert parsed.status == "failed"
    assert parsed.thought == "Step 1: unclear."  # what was there is still returned for review


def test_label_value_notes() -> None:
    assert label_value(1) == (1, None)
    assert label_value("1 (entailment)")[0] == 1
    assert label_value(3) == (None, "label 3 is not 0 or 1")


def test_truncated_json_keeps_what_arrived() -> None:
    cut = '{"predicted_label": 0, "thought_process": "Step 1: the premise says nothing about'
    parsed = parse_thought(cut)
    assert parsed.label == 0
    assert parsed.status == "repaired"
    assert parsed.thought == "Step 1: the premise says nothing about"
    assert any("truncated" in p for p in parsed.problems)


def test_truncated_before_the_label_fails_without_a_label() -> None:
    for cut in ('{"thought_process": "Step 1: the premise says', '{"thought_process": "Step 1.", "predicted_label": ',
                '{"thought_process": "Step 1.", "predicted_lab'):
        parsed = parse_thought(cut)
        assert parsed.status == "failed", cut
        assert parsed.label is None
        assert parsed.thought and parsed.thought.startswith("Step 1")


def test_missing_keys() -> None:
    no_label = parse_thought('{"thought_process": "Step 1: fine."}')
    assert no_label.status == "failed" and no_label.label is None
    assert "missing predicted_label" in no_label.problems
    no_thought = parse_thought('{"predicted_label": 1}')
    assert no_thought.status == "repaired" and no_thought.label == 1
    assert "missing thought_process" in no_thought.problems


def test_wrong_schema_fails() -> None:
    parsed = parse_thought('{"answer_text": "I think so", "confidence": 0.9}')
    assert parsed.status == "failed"
    assert parsed.label is None


@pytest.mark.parametrize("raw", ["", "   ", "I am not sure what you mean.", "The premise entails the hypothesis.",
                                 "[1, 0]", "null", "{not json at all"])
def test_prose_and_garbage_fail(raw: str) -> None:
    """No keyword search in prose: 'entails' in a sentence is not a label (the original's bias bug)."""
    parsed = parse_thought(raw)
    assert parsed.status == "failed"
    assert parsed.label is None


def test_loose_key_value_text() -> None:
    parsed = parse_thought('thought_process: "Step 1: he sleeps."\npredicted_label: 1')
    assert parsed.label == 1
    assert parsed.status == "repaired"
    assert parsed.thought == "Step 1: he sleeps."


def test_two_answers_that_agree_use_the_last_and_disagreeing_ones_fail() -> None:
    agree = parse_thought(GOOD + "\nCorrected: " + GOOD.replace("rests", "is resting"))
    assert agree.label == 1 and "is resting" in (agree.thought or "")
    disagree = parse_thought(GOOD + "\n" + GOOD.replace('"predicted_label": 1', '"predicted_label": 0'))
    assert disagree.status == "failed" and disagree.label is None


def test_list_of_steps_is_joined() -> None:
    parsed = parse_thought(json.dumps({"thought_process": ["Step 1: a.", "Step 2: b."], "predicted_label": 0}))
    assert parsed.thought == "Step 1: a.\nStep 2: b."
    assert parsed.status == "repaired"


def test_label_inconsistent_flag() -> None:
    says_no = "Step 1: the premise is about students. Step 2: so the hypothesis cannot be inferred from the premise."
    flagged = parse_thought(json.dumps({"thought_process": says_no, "predicted_label": 1}))
    assert flagged.flags == ("label_inconsistent",)
    assert flagged.label == 1  # flagged, never changed
    assert parse_thought(json.dumps({"thought_process": says_no, "predicted_label": 0})).flags == ()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Therefore the hypothesis cannot be logically inferred from the premise.", 0),
        ("So the hypothesis is not entailed by the premise.", 0),
        ("The premise does not entail the hypothesis.", 0),
        ("There is no entailment here.", 0),
        ("It is not possible to logically infer the hypothesis.", 0),
        ("Hence the hypothesis can be inferred from the premise.", 1),
        ("The hypothesis is indeed entailed by the premise.", 1),
        ("The premise entails the hypothesis.", 1),
        ("At first it cannot be inferred, but on reflection it can be inferred from the premise.", 1),
        ("We cannot conclude that it has changed. So the hypothesis is plausible.", None),
        ("Step 1: the man is asleep. Step 2: sleeping people rest.", None),
        ("", None),
    ],
)
def test_concluded_label(text: str, label: int | None) -> None:
    assert concluded_label(text) == label


def test_reflection_parsed_and_not_gold_flagged_not_forced() -> None:
    raw = json.dumps({"error_analysis": "The thought ignored the date.",
                      "improved_thought_process": "Step 1: the dates differ. Step 2: so it is not entailed by it.",
                      "predicted_label": 0})
    ok = parse_reflection(raw, gold=0)
    assert ok.status == "ok" and ok.label == 0 and ok.flags == ()
    assert ok.error_analysis == "The thought ignored the date."
    assert ok.thought and ok.thought.startswith("Step 1: the dates differ")
    not_gold = parse_reflection(raw, gold=1)
    assert not_gold.label == 0  # kept as written
    assert "label_not_gold" in not_gold.flags


def test_reflection_missing_analysis_is_noted() -> None:
    parsed = parse_reflection('{"improved_thought_process": "Step 1.", "predicted_label": 1}', gold=1)
    assert parsed.label == 1 and parsed.status == "repaired"
    assert "missing error_analysis" in parsed.problems


def test_judge() -> None:
    good = parse_judge('{"score": 4, "rationale": "Sound steps."}')
    assert (good.status, good.score, good.rationale, good.label) == ("ok", 4.0, "Sound steps.", None)
    assert parse_judge('```json\n{"score": "3/5", "rationale": "Vague."}\n```').score == 3.0
    for bad in ('{"score": 9, "rationale": "x"}', '{"score": 0}', '{"rationale": "no score"}', "four", ""):
        parsed = parse_judge(bad)
        assert parsed.status == "failed" and parsed.score is None, bad


def test_prediction_with_echoed_prompt_ignores_the_template() -> None:
    """The instruction's JSON template (label '<1 or 0>') must never be read as an answer."""
    from exports.formats import inst_prompt, user_prompt

    prompt = inst_prompt(user_prompt("A man sleeps.", "A man rests."))
    parsed = parse_prediction(prompt + ' {"thought_process": "Step 1: sleeping is resting.", "predicted_label": 1}</s>')
    assert parsed.label == 1
    assert parsed.status == "repaired"
    only_prompt = parse_prediction(prompt)
    assert only_prompt.label is None and only_prompt.status == "failed"


def test_prediction_label_only() -> None:
    assert parse_prediction('{"predicted_label": 0}', with_thought=False).status == "ok"
    assert parse_prediction('{"predicted_label": 0}', with_thought=True).status == "repaired"
    bare = parse_prediction(" 1 ", with_thought=False)
    assert bare.label == 1 and bare.status == "repaired"
    assert parse_prediction("entailment.", with_thought=False).label == 1


def test_never_crashes_on_hostile_input() -> None:
    for raw in ["{" * 5000, "[" * 5000 + "]" * 5000, '{"a": "\\', "```", "```json\n", "{'", '{"predicted_label": 1e999}',
                "\x00\x01{}", "{[}]", None, 42]:
        parsed = parse_thought(raw)  # type: ignore[arg-type]
        assert parsed.status in ("ok", "repaired", "failed")


def test_seed_thoughts_parse_as_written(shared_data) -> None:
    """The original pipeline's stored thoughts re-serialised: all ok, labels as stored."""
    lines = (shared_data / "seed_sample" / "sample_thoughts.json").read_text().splitlines()
    for line in filter(str.strip, lines):
        rec = json.loads(line)
        raw = json.dumps({"thought_process": rec["thought_process"], "predicted_label": rec["predicted_label"]})
        parsed = parse_thought(raw)
        assert parsed.status == "ok" and parsed.label == rec["predicted_label"]
        assert parsed.thought == rec["thought_process"]
