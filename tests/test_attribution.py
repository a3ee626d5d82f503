"""Label attribution (pipeline/attribution.py, pipeline/attribute_run.py, `nlistral attribute`): integrated
gradients satisfy completeness, tokens map back onto the thought, runs are stored, continued and shown."""
from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import attributions, open_db, write_tx
from db.examples import NewExample, example_row, insert_examples
from db.generations import add_generations
from db.runs import finish_run, start_run
from db.staging import stage_rows
from pipeline.attribution import DEFAULT_STEPS, Answer, attribute, full_precision, prepare
from pipeline.cli import app

pytest.importorskip("captum")

ANSWERS = [
    Answer(1, "A man sleeps on a bench in the park.", "Someone rests.",
           'Step 1: the man "sleeps" on a bench.\nStep 2: sleeping is resting, so yes.', 1),
    Answer(2, "Two dogs run near the river.", "Cats sleep indoors.", "Step 1: dogs are not cats. Step 2: no.", 0),
    Answer(3, "Zoë bought 3 apples.", "Zoë bought fruit.", "Step 1: apples are fruit — «ja». Step 2: yes.", 1),
]


def _tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def _complete(a) -> bool:
    """IG's completeness: the attributions sum to output(input) - output(baseline), within 5 %."""
    total = sum(a.signed.values())
    difference = a.logprob - a.baseline_logprob
    return abs(total - difference) <= 0.05 * abs(difference) and abs(a.delta) <= 0.05 * abs(difference)


def test_attributions_are_complete_on_the_tiny_model(tiny_model_dir):
    model, tokenizer = _tiny(tiny_model_dir)
    rows, problems = prepare(tokenizer, ANSWERS)
    assert problems == [] and len(rows) == 3
    results = attribute(model, rows, steps=DEFAULT_STEPS, rows_per_batch=2)  # two batches, padded
    assert [r.example_id for r in results] == [1, 2, 3]
    for a, answer in zip(results, ANSWERS):
        assert _complete(a), (a.signed, a.logprob, a.baseline_logprob, a.delta)
        assert a.label == answer.label and set(a.regions) == {"premise", "hypothesis", "thought"}
        assert all(v > 0 for v in a.regions.values())
        assert 0 < a.thought_share < 1
    alone = attribute(model, rows[:1], steps=DEFAULT_STEPS, rows_per_batch=1)[0]
    assert alone.logprob == pytest.approx(results[0].logprob, abs=1e-4)  # padding changes nothing


def test_the_thought_tokens_map_back_onto_the_thought(tiny_model_dir):
    _, tokenizer = _tiny(tiny_model_dir)
    rows, _ = prepare(tokenizer, ANSWERS)
    for row, answer in zip(rows, ANSWERS):
        spans = row.thought_spans
        assert spans and spans[0][0] == 0 and spans[-1][1] == len(answer.thought)
        assert all(a <= c and b <= d for (a, b), (c, d) in itertools.pairwise(spans))  # in order (a character split
        # into several byte-level tokens, or escaped into two, is the span of each of them)
        covered = "".join(answer.thought[a:b] for a, b in dict.fromkeys(spans))
        assert covered == answer.thought  # a quote or line break JSON escapes lands on the character itself


@pytest.mark.slow
def test_attributions_are_complete_on_smollm2(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = full_precision(AutoModelForCausalLM.from_pretrained(smollm2_dir))  # saved in bfloat16
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    rows, problems = prepare(tokenizer, ANSWERS[:1])  # its own chat template (ChatML), not [INST]
    assert problems == []
    result = attribute(model, rows, steps=DEFAULT_STEPS)[0]
    assert _complete(result), (result.signed, result.logprob, result.baseline_logprob, result.delta)


@pytest.fixture
def store_with_answers(tmp_path, tiny_model_dir):
    """A store with the three pairs and a completed evaluate run of the tiny base holding their answers."""
    db = open_db(tmp_path / "s.db")
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(NewExample(a.example_id, "d", "test", str(a.example_id),
                                                                a.premise, a.hypothesis, a.label))
                                         for a in ANSWERS])])
    run = start_run(db, "evaluate", {"adapter": None, "base": str(tiny_model_dir), "with_thought": True})
    add_generations(db, [{"example_id": a.example_id, "kind": "prediction", "model": str(tiny_model_dir),
                          "backend": "local", "thought_process": a.thought, "predicted_label": a.label,
                          "parse_status": "ok", "run_id": run} for a in ANSWERS])
    finish_run(db, run, "completed")
    return db, run


