"""Evaluation without a real model: prompts, metrics by hand, storage, resume, overlap, queue, ablations."""
from __future__ import annotations

import json

import pytest
from evaluate_fakes import ScriptedModel, scripted_loader

from db import open_db
from db.generations import add_generations, dedupe_key
from db.queues import QueueFilter
from db.queues import ids as queue_ids
from db.runs import get_run, start_run
from exports.formats import cot_target, inst_prompt, inst_text, user_prompt
from pipeline.evaluate.batching import length_sorted_batches
from pipeline.evaluate.compare import compare_runs
from pipeline.evaluate.generation import JsonEnd, json_chars
from pipeline.evaluate.prompts import encode_prompt, forced_label_prefix, prompt_text, prompt_version, split_user_prompt
from pipeline.evaluate.runner import EvalOptions, EvaluationError, run_evaluation, select_examples
from pipeline.evaluate.summary import summarize


@pytest.fixture(scope="module")
def tokenizer():
    from pipeline.tiny_model import build_tokenizer

    return build_tokenizer()


@pytest.fixture
def demo(demo_db_path):
    store = open_db(demo_db_path)
    yield store
    store.conn.close()


def _answer(thought: str, label: int) -> str:
    return cot_target(thought, label)


def _script(examples, wrong=(), garbage=(), junk_after=()):
    """premise -> answer: right label unless the index is in wrong; garbage = no label at all."""
    answers = {}
    for i, e in enumerate(examples):
        if i in garbage:
            answers[e.premise] = "I am not sure what to say here."
        else:
            label = 1 - e.gold_label if i in wrong else e.gold_label
            text = _answer(f"Step {i}: the brace }} in a string and a \"quote\" do not end it.", label)
            answers[e.premise] = text + (' and then {"predicted_label": 0} more' if i in junk_after else "")
    return answers


# --- prompts ---------------------------------------------------------------------------------------


def test_prompt_is_the_training_prompt_with_exactly_one_bos(tokenizer):
    text = prompt_text("A man sings.", "Someone sings.")
    assert text == inst_prompt(user_prompt("A man sings.", "Someone sings."))
    assert inst_text(user_prompt("A man sings.", "Someone sings."), "{}").startswith(text)
    ids = encode_prompt(tokenizer, text)
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    # Encoding with the tokenizer's own BOS on top would give two: the reason encode_prompt exists.
    assert tokenizer(text)["input_ids"].count(tokenizer.bos_token_id) == 2
    with pytest.raises(ValueError, match="exactly one BOS"):
        encode_prompt(tokenizer, "<s>" + text)


def test_prompt_version_changes_with_what_the_model_is_asked():
    versions = {prompt_version(with_thought=w, shuffle_thoughts=s) for w, s in ((True, False), (False, False),
                                                                              (True, True))}
    assert len(versions) == 3


def test_forced_label_prefix_is_the_training_target_up_to_the_label():
    prefix = forced_label_prefix('it "holds"')
    assert (prefix + "1}").lstrip() == cot_target('it "holds"', 1)
    assert prompt_text("p", "h") + prefix + "1}" == inst_text(user_prompt("p", "h"), cot_target('it "holds"', 1))[:-5]


def test_split_user_prompt_reads_the_pair_back():
    assert split_user_prompt(inst_text(user_prompt("P\nx", "H"), "{}")) == ("P\nx", "H")
    assert split_user_prompt(user_prompt("a", "b", with_thought=False)) == ("a", "b")
    assert split_user_prompt("Premise: a\nHypothesis: b") is None


# --- decoding helpers ------------------------------------------------------------------------------


def test_json_end_ignores_braces_in_strings_and_text_before():
    scanner = JsonEnd()
    text = 'Sure "x}" {"thought_process": "a } b \\" } c", "nested": {"k": 1}, "predicted_label": 1} tail'
    closed_at = next(i for i in range(len(text)) if scanner.feed(json_chars(text[i])))
    assert text[: closed_at + 1].endswith('"predicted_label": 1}')


def test_length_sorted_batches_cover_every_prompt_once():
    batches = length_sorted_batches([5, 9, 1, 9, 3], 2)
    assert batches == [[1, 3], [0, 4], [2]]
    with pytest.raises(ValueError):
        length_sorted_batches([1], 0)
    # A cache-token budget: rows x (longest prompt of the batch + new tokens) stays within it.
    assert length_sorted_batches([10, 10, 4, 4, 4, 4], 8, max_new_tokens=2, max_tokens=24) == [[0, 1], [2, 3, 4, 5]]


