"""Calibration of the length estimate (exports/length.py) against Mistral-7B-v0.3's tokenizer.

Usage: python benchmarks/length_estimate.py --model PATH [--max-tokens 512]
PATH is a SentencePiece model of the v3 Mistral tokenizer, e.g. the file
mistral_common/data/mistral_instruct_tokenizer_240323.model.v3 of the mistral-common wheel
(`pip download --no-deps mistral-common`, then unzip). Needs the `sentencepiece` package (not a
project dependency: install it in a scratch environment) and ../shared/data.

Records are laid out as SFT rows (exports.lines.sft_text): the seed sample's thoughts and
reflections, the demo data, and every RTE / SICK train pair with a seed thought attached. The
true count is the SentencePiece count of the text plus 4 control tokens (<s>, [INST], [/INST],
</s>, which the tokenizer keeps as single tokens). Prints one JSON line per corpus.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def _records() -> dict[str, list[tuple[str, str, str, int]]]:
    seed = SHARED / "seed_sample"
    corpora: dict[str, list[tuple[str, str, str, int]]] = {"seed": [], "demo": [], "rte": [], "sick": []}
    for name, key in (("sample_thoughts.json", "thought_process"),
                      ("sample_reflections.json", "improved_thought_process")):
        for line in (seed / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                corpora["seed"].append((d["premise"], d["hypothesis"], d[key], int(d["predicted_label"])))
    for name in ("thoughts.jsonl", "reflections.jsonl"):
        for line in (ROOT / "pipeline" / "demo_data" / name).read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            thought = d.get("improved_thought_process") or d.get("thought_process")
            if isinstance(thought, str) and d.get("predicted_label") in (0, 1):
                corpora["demo"].append((d["premise"], d["hypothesis"], thought, d["predicted_label"]))
    thoughts = [t for _, _, t, _ in corpora["seed"]]
    for name, corpus in (("rte_train.csv", "rte"), ("sick_train.csv", "sick")):
        with (SHARED / "external" / name).open(newline="", encoding="utf-8") as fh:
            for i, r in enumerate(csv.DictReader(fh)):
                corpora[corpus].append((r["premise"], r["hypothesis"], thoughts[i % len(thoughts)], int(r["label"])))
    return corpora


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"skipped: {SHARED} not found")
    try:
        import sentencepiece
    except ImportError:
        sys.exit("needs the sentencepiece package: pip install sentencepiece (in a scratch environment)")
    sys.path.insert(0, str(ROOT))
    from exports.formats import cot_target, inst_text, user_prompt
    from exports.length import estimate_tokens
    from exports.lines import sft_text

    processor = sentencepiece.SentencePieceProcessor(model_file=str(args.model))
    for corpus, records in _records().items():
        ratios, under, falsely_out, longest = [], 0, 0, 0
        for premise, hypothesis, thought, label in records:
            true = len(processor.encode(user_prompt(premise, hypothesis) + " " + cot_target(thought, label))) + 4
            estimate = estimate_tokens(sft_text(premise, hypothesis, thought, label))
            assert sft_text(premise, hypothesis, thought, label) == inst_text(user_prompt(premise, hypothesis),
                                                                              cot_target(thought, label))
            ratios.append(true / estimate)
            under += estimate < true
            falsely_out += estimate > args.max_tokens >= true
            longest = max(longest, true)
        print(json.dumps({"corpus": corpus, "records": len(records), "estimate_below_true": under,
                          "max_true_over_estimate": round(max(ratios), 3),
                          "median_true_over_estimate": round(statistics.median(ratios), 3),
                          "longest_true": longest, f"left_out_but_fit_at_{args.max_tokens}": falsely_out}))


if __name__ == "__main__":
    main()
