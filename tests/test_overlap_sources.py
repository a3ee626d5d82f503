"""The leakage check reads only the files a training run trained (or early-stopped) on, never its own log."""
from __future__ import annotations

import json

from db import open_db
from db.examples import content_hash
from db.runs import finish_run, start_run
from exports.formats import cot_target, inst_text, user_prompt
from pipeline.evaluate.overlap import find_overlaps
from pipeline.train.config import TrainConfig, save_config


def test_the_training_log_beside_the_adapter_is_not_read_as_data(demo_db_path, tmp_path):
    db = open_db(demo_db_path)
    pairs = db.execute("SELECT premise, hypothesis, gold_label FROM examples ORDER BY id").fetchall()
    out = tmp_path / "runs" / "smoke"
    adapter = out / "adapter"
    adapter.mkdir(parents=True)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"id": i, "text": inst_text(user_prompt(p, h), cot_target("t", g))}) + "\n"
                            for i, (p, h, g) in enumerate(pairs[:4])))
    # As pipeline/train/runner.py leaves them: the resolved config, a JSONL log of 13 events, and a run
    # record naming the data, the log and the adapter.
    config = TrainConfig(data=str(data), lora_alpha=32, output_dir=str(out))
    save_config(config, out / "config.yaml")
    log = out / "train_log.jsonl"
    record = {**config.to_dict(), "export": {"path": str(data), "sha256": "x", "export_id": None},
              "eval_export": None, "log_path": str(log), "resume": False, "hardware": {"cuda": False}}
    events = [{"event": "start", "run_id": 1, "method": "sft", "output_dir": str(out), "config": record},
              *({"event": "log", "step": s, "loss": 1.0 / s} for s in range(1, 12)), {"event": "end"}]
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    run_id = start_run(db, "train", record)
    finish_run(db, run_id, "completed", artifacts={"output_dir": str(out), "log": str(log),
                                                   "config": str(out / "config.yaml"), "adapter": str(adapter)})
    evaluated = {content_hash(p, h) for p, h, _ in pairs}

    overlaps, notes = find_overlaps(db, adapter, evaluated)
    db.conn.close()
    assert notes == []  # was: "train_log.jsonl: 13 records name no premise/hypothesis ..."
    assert [(o.role, o.source, o.shared) for o in overlaps] == [("training (and early-stopping)", str(data), 4)]
