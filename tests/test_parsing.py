"""The one model-output parser: repairs what it safely can, never invents a label."""
from __future__ import annotations

import json

import pytest

from pipeline.answer_fields import label_value
from pipeline.answer_text import concluded_label
from pipeline.parsing import parse_judge, parse_prediction, parse_reflection, parse_thought

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
    # A label without the thought text is a failure (changed: it was "repaired" with label 1, and the
    # export then left it out as parse_failed; issue 12 item 9).
    no_thought = parse_thought('{"predicted_label": 1}')
    assert no_thought.status == "failed" and no_thought.label is None
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


# ---------------------------------------------------------------------------------------------
# Issue 12 item 9: labels come only from the answer's own field or one final-answer statement

INVENTED = [
    "I first wrote predicted_label: 0, but on reflection the predicted_label: 1",
    "The gold label: 1\nMy view differs.",
    "Some would say label = 1, others label = 0; I cannot decide.",
    "There is no mislabel: no, the annotators were right.",
    "The original label: true, but the opposite holds.",
    "The previous answer: 1 was wrong.",
    "My label: 1, though I am not sure.",
    "Label: 1\nLabel: 0",
    "predicted_label: 1\nFinal answer: 0",
    "Final answer: 1\nOn second thought, I am not sure.",
]


@pytest.mark.parametrize("raw", INVENTED)
def test_labels_in_prose_are_failures(raw: str) -> None:
    """Retracted, quoted, conflicting labels and labels inside prose: no label, status failed."""
    for parsed in (parse_thought(raw), parse_reflection(raw, gold=1), parse_prediction(raw),
                   parse_prediction(raw, with_thought=False)):
        assert parsed.status == "failed" and parsed.label is None, parsed


@pytest.mark.parametrize("number", ["0.99999999999999999", "1e-400", "1e0", "1E0", "1.0000000000000001", "-0.0",
                                    "0.5", "1" * 5000, "1e999", "NaN", "Infinity"],
                         ids=lambda v: v if len(v) < 30 else f"{len(v)}-digits")
def test_numbers_that_only_round_to_a_label_are_refused(number: str) -> None:
    """json.loads reads 0.99999999999999999 as 1.0 and 1e-400 as 0.0: the label is checked as written."""
    raw = '{"thought_process": "Step 1: the man sleeps.", "predicted_label": ' + number + "}"
    parsed = parse_thought(raw)
    assert parsed.status == "failed" and parsed.label is None
    assert parsed.thought == "Step 1: the man sleeps."
    assert any("is not" in p for p in parsed.problems), parsed.problems


@pytest.mark.parametrize(("number", "label"), [("1.0", 1), ("0.0", 0), ("0.000", 0)])
def test_a_decimal_label_written_with_zeros_only_is_read(number: str, label: int) -> None:
    parsed = parse_thought('{"thought_process": "Step 1.", "predicted_label": ' + number + "}")
    assert parsed.label == label and parsed.status == "repaired"
    assert f"label written as {number}" in parsed.problems


@pytest.mark.parametrize("raw", [
    '{"thought_process": "Step 1.", "predicted_label": 1, "label": 0}',
    '{"thought_process": "Step 1.", "predicted_label": 1, "predicted_label": 0}',
    '{"thought_process": "Step 1.", "predicted_label": 1}\nActually, the predicted_label: 0.',
    'Wait: label = 0\n{"thought_process": "Step 1.", "predicted_label": 1}',
    '{"thought_process": "Step 1.", "predicted_label": 1}\nFinal answer: no',
    '{"answer": {"thought_process": "Step 1.", "predicted_label": 1}, "label": 0}',
])
def test_conflicting_labels_fail(raw: str) -> None:
    parsed = parse_thought(raw)
    assert parsed.status == "failed" and parsed.label is None, parsed


def test_text_around_the_json_that_agrees_or_states_no_label_is_fine() -> None:
    agree = parse_thought("So the predicted_label: 1.\n" + GOOD)
    assert agree.label == 1 and agree.status == "repaired"
    quoted_gold = parse_reflection("The gold label is 1 and the thought said 0.\n" + json.dumps(
        {"error_analysis": "Missed the date.", "improved_thought_process": "Step 1: dates.", "predicted_label": 1}))
    assert quoted_gold.label == 1  # "is", not a `label: X` statement


@pytest.mark.parametrize("raw", [
    "thought_process: Step 1: he sleeps.\nStep 2: sleeping is resting.\npredicted_label: 1",
    "Thought process: Step 1: he sleeps.\nPredicted label: entailment",
    '"thought_process": "Step 1: he sleeps.",\n"predicted_label": "1"',
    "```\nthought_process: Step 1: he sleeps.\nlabel = 1\n```",
    "**Thought process**: Step 1: he sleeps.\n**Predicted label**: 1",
])
def test_key_value_lines_that_are_the_whole_reply_still_parse(raw: str) -> None:
    parsed = parse_thought(raw)
    assert parsed.label == 1 and parsed.status == "repaired", parsed
    assert parsed.thought and parsed.thought.startswith("Step 1: he sleeps.")
    assert "read the fields from text that is not valid JSON" in parsed.problems