def test_a_run_stores_each_answer_and_continues_after_an_interruption(store_with_answers, tiny_model_dir):
    from pipeline.attribute_run import AttributeOptions, run_attribution

    db, _ = store_with_answers
    options = AttributeOptions(base=str(tiny_model_dir), rows_per_batch=1, steps=16)
    calls = []

    def stop_after_first_store(done, total):
        calls.append(done)
        if len(calls) == 2:  # the first batch of answers is stored, then the user presses Ctrl+C
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_attribution(db, options, progress=stop_after_first_store)
    first = db.execute("SELECT id, status FROM runs WHERE kind = 'attribute'").fetchone()
    assert first[1] == "cancelled" and attributions.done_ids(db, first[0]) == {1, 2, 3}
    # everything of that run was in one store call (4 rows a call): continue a fresh one instead
    db.execute("DELETE FROM attributions WHERE run_id = ? AND example_id = 3", [first[0]])
    db.conn.commit()
    again = run_attribution(db, options)
    assert again.resumed and again.run_id == first[0] and again.attributed == 1
    stored = attributions.latest(db, 3)
    assert stored is not None and stored.run_id == first[0] and stored.label == 1
    assert sum(stored.shares.values()) == pytest.approx(1.0)
    shares = attributions.run_shares(db)
    assert [s.examples for s in shares] == [3] and 0 < shares[0].thought < 1


def test_only_the_asked_examples_and_a_clear_error_without_answers(store_with_answers, tiny_model_dir, tmp_path):
    from pipeline.attribute_run import AttributeOptions, run_attribution
    from pipeline.evaluate.errors import EvaluationError

    db, _ = store_with_answers
    result = run_attribution(db, AttributeOptions(base=str(tiny_model_dir), example_ids=(2,), steps=16))
    assert attributions.done_ids(db, result.run_id) == {2}
    with pytest.raises(EvaluationError, match="run `nlistral evaluate --adapter"):
        run_attribution(db, AttributeOptions(adapter=str(tmp_path)))


def test_the_cli_prints_json(store_with_answers, tiny_model_dir):
    db, _ = store_with_answers
    path = db.execute("PRAGMA database_list").fetchone()[2]
    result = CliRunner().invoke(app, ["attribute", "--base", str(tiny_model_dir), "--db", path, "--steps", "16",
                                      "--ids", "1,3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["attributed"] == 2 and out["summary"]["examples"] == 2
    bad = CliRunner().invoke(app, ["attribute", "--base", str(tiny_model_dir), "--db", path, "--ids", "x"])
    assert bad.exit_code == 2 and "--ids 3,17,42" in bad.output


@pytest.mark.asyncio
async def test_the_review_app_colours_the_attributed_thought(demo_db_path, monkeypatch):
    from db.queues import QueueFilter, ids
    from nlistral_tui.pilot import press, running
    from nlistral_tui.widgets.detail_text import AGAINST, TOWARDS

    monkeypatch.setenv("NLISTRAL_REVIEWER", "pilot")
    db = open_db(demo_db_path)
    first = ids(db, QueueFilter(queue="disagreements"))[0]
    run = start_run(db, "evaluate", {"adapter": "/adapters/a", "with_thought": True})
    thought = 'Step 1: it says "[b]no[/b]". Step 2: so 0.'
    (answer,) = add_generations(db, [{"example_id": first, "kind": "prediction", "model": "a", "backend": "local",
                                      "thought_process": thought, "predicted_label": 0, "parse_status": "ok",
                                      "run_id": run}])
    attribute_run = start_run(db, "attribute", {"adapter": "/adapters/a", "eval_run": run})
    attributions.store(db, [{"run_id": attribute_run, "example_id": first, "generation_id": answer, "label": 0,
                             "logprob": -0.1, "baseline_logprob": -0.9, "delta": 0.001, "premise": 0.2,
                             "hypothesis": 0.1, "thought": 0.7,
                             "tokens": [[0, 4, 0.05], [16, 27, 0.5], [len(thought) - 2, len(thought), -0.2]]}])
    db.conn.close()
    async with running(demo_db_path, size=(200, 50)) as (app, pilot):
        assert app.screen.current.id == first
        pane = app.screen.detail
        _, right = pane._columns(pane.detail, False, 120)
        assert (f"ATTRIBUTION  run {attribute_run} · label 0 no-entailment · thought 70% · premise 20% · "
                "hypothesis 10%") in right.plain
        assert "press i to colour" in right.plain
        await press(app, pilot, "i")
        assert pane.colours
        _, right = pane._columns(pane.detail, False, 120)
        styled = {right.plain[s.start:s.end]: str(s.style) for s in right.spans
                  if str(s.style) in TOWARDS + AGAINST}
        assert styled == {"Step": TOWARDS[0], '"[b]no[/b]"': TOWARDS[2], "0.": AGAINST[1]}  # literal, not markup
        await press(app, pilot, "i")
        assert not pane.colours


def test_a_killed_attribute_run_continues_where_it_stopped(tmp_path, tiny_model_dir):
    """kill -9 after the first stored batch; the same command then computes only what is missing."""
    import os
    import subprocess
    import sys

    from kill import sigkill_when

    db_path = tmp_path / "s.db"
    db = open_db(db_path)
    many = [Answer(i, f"Premise number {i} about a dog in a park.", "A dog is outside.",
                   f"Step 1: the dog is in a park. Step 2: a park is outside, case {i}.", 1) for i in range(1, 13)]
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(NewExample(a.example_id, "d", "test", str(a.example_id),
                                                                a.premise, a.hypothesis, 1)) for a in many])])
    run = start_run(db, "evaluate", {"adapter": None, "base": str(tiny_model_dir), "with_thought": True})
    add_generations(db, [{"example_id": a.example_id, "kind": "prediction", "model": "tiny", "backend": "local",
                          "thought_process": a.thought, "predicted_label": 1, "parse_status": "ok", "run_id": run}
                         for a in many])
    finish_run(db, run, "completed")
    db.conn.close()
    argv = [sys.executable, "-c", "from pipeline.cli import main; main()", "attribute", "--base",
            str(tiny_model_dir), "--db", str(db_path), "--batch-size", "1", "--steps", "64"]
    env = {**os.environ, "NLISTRAL_CONFIG": str(tmp_path / "none.toml")}

    def stored() -> int:
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM attributions").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    first = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_when(first, lambda: stored() > 0, "a first batch of attributions stored", timeout_s=120)
    kept = stored()
    assert 0 < kept < 12
    again = subprocess.run([*argv, "--json"], env=env, cwd=tmp_path, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    result = json.loads(again.stdout)
    assert result["resumed"] and result["attributed"] == 12 - kept and result["summary"]["examples"] == 12
    assert stored() == 12


def test_an_unconverged_answer_is_integrated_again_with_twice_the_steps(tiny_model_dir):
    """Two steps do not converge on the tiny model; each answer is redone at 4, 8, ... steps until its delta is
    within 5 % (or max_steps), and says how many steps its result took."""
    model, tokenizer = _tiny(tiny_model_dir)
    rows, _ = prepare(tokenizer, ANSWERS)
    first = attribute(model, rows, steps=2, max_steps=2, rows_per_batch=3)
    assert [a.steps for a in first] == [2, 2, 2] and not all(a.converged for a in first)
    refined = attribute(model, rows, steps=2, max_steps=256, rows_per_batch=3)
    for before, after in zip(first, refined):
        assert after.converged and _complete(after)
        assert after.steps == 2 if before.converged else after.steps > 2
        assert after.steps & (after.steps - 1) == 0  # 2, 4, 8, ...: doubled, not arbitrary
        assert after.logprob == pytest.approx(before.logprob, abs=1e-5)  # the same output, a finer integral
    with pytest.raises(ValueError, match="max_steps"):
        attribute(model, rows, steps=64, max_steps=32)


def test_the_cli_refuses_more_first_steps_than_the_most(tmp_path):
    result = CliRunner().invoke(app, ["attribute", "--base", "x", "--db", str(tmp_path / "s.db"), "--steps", "64",
                                      "--max-steps", "32"])
    assert result.exit_code == 2 and "--steps 64 is more than --max-steps 32" in result.output


def test_stats_count_the_answers_whose_integral_did_not_converge(tmp_path):
    db = open_db(tmp_path / "s.db")
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(NewExample(i, "d", "test", str(i), "p", "h", 1))
                                         for i in (1, 2, 3)])])
    run = start_run(db, "evaluate", {"adapter": "/a", "with_thought": True})
    gids = add_generations(db, [{"example_id": i, "kind": "prediction", "model": "a", "backend": "local",
                                 "thought_process": "Step 1: yes.", "predicted_label": 1, "parse_status": "ok",
                                 "run_id": run} for i in (1, 2, 3)])
    attribute_run = start_run(db, "attribute", {"adapter": "/a", "eval_run": run})
    # difference 0.8: delta 0.01 is 1.25 % (converged), 0.2 is 25 %; difference 0.001 nats: held to 5 % of 0.01
    cases = {1: (-0.1, -0.9, 0.01), 2: (-0.1, -0.9, 0.2), 3: (-0.5, -0.501, 0.0004)}
    attributions.store(db, [{"run_id": attribute_run, "example_id": i, "generation_id": g, "label": 1,
                             "logprob": lp, "baseline_logprob": base, "delta": delta, "premise": 0.2,
                             "hypothesis": 0.1, "thought": 0.7, "tokens": []}
                            for (i, (lp, base, delta)), g in zip(cases.items(), gids)])
    (shares,) = attributions.run_shares(db)
    assert shares.examples == 3 and shares.unconverged == 1 and shares.as_dict()["unconverged"] == 1
    found = attributions.latest_for(db, [1, 2, 3])
    assert [found[i].converged for i in (1, 2, 3)] == [True, False, True]
    assert found[2].missed == pytest.approx(0.25)


