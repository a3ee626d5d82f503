"""Training dynamics (Dataset Cartography): scored during a real two-epoch run of the tiny CPU model on
rows exported from a real store, checked against a hand computation, the regions at their edges, the
`nlistral cartography` command, cartography off, and the stats screen's data map."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from db import open_db
from db.cartography import (
    REGIONS,
    Dynamics,
    example_dynamics,
    example_rows,
    latest_dynamics_run,
    region_counts,
    region_sql,
    write_dynamics,
)
from db.runs import finish_run, get_run, start_run
from exports.options import SftOptions
from exports.run import write_to
from pipeline.cli import app
from pipeline.settings import Cartography
from pipeline.train.config import ConfigError, load_config
from pipeline.train.runner import run_training

pytestmark = pytest.mark.slow
EPOCH_STEPS = 4  # 8 rows, batch 2


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch, tmp_path):
    """One intra-op thread (faster for a tiny model on two shared cores); no user config file."""
    monkeypatch.setenv("NLISTRAL_CONFIG", str(tmp_path / "no-config.toml"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(model_dir: Path, data: Path, out: Path, *sets: str):
    base = [f"base_model={model_dir}", f"data={data}", f"output_dir={out}", "lora_r=8", "lora_alpha=16",
            "batch_size=2", "micro_batch_size=2", "epochs=2", "warmup_steps=1", "logging_steps=1",
            f"save_steps={EPOCH_STEPS}", f"eval_steps={EPOCH_STEPS}", "eval_fraction=0", "early_stopping_patience=0",
            "gradient_checkpointing=none", "learning_rate=5e-2"]
    return load_config(None, base + list(sets))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """A demo store, six of its rows exported (plus one without an id and one not in the store), trained
    two epochs with cartography on (a checkpoint at each epoch's end)."""
    from pipeline.demo import build_demo

    folder = tmp_path_factory.mktemp("cartography")
    db_path = build_demo(folder / "demo.db")
    store = open_db(db_path)
    write_to(store, SftOptions(ablation="correct-only"), out=folder / "all.jsonl")
    store.conn.close()
    rows = [json.loads(line) for line in (folder / "all.jsonl").read_text(encoding="utf-8").splitlines()[:6]]
    no_id = {k: v for k, v in rows[0].items() if k != "id"}
    elsewhere = {**rows[1], "id": 999_999}
    export = folder / "train.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in [*rows, no_id, elsewhere]), encoding="utf-8")
    torch.set_num_threads(1)
    result = run_training(_config(tiny_model_dir, export, folder / "run"), db_path=db_path)
    assert result.status == "completed", result.error
    return SimpleNamespace(db_path=db_path, result=result, rows=rows, export=export, folder=folder)


def _stored(db_path: Path, run_id: int) -> dict[int, tuple]:
    store = open_db(db_path)
    try:
        return {r[0]: r[1:] for r in store.execute(
            "SELECT example_id, gold_label, probabilities, confidence, variability, correctness "
            "FROM training_dynamics WHERE run_id = ?", [run_id])}
    finally:
        store.conn.close()


def test_a_two_epoch_run_stores_one_row_per_example_with_two_probabilities(trained):
    result = trained.result
    stored = _stored(trained.db_path, result.run_id)
    assert sorted(stored) == sorted(r["id"] for r in trained.rows)
    for row in trained.rows:
        gold, probabilities = stored[row["id"]][0], json.loads(stored[row["id"]][1])
        assert gold == json.loads(row["text"].split(" [/INST] ")[1].removesuffix(" </s>"))["predicted_label"]
        assert len(probabilities) == 2 and all(0 < p < 1 for p in probabilities)
    metrics = get_run(open_db(trained.db_path), result.run_id).metrics
    assert metrics["cartography_passes"] == metrics["cartography_checkpoints"] == 2
    assert metrics["cartography_examples"] == 8 and metrics["cartography_rows"] == 6
    assert metrics["cartography_not_stored"] == {"missing_id": 1, "not_in_store": 1, "duplicate_id": 0}
    assert metrics["cartography_s_per_pass"] > 0 and metrics["cartography_examples_per_s"] > 0
    events = [json.loads(line) for line in result.log_path.read_text(encoding="utf-8").splitlines()]
    passes = [e for e in events if e["event"] == "cartography"]
    assert [(e["step"], e["epoch"], e["examples"]) for e in passes] == [(4, 1.0, 8), (8, 2.0, 8)]
    assert all(e["seconds"] > 0 and e["examples_per_s"] > 0 for e in passes)
    assert next(e for e in events if e["event"] == "cartography_stored")["cartography_rows"] == 6
    lines = (result.output_dir / "cartography.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["step"] for line in lines] == [4, 8]


def _by_hand(model_dir: Path, adapter: Path, text: str, label: int) -> tuple[float, bool]:
    """P(gold label) between the two label tokens and gold > other, from one plain forward pass of base + adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tail = f'"predicted_label": {label}}}'
    swapped = text[: text.rindex(tail)] + f'"predicted_label": {1 - label}}}' + text[text.rindex(tail) + len(tail):]
    gold_ids, other_ids = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in (text, swapped))
    at = next(i for i, (a, b) in enumerate(zip(gold_ids, other_ids)) if a != b)
    assert tokenizer.decode([gold_ids[at]]).strip() == str(label)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([gold_ids[:at]])).logits[0, -1]
    pair = torch.stack([logits[gold_ids[at]], logits[other_ids[at]]])
    return torch.softmax(pair, -1)[0].item(), bool(logits[gold_ids[at]] > logits[other_ids[at]])


def test_the_numbers_match_a_hand_computation(trained, tiny_model_dir):
    run_dir = trained.result.output_dir
    stored = _stored(trained.db_path, trained.result.run_id)
    for row in trained.rows[:3]:
        gold, probabilities, confidence, variability, correctness = stored[row["id"]]
        probabilities = json.loads(probabilities)
        # Epoch 1 ended at checkpoint-4; epoch 2 is the final adapter.
        hand = [_by_hand(tiny_model_dir, adapter, row["text"], gold)
                for adapter in (run_dir / "checkpoints" / f"checkpoint-{EPOCH_STEPS}", run_dir / "adapter")]
        assert probabilities == pytest.approx([p for p, _ in hand], rel=1e-4)
        p1, p2 = probabilities
        assert confidence == pytest.approx((p1 + p2) / 2, abs=1e-12)
        assert variability == pytest.approx(abs(p1 - p2) / 2, abs=1e-12)  # population std of two values
        assert correctness == sum(win for _, win in hand) / 2


def _fake_run(store, *rows: tuple[int, float, float]) -> int:
    run_id = start_run(store, "train", {"method": "sft", "cartography": True})
    write_dynamics(store, run_id, [Dynamics(i, 1, (conf,), conf, var, 0.5) for i, conf, var in rows])
    finish_run(store, run_id, "completed")
    return run_id


def _region_ids(store, region: str, run_id: int | None, thresholds) -> list[int]:
    where, args = region_sql(region, run_id, thresholds)
    return [r[0] for r in store.execute(f"SELECT e.id FROM examples e WHERE {where} ORDER BY e.id", args)]


def test_regions_at_the_thresholds_edges(demo_db_path):
    store = open_db(demo_db_path)
    edges = Cartography()  # variability 0.2, confidence 0.5
    assert _region_ids(store, "easy", None, edges) == [] and latest_dynamics_run(store) is None
    older = _fake_run(store, (1, 0.1, 0.0))
    run = _fake_run(store, (1, 0.9, 0.2), (2, 0.5, 0.19999), (3, 0.49999, 0.19999), (4, 0.0, 0.0), (5, 0.1, 0.5))
    expected = {"ambiguous": [1, 5], "easy": [2], "hard_to_learn": [3, 4]}
    assert {r.example_id: r.region for r in example_rows(store, run, edges)} == {1: "ambiguous", 2: "easy",
                                                                                 3: "hard_to_learn",
                                                                                 4: "hard_to_learn", 5: "ambiguous"}
    assert region_counts(store, run, edges) == {k: len(v) for k, v in expected.items()}
    assert latest_dynamics_run(store) == run
    for region in REGIONS:
        assert _region_ids(store, region, run, edges) == _region_ids(store, region, None, edges) == expected[region]
    assert _region_ids(store, "hard_to_learn", older, edges) == [1]
    strict = Cartography(ambiguous_variability=0.5, hard_confidence=0.95)
    assert _region_ids(store, "easy", run, strict) == [] and _region_ids(store, "ambiguous", run, strict) == [5]
    assert [(d.run_id, d.region) for d in example_dynamics(store, 1, edges)] == [(run, "ambiguous"),
                                                                                (older, "hard_to_learn")]
    with pytest.raises(ValueError, match="unknown cartography region 'hard'"):
        region_sql("hard", run, edges)
    store.conn.close()


def test_cli_json_the_text_view_and_its_errors(trained, tmp_path, monkeypatch):
    runner = CliRunner()
    db = str(trained.db_path)
    out = runner.invoke(app, ["cartography", "--json", "--db", db])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["run"] == trained.result.run_id and data["checkpoints"] == 2
    assert data["thresholds"]["ambiguous_variability"] == 0.2 and data["thresholds"]["hard_confidence"] == 0.5
    assert sum(data["regions"].values()) == 6 and set(data["regions"]) == set(REGIONS)
    assert sorted(e["id"] for e in data["examples"]) == sorted(r["id"] for r in trained.rows)
    assert all(set(e) == {"id", "confidence", "variability", "correctness", "region"} for e in data["examples"])
    stored = _stored(trained.db_path, trained.result.run_id)
    assert all(e["confidence"] == stored[e["id"]][2] for e in data["examples"])

    config = tmp_path / "config.toml"
    config.write_text("[cartography]\nhard_confidence = 0.0\n", encoding="utf-8")
    monkeypatch.setenv("NLISTRAL_CONFIG", str(config))
    text = runner.invoke(app, ["cartography", str(trained.result.run_id), "--db", db])
    assert text.exit_code == 0, text.output
    assert f"Run {trained.result.run_id} (sft, completed)" in text.output and "2 checkpoint(s)" in text.output
    assert f"confidence < 0; otherwise easy (thresholds from [cartography] in {config})" in text.output
    assert "Data map" in text.output and "No hard-to-learn examples in this run." in text.output

    missing = runner.invoke(app, ["cartography", "999", "--db", db])
    assert missing.exit_code == 2 and "run 999 does not exist" in missing.output
    assert f"train runs with dynamics: {trained.result.run_id}" in missing.output
    from pipeline.demo import build_demo

    fresh = build_demo(tmp_path / "fresh.db")
    none = runner.invoke(app, ["cartography", "--db", str(fresh)])
    assert none.exit_code == 1 and "holds no training dynamics: no train run stored any" in none.output


def test_cartography_off_writes_nothing_and_the_command_says_why(trained, tiny_model_dir):
    config = _config(tiny_model_dir, trained.export, trained.folder / "off", "cartography=false", "max_steps=2")
    result = run_training(config, db_path=trained.db_path)
    assert result.status == "completed", result.error
    assert _stored(trained.db_path, result.run_id) == {}
    assert not (result.output_dir / "cartography.jsonl").exists()
    assert not [k for k in result.metrics if k.startswith("cartography")]
    events = [json.loads(line)["event"] for line in result.log_path.read_text(encoding="utf-8").splitlines()]
    assert not [e for e in events if e.startswith("cartography")]
    out = CliRunner().invoke(app, ["cartography", str(result.run_id), "--db", str(trained.db_path)])
    assert out.exit_code == 1
    assert f"run {result.run_id} has no training dynamics (it was trained with cartography: false)" in out.output
    assert f"pick a run that has them: {trained.result.run_id}" in out.output


def test_scoring_every_n_steps_and_the_label_only_target(trained, tiny_model_dir):
    config = _config(tiny_model_dir, trained.export, trained.folder / "steps", "method=label-only",
                     "cartography_every_steps=1", "max_steps=2")
    result = run_training(config, db_path=trained.db_path)
    assert result.status == "completed", result.error
    stored = _stored(trained.db_path, result.run_id)
    assert len(stored) == 6 and all(len(json.loads(v[1])) == 2 for v in stored.values())
    p1, p2 = json.loads(next(iter(stored.values()))[1])
    assert p1 != p2  # a step apart, the model moved


@pytest.mark.parametrize("attn", ["sdpa", "varlen"])
def test_scoring_packed_or_padded_matches_one_forward_per_row(trained, tiny_model_dir, attn):
    """Both layouts (varlen: packed as training packs; sdpa: padded) and both targets (CoT, label-only)."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from pipeline.train import attention, data
    from pipeline.train.label_scores import label_slots, score_gold, scoring_collator
    from pipeline.train.model import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    records = data.read_sft(trained.export)
    records += [data.label_only(r) for r in records]
    encoded = data.encode_sft(records, tokenizer, 512)
    found = label_slots(encoded.records, encoded.rows, tokenizer)
    assert len(found.slots) == 16 and not found.unscorable
    assert all(tokenizer.decode([s.gold_token]).strip() == str(s.gold_label) for s in found.slots)
    name = attention.register() if attn == "varlen" else attn
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=name).eval()
    collator = scoring_collator(DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id,
                                                                padding_free=True), model)
    assert collator.padding_free == (attn == "varlen")
    scores = score_gold(model, collator, found.slots, rows_per_batch=5)
    with torch.no_grad():
        for slot, p, win in zip(found.slots, scores.p_gold, scores.gold_wins):
            logits = model(input_ids=torch.tensor([slot.prefix])).logits[0, -1]
            pair = torch.stack([logits[slot.gold_token], logits[slot.other_token]])
            assert p == pytest.approx(torch.softmax(pair, -1)[0].item(), rel=1e-5)
            assert win == bool(logits[slot.gold_token] > logits[slot.other_token])