# --- metrics against a hand-computed confusion matrix ------------------------------------------------


def test_summary_metrics_match_a_hand_computed_confusion_matrix(demo):
    examples, _ = select_examples(demo, ["demo"], [], None)
    pos = [e for e in examples if e.gold_label == 1][:6]
    neg = [e for e in examples if e.gold_label == 0][:6]
    # gold 1: 3 right, 2 wrong, 1 failed; gold 0: 4 right, 1 wrong, 1 failed.
    plan = [(e, 1) for e in pos[:3]] + [(e, 0) for e in pos[3:5]] + [(pos[5], None)]
    plan += [(e, 0) for e in neg[:4]] + [(neg[4], 1), (neg[5], None)]
    run = start_run(demo, "evaluate", {})
    thoughts = ["one two three", " ".join(["w"] * 60), None]
    add_generations(demo, [
        {"example_id": e.id, "kind": "prediction", "model": "m", "backend": "local", "run_id": run,
         "predicted_label": label, "parse_status": "failed" if label is None else "ok",
         "thought_process": None if label is None else thoughts[i % 2], "tokens_out": 10, "latency_ms": 100.0,
         "dedupe_key": dedupe_key("t", e.id)}
        for i, (e, label) in enumerate(plan)
    ])
    s = summarize(demo, run)
    m = s["metrics"]
    assert m["confusion"] == {"gold_1": {"pred_1": 3, "pred_0": 2, "failed": 1},
                              "gold_0": {"pred_1": 1, "pred_0": 4, "failed": 1}}
    assert m["accuracy"] == pytest.approx(7 / 12)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 6)
    assert m["f1"] == pytest.approx(0.6)
    assert m["macro_f1"] == pytest.approx((0.6 + 2 / 3) / 2)
    assert m["parse_failure_rate"] == pytest.approx(2 / 12)
    assert s["parse_status"] == {"ok": 10, "repaired": 0, "failed": 2}
    buckets = {b["bucket"]: (b["examples"], b["accuracy"]) for b in s["by_thought_length"]}
    # Even positions (3 words): pos 0,2,4(wrong) and neg 0,2 right, neg 4... see plan order.
    right = [label == e.gold_label for e, label in plan]
    short = [r for i, r in enumerate(right) if plan[i][1] is not None and i % 2 == 0]
    long_ = [r for i, r in enumerate(right) if plan[i][1] is not None and i % 2 == 1]
    assert buckets["0-50"] == (len(short), pytest.approx(sum(short) / len(short)))
    assert buckets["51-100"] == (len(long_), pytest.approx(sum(long_) / len(long_)))
    assert buckets["no thought"] == (2, 0.0)
    assert s["speed"]["generated_tokens"] == 120 and s["speed"]["generated_tokens_per_s"] == pytest.approx(100.0)


# --- the runner with a scripted model ----------------------------------------------------------------


def _run(db, tokenizer, answers, tmp_path, **kwargs):
    model = ScriptedModel(tokenizer, answers, interrupt_at_prefill=kwargs.pop("interrupt_at_prefill", None))
    options = EvalOptions(base="scripted-base", datasets=("demo",), limit=kwargs.pop("limit", 12),
                          batch_size=kwargs.pop("batch_size", 4), max_new_tokens=kwargs.pop("max_new_tokens", 160),
                          **{k: kwargs.pop(k) for k in list(kwargs) if k in ("shuffle_thoughts", "with_thought",
                                                                              "adapter", "seed")})
    result = run_evaluation(db, options, loader=scripted_loader(model), json_path=tmp_path / "m.json", **kwargs)
    return result, model


def test_predictions_are_stored_parsed_and_scored_without_default_labels(demo, tokenizer, tmp_path):
    examples, _ = select_examples(demo, ["demo"], [], 12)
    answers = _script(examples, wrong={1, 5}, garbage={2, 7}, junk_after={3})
    result, model = _run(demo, tokenizer, answers, tmp_path)
    preds = {g["example_id"]: g for g in demo.query(
        "SELECT * FROM generations WHERE run_id = ? AND kind = 'prediction'", [result.run_id])}
    assert len(preds) == 12 and len(model.prompts_seen) == 12
    for i, e in enumerate(examples):
        p = preds[e.id]
        assert "[INST]" not in p["raw_response"] and "Premise:" not in p["raw_response"]  # new tokens only
        assert p["backend"] == "local" and p["model"] == "scripted-base"
        if i in (2, 7):
            assert p["parse_status"] == "failed" and p["predicted_label"] is None
        else:
            assert p["raw_response"] == answers[e.premise].split(" and then")[0]  # stopped at the end of the JSON
            assert p["predicted_label"] == (1 - e.gold_label if i in (1, 5) else e.gold_label)
            assert json.loads(p["params"])["stop"] == "json_end"
    m = result.summary["metrics"]
    assert (m["failed"], m["mismatches"], m["n"]) == (2, 2, 12)
    assert m["accuracy"] == pytest.approx(8 / 12)
    run = get_run(demo, result.run_id)
    assert run.status == "completed" and run.metrics["metrics"]["accuracy"] == pytest.approx(8 / 12)
    assert json.loads((tmp_path / "m.json").read_text())["run_id"] == result.run_id


def test_model_errors_queue_lists_exactly_the_wrong_and_failed_predictions(demo, tokenizer, tmp_path):
    examples, _ = select_examples(demo, ["demo"], [], 12)
    result, _ = _run(demo, tokenizer, _script(examples, wrong={0, 9}, garbage={4}), tmp_path)
    expected = sorted(examples[i].id for i in (0, 4, 9))
    assert queue_ids(demo, QueueFilter(queue="model_errors", run_id=result.run_id)) == expected
    assert queue_ids(demo, QueueFilter(queue="model_errors")) == expected


def test_resume_continues_the_run_without_redoing_finished_batches(demo, tokenizer, tmp_path):
    examples, _ = select_examples(demo, ["demo"], [], 12)
    answers = _script(examples)
    with pytest.raises(KeyboardInterrupt):
        _run(demo, tokenizer, answers, tmp_path, interrupt_at_prefill=2)
    first = demo.execute("SELECT id, status FROM runs WHERE kind = 'evaluate'").fetchall()
    assert [s for _, s in first] == ["cancelled"]
    stored = demo.execute("SELECT count(*) FROM generations WHERE kind = 'prediction'").fetchone()[0]
    assert stored == 4  # the first batch was committed, the interrupted one was not
    result, model = _run(demo, tokenizer, answers, tmp_path, resume=True)
    assert result.resumed and result.run_id == first[0][0] and result.generated_now == 8
    assert len(model.prompts_seen) == 8
    assert result.summary["predictions"] == 12 and result.summary["metrics"]["accuracy"] == 1.0
    assert get_run(demo, result.run_id).status == "completed"
    # Without --resume a new run starts; with nothing unfinished, --resume starts one too.
    again, _ = _run(demo, tokenizer, answers, tmp_path, resume=True)
    assert again.run_id != result.run_id and not again.resumed


def test_overlap_with_training_and_early_stopping_data_is_warned(demo, tokenizer, tmp_path):
    examples, _ = select_examples(demo, ["demo"], [], 12)
    adapter = tmp_path / "out" / "adapter"
    adapter.mkdir(parents=True)
    train_file, eval_file = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    rows = lambda chosen: "".join(json.dumps({"id": e.id, "text": inst_text(user_prompt(e.premise, e.hypothesis),
                                                                             cot_target("t", e.gold_label))}) + "\n"
                                  for e in chosen)
    train_file.write_text(rows(examples[:3] + examples[20:25]))
    eval_file.write_text(rows(examples[5:7]))
    start_run(demo, "train", {"export": {"path": str(train_file), "sha256": "x", "export_id": None},
                              "eval_export": {"path": str(eval_file), "sha256": "y", "export_id": None}})
    demo.execute("UPDATE runs SET artifacts = ? WHERE kind = 'train'", [json.dumps({"adapter": str(adapter)})])
    demo.conn.commit()
    messages: list[str] = []
    result, _ = _run(demo, tokenizer, _script(examples), tmp_path, adapter=str(adapter), notify=messages.append)
    assert any("3 of the 12 evaluated examples" in w and "training data" in w for w in result.warnings)
    assert any("2 of the 12 evaluated examples" in w and "early-stopping" in w for w in result.warnings)
    assert sum(m.startswith("WARNING") for m in messages) == 2
    assert result.summary["warnings"] == result.warnings


def test_overlap_through_the_training_folder_config_and_a_held_out_fraction(demo, tokenizer, tmp_path):
    examples, _ = select_examples(demo, ["demo"], [], 12)
    folder = tmp_path / "runs" / "x"
    (folder / "adapter").mkdir(parents=True)
    (folder / "train_log.jsonl").write_text("")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": user_prompt(e.premise, e.hypothesis)},
                                                     {"role": "assistant", "content": "{}"}]}) + "\n"
                            for e in examples[:4]))
    (folder / "config.yaml").write_text(f"data: {data}\neval_fraction: 0.1\n")
    result, _ = _run(demo, tokenizer, _script(examples), tmp_path, adapter=str(folder / "adapter"))
    assert len(result.warnings) == 1 and "4 of the 12" in result.warnings[0]
    assert "training (and early-stopping)" in result.warnings[0]


