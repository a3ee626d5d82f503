"""Does training learn, as our own commands report it? (issue 16's learning check)

    python benchmarks/learning_check.py prepare OUT      # a store of SICK train and test, and the training file
    bash benchmarks/learning_check_gpu.sh OUT BASE_DIR RESULTS EPOCHS   # GPU: zero-shot, train, trained

SICK (`../shared/data/external/sick_{train,test}.csv`) is imported as dataset `sick`; the training file
holds every train pair in the label-only layout, each row with its store id. Label-only training needs no
thought: exports.lines.sft_line writes a placeholder thought that the label-only target drops
(pipeline.train.data.label_only keeps the label alone), so the rows come straight from the pairs.
"""
from __future__ import annotations

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


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "prepare":
        sys.exit(__doc__)
    prepare(Path(sys.argv[2]))