def test_config_refuses_cartography_for_dpo_and_negative_steps(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="cartography: is for method sft and label-only"):
        load_config(None, ["method=dpo", "lora_alpha=32", "cartography=true"])
    assert load_config(None, ["method=dpo", "lora_alpha=32"]).method == "dpo"  # the default does not get in the way
    with pytest.raises(ConfigError, match="cartography_every_steps: must be 0 or more"):
        load_config(None, ["lora_alpha=32", "cartography_every_steps=-1"])
    with pytest.raises(ConfigError, match="needs cartography: true"):
        load_config(None, ["lora_alpha=32", "cartography=false", "cartography_every_steps=5"])


def test_resume_drops_passes_after_its_checkpoint_and_a_torn_line(tmp_path):
    from pipeline.train.cartography import FILE_NAME, CartographyTracker, read_passes
    from pipeline.train.label_scores import Slots

    path = tmp_path / FILE_NAME
    path.write_text("".join(json.dumps({"step": s, "ids": [1], "p_gold": [0.5], "gold_wins": [1]}) + "\n"
                            for s in (4, 8, 8)) + '{"step": 12, "ids"', encoding="utf-8")
    assert [p["step"] for p in read_passes(path)] == [4, 8]
    tracker = CartographyTracker(Slots([], []), output_dir=tmp_path, log=None, meter=None,
                                 hw=SimpleNamespace(is_main=True), every_steps=0, rows_per_batch=1,
                                 stop_requested=lambda: False)
    tracker.on_train_begin(None, SimpleNamespace(global_step=6), None)
    assert [p["step"] for p in read_passes(path)] == [4]


@pytest.mark.asyncio
async def test_the_stats_screen_draws_the_latest_data_map(demo_db_path):
    from textual.widgets import Static

    from nlistral_tui.pilot import press, running, screen_text, settle

    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "S")
        await settle(app, pilot)
        assert "No training dynamics yet" in str(app.screen.query_one("#carto-note", Static).content)
        assert not app.screen.query_one("#carto-plot").display
        await press(app, pilot, "escape")
        store = open_db(demo_db_path)
        run = _fake_run(store, (1, 0.9, 0.05), (2, 0.2, 0.05), (3, 0.6, 0.3))
        store.conn.close()
        await press(app, pilot, "S")
        await settle(app, pilot)
        note = str(app.screen.query_one("#carto-note", Static).content)
        assert f"Run {run} (sft, completed)" in note and "easy 1, ambiguous 1, hard_to_learn 1" in note
        assert app.screen.query_one("#carto-plot").display
        app.screen.query_one("#stats-body").scroll_end(animate=False)
        await settle(app, pilot)
        assert "Data map" in screen_text(app) and "variability" in screen_text(app)


def test_summaries_are_the_mean_population_std_and_share():
    from pipeline.train.cartography import summarize

    assert summarize([0.2, 0.4, 0.9], [False, True, True]) == pytest.approx(
        (0.5, statistics.pstdev([0.2, 0.4, 0.9]), 2 / 3))