def test_no_thought_ablation_uses_the_label_only_prompt(demo, tokenizer, tmp_path):
    examples, _ = select_examples(demo, ["demo"], [], 4)
    answers = {e.premise: json.dumps({"predicted_label": e.gold_label}) for e in examples}
    result, model = _run(demo, tokenizer, answers, tmp_path, limit=4, with_thought=False)
    assert all("thought_process" not in p for p in model.prompts_seen)
    assert result.summary["metrics"]["accuracy"] == 1.0
    assert result.summary["parse_status"]["ok"] == 4


def test_shuffle_thoughts_forces_another_examples_thought_and_decodes_only_the_label(demo, tokenizer, tmp_path):
    examples, _ = select_examples(demo, ["demo"], [], 6)
    with pytest.raises(EvaluationError, match="own thoughts"):
        _run(demo, tokenizer, {}, tmp_path, limit=6, shuffle_thoughts=True)
    first, _ = _run(demo, tokenizer, _script(examples), tmp_path, limit=6)
    own = {r[0]: r[1] for r in demo.execute(
        "SELECT example_id, thought_process FROM generations WHERE run_id = ?", [first.run_id])}
    shuffled, model = _run(demo, tokenizer, {e.premise: "0} trailing" for e in examples}, tmp_path, limit=6,
                           shuffle_thoughts=True, seed=3)
    rows = list(demo.query("SELECT * FROM generations WHERE run_id = ?", [shuffled.run_id]))
    donors = set()
    for row in rows:
        params = json.loads(row["params"])
        donor = params["thought_from_example"]
        donors.add(donor)
        assert donor != row["example_id"] and params["thought_from_run"] == first.run_id
        assert row["thought_process"] == own[donor] and row["predicted_label"] == 0
        assert row["raw_response"] == forced_label_prefix(own[donor]).lstrip() + "0}"
        assert row["tokens_out"] <= 2 and params["stop"] == "json_end"
    assert donors == set(own)  # a derangement: every thought used once
    premise = {e.id: e.premise for e in examples}
    for row in rows:  # the model was prompted with the donor's thought after its own pair
        donor = json.loads(row["params"])["thought_from_example"]
        assert any(premise[row["example_id"]] in p and p.endswith(forced_label_prefix(own[donor]))
                   for p in model.prompts_seen)


def test_compare_lists_metrics_and_the_examples_that_differ(demo, tokenizer, tmp_path):
    examples, _ = select_examples(demo, ["demo"], [], 8)
    a, _ = _run(demo, tokenizer, _script(examples, wrong={0}), tmp_path, limit=8)
    b, _ = _run(demo, tokenizer, _script(examples, wrong={1}, garbage={2}), tmp_path, limit=8)
    c = compare_runs(demo, a.run_id, b.run_id)
    assert c.prompt_a == c.prompt_b == "thought and label"
    assert [d.example_id for d in c.differences] == [examples[i].id for i in (0, 1, 2)]
    assert (c.only_a_right, c.only_b_right, c.common) == (2, 1, 8)
    assert {n: (x, y) for n, x, y in c.metrics}["accuracy"] == (pytest.approx(7 / 8), pytest.approx(6 / 8))
    assert c.differences[2].label_b is None
    with pytest.raises(EvaluationError, match="no run 999"):
        compare_runs(demo, a.run_id, 999)


def test_compare_names_how_each_run_prompted():
    from pipeline.evaluate.compare import prompt_mode

    assert prompt_mode({"with_thought": True, "shuffle_thoughts": False}) == "thought and label"
    assert prompt_mode({"with_thought": False, "shuffle_thoughts": False}) == "label only (--no-thought)"
    assert prompt_mode({"with_thought": True, "shuffle_thoughts": True}).endswith("(--shuffle-thoughts)")


def test_options_refuse_impossible_combinations():
    with pytest.raises(EvaluationError, match="no-thought"):
        EvalOptions(base="b", with_thought=False, shuffle_thoughts=True)
    with pytest.raises(EvaluationError):
        EvalOptions(base="b", max_new_tokens=0)


def test_no_matching_examples_is_an_error(demo, tmp_path):
    with pytest.raises(EvaluationError, match="no labelled examples"):
        run_evaluation(demo, EvalOptions(base="b", datasets=("nope",)), loader=None)  # type: ignore[arg-type]
