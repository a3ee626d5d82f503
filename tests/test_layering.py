"""The headless core never imports Textual: every capability runs and is tested without a terminal."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_packages_do_not_import_textual_or_the_app():
    allowed = {"db": {"pipeline", "exports", "nlistral_tui"}, "exports": {"pipeline", "nlistral_tui"},
               "pipeline": {"nlistral_tui"}}
    offenders = []
    for package, forbidden in allowed.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & ({"textual", "textual_plotext"} | forbidden)
            if path.relative_to(ROOT).as_posix() == "pipeline/cli/app.py":
                bad -= {"nlistral_tui"}  # `nlistral tui` opens the app, importing it lazily inside the command
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders
