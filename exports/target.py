"""Where an export goes: its output path checked before any work, the temporary names it may create, and
the default name the review app offers.

An output (the --out file or --hf folder, and the manifest FILE.manifest.json beside it) may never be
the store, one of its companion files or an input of the export (db.paths.refuse_clobber), and an
existing one is replaced only when asked (overwrite). Every temporary name is chosen here, up front,
so the export's run can record them all before the first is created (a sweep of interrupted runs
deletes them): each starts with "." and ends with ".tmp".
"""
from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from db.errors import OutputPathError
from db.paths import refuse_clobber
from exports.errors import ExportTargetError, TargetExistsError

# What save_to_disk writes into every datasets folder: only such a folder is replaced by --overwrite.
_DATASET_MARKERS = ("dataset_info.json", "state.json")


def manifest_path(path: Path) -> Path:
    """Where the manifest of an export at path goes: FILE.manifest.json (or FOLDER.manifest.json)."""
    return path.with_name(path.name + ".manifest.json")


def _temporary(path: Path, what: str = "") -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{what}.tmp")


@dataclass(frozen=True)
class Target:
    """A checked output: the data path, its manifest, and the temporary names the export may create."""

    path: Path  # absolute
    folder: bool  # a datasets folder (--hf) rather than a JSON Lines file
    manifest: Path
    data_tmp: Path  # the data is written here, then renamed (or, for a folder, swapped) into place
    manifest_tmp: Path
    aside_tmp: Path | None  # a folder replaced without an atomic swap is moved here first, then removed

    @property
    def temporaries(self) -> list[str]:
        """Every temporary path, absolute (what the export's run records)."""
        return [str(p) for p in (self.data_tmp, self.manifest_tmp, self.aside_tmp) if p is not None]


def _is_dataset_folder(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _DATASET_MARKERS)


def _taken(path: Path) -> bool:
    """Whether something is at path (a dangling link counts: writing would replace it)."""
    return path.exists() or path.is_symlink()


def check_target(path: str | Path, *, folder: bool, overwrite: bool = False, store: str | Path | None = None,
                 inputs: Iterable[str | Path] = (), listed: str = "") -> Target:
    """The checked output of an export, or ExportTargetError saying what is in the way and how to fix it.

    listed describes an export of the store already at that path (for the message), if any.
    """
    option = "--hf" if folder else "--out"
    path = Path(path).expanduser().absolute()
    manifest = manifest_path(path)
    inputs = list(inputs)
    if not folder and path.is_dir():
        raise ExportTargetError(f"{path} is a directory; give --out the path of a .jsonl file.")
    try:
        refuse_clobber(path, option=option, store=store, inputs=inputs)
        refuse_clobber(manifest, option=f"the manifest of {option}", store=store, inputs=inputs)
    except OutputPathError as exc:
        raise ExportTargetError(str(exc)) from None
    if manifest.is_dir():
        raise ExportTargetError(f"{manifest} is a directory, where the manifest of {path} goes; move it or "
                                f"choose another path for {option}.")
    if not path.parent.is_dir():
        raise ExportTargetError(f"The folder {path.parent} does not exist; create it first (mkdir -p).")
    empty_folder = folder and path.is_dir() and not any(path.iterdir())
    if folder and path.is_dir() and not empty_folder and not _is_dataset_folder(path):
        raise ExportTargetError(f"{path} is a folder that holds other files, not a datasets folder written by "
                                "`nlistral export --hf`, so it is never replaced (not even with --overwrite). "
                                "Choose another path, or remove the folder yourself.")
    taken = [p for p in (path, manifest) if _taken(p) and not (p == path and empty_folder)]
    if taken and not overwrite:
        what = f" ({listed})" if listed else ""
        raise TargetExistsError(f"{taken[0]} already exists{what}. Pass --overwrite to replace it (the export it "
                                f"holds is then marked superseded in `nlistral exports`), or choose another path.")
    return Target(path=path, folder=folder, manifest=manifest, data_tmp=_temporary(path),
                  manifest_tmp=_temporary(manifest), aside_tmp=_temporary(path, ".old") if folder else None)


def _is_taken(path: Path) -> bool:
    """Whether an export to path would replace something (its file or folder, or its manifest)."""
    path = Path(path).expanduser().absolute()
    if path.is_dir() and not any(path.iterdir()):
        return _taken(manifest_path(path))
    return _taken(path) or _taken(manifest_path(path))


def default_path(store: str | Path, kind: str, rule: str) -> Path:
    """A fresh file beside the store, STORE-KIND-RULE.jsonl (numbered -2, -3, ... when taken), never inside
    a Python package folder (running from a repository root must not write into its packages)."""
    store = Path(os.path.abspath(Path(store).expanduser()))
    folder = store.parent
    while (folder / "__init__.py").exists() and folder.parent != folder:
        folder = folder.parent
    base = f"{store.stem}-{kind}-{rule}"
    for n in itertools.count(1):
        candidate = folder / (f"{base}.jsonl" if n == 1 else f"{base}-{n}.jsonl")
        if not _is_taken(candidate):
            return candidate
    raise AssertionError("unreachable")