def test_the_detail_pane_says_when_the_scores_did_not_converge():
    from types import SimpleNamespace

    from db.attributions import TokenScores
    from nlistral_tui.widgets.detail_text import attribution_content

    shares = {"premise": 0.2, "hypothesis": 0.1, "thought": 0.7}
    unsettled = TokenScores(4, 9, 1, [], shares, missed=0.25, converged=False)
    text = attribution_content(SimpleNamespace(attribution=unsettled, attributed=None), False).plain
    assert "not converged: the scores miss 25% of the output difference (nlistral attribute --max-steps)" in text
    settled = TokenScores(4, 9, 1, [], shares, missed=0.01, converged=True)
    assert "not converged" not in attribution_content(SimpleNamespace(attribution=settled, attributed=None), False).plain


@pytest.mark.slow
def test_a_lucky_sum_over_the_whole_path_does_not_pass_as_converged(smollm2_dir, shared_data):
    """On long answers the output along the path swings up and down, and one integral over the whole path can sum
    to the right total by luck: an RTE answer of 446 tokens on SmolLM2 missed 0.8 % at 16 steps (converged, by the
    whole-path check), then 71 % at 32, 92 % at 64 and 10 % at 128. Each quarter of the path is checked on its own
    now, so those 16 steps are reported as not converged."""
    import csv
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.spec_from_file_location("attribution_speed",
                                                  Path(__file__).parents[1] / "benchmarks" / "attribution_speed.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with (shared_data / "external" / "rte_dev.csv").open(newline="", encoding="utf-8") as fh:
        pairs = [(r["premise"], r["hypothesis"]) for r in csv.DictReader(fh)]
    premise, hypothesis = pairs[int(2 * len(pairs) / 6)]  # the third of benchmarks/attribution_speed.py's six
    answer = Answer(3, premise, hypothesis, bench.thought_for(premise, hypothesis), 1)
    model = full_precision(AutoModelForCausalLM.from_pretrained(smollm2_dir))
    rows, problems = prepare(AutoTokenizer.from_pretrained(smollm2_dir), [answer])
    assert problems == [] and len(rows[0].ids) == 446
    result = attribute(model, rows, steps=16, max_steps=16)[0]
    signed_miss = abs(sum(result.signed.values()) - (result.logprob - result.baseline_logprob))
    assert signed_miss <= abs(result.delta) + 1e-6  # the pieces' errors, unsigned, bound the total's
    assert not result.converged, (result.delta, result.logprob - result.baseline_logprob)
