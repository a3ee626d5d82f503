"""Does training learn, as our own commands report it? (issue 16's learning check)

    python benchmarks/learning_check.py prepare OUT      # a store of SICK train and test, and the training file
    bash benchmarks/learning_check_gpu.sh OUT BASE_DIR RESULTS EPOCHS   # GPU: zero-shot, train, trained, forced
    python benchmarks/learning_check.py forced DB EVAL_JSON OUT_JSON   # the teacher-forced check of one run

SICK (`../shared/data/external/sick_{train,test}.csv`) is imported as dataset `sick`; the training file
holds every train pair in the label-only layout, each row with its store id. Label-only training needs no
thought: exports.lines.sft_line writes a placeholder thought that the label-only target drops
(pipeline.train.data.label_only keeps the label alone), so the rows come straight from the pairs.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from db.connection import open_db
from exports.lines import sft_line

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "external"
PLACEHOLDER_THOUGHT = "(no thought: label-only training)"


def prepare(out: Path) -> None:
    """Import SICK train and test into OUT/store.db and write OUT/train.jsonl."""
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "import",
                        str(DATA / f"sick_{split}.csv"), "--dataset", "sick", "--split", split,
                        "--db", str(out / "store.db")], check=True, cwd=ROOT)
    db = open_db(out / "store.db")
    with (out / "train.jsonl").open("w", encoding="utf-8") as f:
        rows = db.execute("SELECT id, source_id, premise, hypothesis, gold_label FROM examples WHERE split = ? "
                          "ORDER BY id", ["train"])
        for example_id, source_id, premise, hypothesis, gold in rows:
            f.write(sft_line(example_id, "sick", source_id, premise, hypothesis, PLACEHOLDER_THOUGHT, gold, "inst"))


def auc(scores: list[float], gold: list[int]) -> float:
    """Area under the ROC curve of P(label 1) against gold (ties count half), by ranks."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    positives = sum(gold)
    negatives = len(gold) - positives
    rank_sum = sum(r for r, g in zip(ranks, gold) if g == 1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def forced(db_path: Path, eval_json: Path, out: Path) -> None:
    """The teacher-forced check (pipeline.evaluate.teacher_forced) of the run that wrote eval_json."""
    from pipeline.evaluate.teacher_forced import check_run

    run_id = json.loads(eval_json.read_text(encoding="utf-8"))["run_id"]
    check = check_run(open_db(db_path), run_id)
    record = {**check.as_dict(), "forced_auc": round(auc(check.p_label1, check.gold), 4)}
    print(json.dumps(record), flush=True)
    out.write_text(json.dumps({**record, "example_ids": check.example_ids, "forced": check.forced,
                               "greedy": check.greedy, "p_label1": [round(p, 5) for p in check.p_label1]}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["prepare"] and len(sys.argv) == 3:
        prepare(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["forced"] and len(sys.argv) == 5:
        forced(*map(Path, sys.argv[2:5]))
    else:
        sys.exit(__doc__)
