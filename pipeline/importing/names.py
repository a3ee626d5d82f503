"""Dataset and split from a file's name, and where each came from (always printed by `import`).

A split is a whole word of the name (words are separated by `_`, `-`, `.` or spaces), anywhere in
it: `wnli_dev_reconstructed.csv` is split dev, `mnli_dev_matched_sample.csv` too. Held-out words
win over `train` when a name holds both, so held-out data never lands in a training export by a
guess. One name per split, so `evaluate --split dev` finds every development set:
`validation`, `valid`, `val` and SICK's `trial` (its held-out development set) are all `dev`.
The dataset is the name without the split word: `wnli_dev_reconstructed` is dataset
`wnli_reconstructed` (kept apart from the original `wnli` dev set, whose row ids would collide);
a file named only for its split (GLUE's `RTE/dev.tsv`) takes its folder's name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SPLIT_WORDS = {
    "train": "train", "training": "train",
    "dev": "dev", "development": "dev", "validation": "dev", "valid": "dev", "val": "dev", "trial": "dev",
    "test": "test",
}
_STAGE_SUFFIX = re.compile(r"[_.\- ](thoughts?|reflections?)$", re.IGNORECASE)
_WORDS = re.compile(r"([_.\- ]+)")


@dataclass(frozen=True)
class Names:
    """The dataset and split an import lands in, and where each came from (for the summary)."""

    dataset: str
    split: str
    dataset_from: str
    split_from: str


def default_names(path: Path) -> tuple[str, str]:
    """Dataset and split from a file name: rte_dev.csv -> (rte, dev); sample_thoughts.json -> (sample, train)."""
    names = choose_names(path)
    return names.dataset, names.split


def choose_names(path: Path, dataset: str | None = None, split: str | None = None) -> Names:
    """The dataset and split (the options when given, else guessed from the file name), with their sources."""
    stem = _STAGE_SUFFIX.sub("", Path(path.name).stem)
    parts = _WORDS.split(stem)  # words at even indexes, separators between them
    found = [i for i in range(0, len(parts), 2) if parts[i].lower() in SPLIT_WORDS]
    held_out = [i for i in found if SPLIT_WORDS[parts[i].lower()] != "train"]
    chosen = (held_out or found)[-1] if found else None
    if chosen is None:
        guessed_dataset, guessed_split = stem, "train"
        split_source = "the default: the file name names no split"
    else:
        word = parts[chosen]
        guessed_split = SPLIT_WORDS[word.lower()]
        # Drop the word and the separator before it (after it, when it comes first).
        rest = parts[:max(chosen - 1, 0)] + parts[chosen + 2 if chosen == 0 else chosen + 1:]
        guessed_dataset = "".join(rest)
        others = sorted({parts[i] for i in found if i != chosen and SPLIT_WORDS[parts[i].lower()] != guessed_split})
        split_source = f"from the word '{word}' in the file name" + (
            f", which also holds {', '.join(repr(o) for o in others)}" if others else "")
    dataset_source = "from the file name"
    if not guessed_dataset.strip(" _.-"):
        guessed_dataset = Path(path).resolve().parent.name or "default"
        dataset_source = "from the folder name"
    return Names(
        dataset if dataset is not None else guessed_dataset,
        split if split is not None else guessed_split,
        "from --dataset" if dataset is not None else f"{dataset_source}; pass --dataset to change",
        "from --split" if split is not None else f"{split_source}; pass --split to change",
    )
