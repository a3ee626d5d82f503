"""The layers: db -> exports -> pipeline -> nlistral_tui, each importing only those left of it.

The headless core never imports Textual: every capability runs and is tested without a terminal. Inside
pipeline, the command line (pipeline/cli) is a layer on top of the core, and the Rich views
(pipeline/views) are shown only by the command line and the review app.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("db", "exports", "pipeline", "nlistral_tui")
TEXTUAL = ("textual", "textual_plotext")
# (files a rule covers, modules they must not import, files the rule leaves out): a module is given with
# its submodules; a folder or file ends in "/" or ".py" and covers what lies under it.
RULES = (
    (("db/", "exports/", "pipeline/"), TEXTUAL, ()),
    (("db/",), ("exports", "pipeline", "nlistral_tui"), ()),
    (("exports/",), ("pipeline", "nlistral_tui"), ()),
    # `nlistral tui` and `nlistral demo` open the app, importing it lazily inside the command.
    (("pipeline/",), ("nlistral_tui",), ("pipeline/cli/review.py",)),
    (("pipeline/",), ("pipeline.cli",), ("pipeline/cli/",)),
    (("pipeline/",), ("pipeline.views",), ("pipeline/cli/", "pipeline/views/")),
)


def layering_violations(root: Path) -> list[str]:
    """Every import under root (its db, exports, pipeline and nlistral_tui) that breaks one of RULES."""
    found = []
    for path in sorted(p for package in PACKAGES for p in (root / package).rglob("*.py")):
        name = path.relative_to(root).as_posix()
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported.update(f"{node.module}.{a.name}" for a in node.names)  # from pipeline import cli
        for covered, forbidden, exempt in RULES:
            if name.startswith(covered) and not name.startswith(exempt):
                bad = {m for m in imported if any(m == f or m.startswith(f"{f}.") for f in forbidden)}
                found.extend(f"{name} imports {m}" for m in sorted(bad)
                             if not any(m.startswith(f"{b}.") for b in bad))  # a.b.c only as a.b
    return found


def test_core_packages_do_not_import_textual_or_the_app():
    assert layering_violations(ROOT) == []


def test_the_check_finds_each_kind_of_violation(tmp_path):
    bad = {
        "db/a.py": "import textual\nfrom exports.formats import X\n",
        "exports/b.py": "from pipeline import cli\n",
        "pipeline/c.py": "import nlistral_tui.app\nfrom pipeline.cli.common import fail\nfrom pipeline import views\n",
        "pipeline/client.py": "from pipeline.client_extra import x\n",  # not pipeline.cli: a name only starts alike
        "pipeline/cli/review.py": "def f():\n    from nlistral_tui.app import run_app\n",
        "pipeline/cli/stats.py": "from pipeline.views.stats import render_stats\n",
        "pipeline/views/stats.py": "from pipeline.views.tables import pct\n",
        "nlistral_tui/d.py": "import textual\nfrom pipeline.views.stats import render_stats\n",
    }
    for name, text in bad.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert layering_violations(tmp_path) == [
        "db/a.py imports textual",
        "db/a.py imports exports.formats",
        "exports/b.py imports pipeline",
        "pipeline/c.py imports nlistral_tui.app",
        "pipeline/c.py imports pipeline.cli.common",
        "pipeline/c.py imports pipeline.views",
    ]