@pytest.mark.parametrize("raw", [
    "Let me think.\nthought_process: Step 1: he sleeps.\npredicted_label: 1",  # prose before the fields
    "thought_process: Step 1.\npredicted_label: 1\nlabel: 1",  # the label stated twice
    "thought_process: Step 1.\npredicted_label: 1 or maybe 0",
])
def test_key_value_lines_mixed_with_prose_fail(raw: str) -> None:
    parsed = parse_thought(raw)
    assert parsed.status == "failed" and parsed.label is None, parsed


def test_one_final_answer_line_gives_a_prediction_its_label() -> None:
    """The final-answer statement: the last line, the only label statement in the reply."""
    parsed = parse_prediction("Step 1: sleeping is resting.\nStep 2: so it follows.\n**Final answer:** 1")
    assert parsed.label == 1 and parsed.status == "repaired"
    assert any("final line" in p for p in parsed.problems)
    assert parse_prediction("Reasoning...\nAnswer: no", with_thought=False).label == 0
    # A thought needs its text: a final line alone gives no stored answer.
    thought = parse_thought("Step 1: sleeping is resting.\nFinal answer: 1")
    assert thought.status == "failed" and thought.label is None


def test_truncated_json_whose_label_ran_into_the_end_is_not_read() -> None:
    for cut in ('{"thought_process": "Step 1.", "predicted_label": 1', '{"thought_process": "Step 1.", "label": 0',
                '{"thought_process": "Step 1.", "predicted_label": "entail',
                '{"thought_process": "Step 1.", "predicted_label": tr'):
        parsed = parse_thought(cut)
        assert parsed.status == "failed" and parsed.label is None, cut
        assert parsed.thought == "Step 1."
    whole = parse_thought('{"thought_process": "Step 1.", "predicted_label": 1,')
    assert whole.label == 1 and whole.status == "repaired"
    spoken = parse_thought('{"predicted_label": 0, "thought_process": "Step 1: its label: 1')
    assert spoken.label == 0  # "label: 1" at the cut is inside the thought, not the label field


def test_unquoted_keys_are_repaired() -> None:
    parsed = parse_thought('{thought_process: "Step 1: he sleeps.", predicted_label: 1}')
    assert parsed.label == 1 and "repaired unquoted keys" in parsed.problems


def test_a_label_without_thought_text_is_a_failure_for_stored_answers_only() -> None:
    """Thoughts and reflections: the export could not use it (exports.rules: parse_failed)."""
    for raw in ('{"predicted_label": 1}', '{"thought_process": "   ", "predicted_label": 1}', "1", "Entailment."):
        assert parse_thought(raw).status == "failed" and parse_thought(raw).label is None, raw
        assert parse_reflection(raw, gold=1).label is None, raw
        assert parse_prediction(raw, with_thought=False).label == 1, raw
    no_analysis = parse_reflection('{"improved_thought_process": "Step 1.", "predicted_label": 1}')
    assert no_analysis.label == 1  # the export uses only the improved thought and the label


# ---------------------------------------------------------------------------------------------
# Issue 12 item 10: never raises


@pytest.mark.parametrize("raw", [
    '{"thought_process": "Step 1.", "predicted_label": ' + "9" * 5000 + "}",
    '{"thought_process": "Step 1.", "tokens": ' + "9" * 5000 + ', "predicted_label": 1}',
    GOOD + " " + "9" * 5000,
    "9" * 5000,
    '{"score": ' + "4" * 5000 + ', "rationale": "x"}',
    '{"thought_process": "' + "x" * 10 + '", "predicted_label": [' * 3000,
    '{"a": ' * 3000 + GOOD,
], ids=["huge-label", "huge-other-value", "huge-after-json", "huge-bare", "huge-score", "deep-label", "deep-objects"])
def test_huge_integers_and_deep_nesting_never_raise(raw: str) -> None:
    for parse in (parse_thought, parse_reflection, parse_judge, parse_prediction):
        parsed = parse(raw)
        assert parsed.status in ("ok", "repaired", "failed")
        assert not any("could not read this reply" in p for p in parsed.problems), parsed.problems
    assert parse_thought(raw).label in ((1,) if raw.startswith(GOOD) or "tokens" in raw else (None,))


def test_label_value_never_raises_on_huge_or_deep_values() -> None:
    assert label_value(10**5000)[0] is None
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert label_value(deep)[0] is None


def test_an_answer_wrapped_in_an_object_is_read_and_must_agree_with_its_wrapper() -> None:
    wrapped = parse_prediction('{"answer": {"thought_process": "Step 1.", "predicted_label": 1}}', with_thought=False)
    assert wrapped.label == 1 and "the answer was nested inside another object" in wrapped.problems
    clash = parse_prediction('{"answer": {"thought_process": "Step 1.", "predicted_label": 1}, "label": 0}',
                             with_thought=False)
    assert clash.status == "failed" and clash.label is None
