"""Without the `train` extra installed, `train`, `evaluate` and the app's training screen say which
extra to install (exit 2), never a ModuleNotFoundError. Each runs in a real process in which the
extra's modules cannot be imported, as on a machine where they were never installed."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.train_extra import TRAIN_MODULES

# Installed first in the child: any import of the extra's modules fails as if they were absent.
BLOCKER = textwrap.dedent(f"""
    import sys
    BLOCKED = {set(TRAIN_MODULES) | {"bitsandbytes"}!r}

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
""")
CLI = BLOCKER + "from pipeline.cli import main\nsys.argv[0] = 'nlistral'\nmain()\n"
FIX = "pip install -e '.[train]'"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_blocker_really_hides_the_extra(tmp_path):
    probe = subprocess.run([sys.executable, "-c", BLOCKER + "import torch"], capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'torch'" in probe.stderr


@pytest.mark.parametrize("args", [
    ["train", "--config", "smoke", "--set", "data=sft.jsonl"],
    ["evaluate", "--adapter", "runs/smoke/adapter"],
    ["evaluate", "--base", "some-model"],
], ids=lambda a: " ".join(a[:2]))
def test_cli_commands_say_which_extra_to_install(demo_db_path, tmp_path, args):
    result = _cli(*args, "--db", str(demo_db_path), cwd=tmp_path)
    said = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "ModuleNotFoundError" not in result.stderr
    assert f"`nlistral {args[0]}` needs the optional train extra, and torch, transformers, peft" in said, said
    assert FIX in said
    assert not (tmp_path / "runs").exists()


APP = BLOCKER + textwrap.dedent("""
    import asyncio
    from pathlib import Path

    from nlistral_tui.pilot import running, screen_text, settle
    from nlistral_tui.screens.train import TrainScreen

    started = []

    async def main():
        async with running(Path(sys.argv[1]), (200, 50)) as (app, pilot):
            app.install_screen(TrainScreen(app.store, command=lambda *a: started.append(a) or ["true"]),
                               name="train")
            await pilot.press("T")
            await settle(app, pilot)
            assert isinstance(app.screen, TrainScreen)
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            print("STARTED", len(started))
            print("SCREEN", " ".join(screen_text(app).split()))
            print("NOTICES", " | ".join(str(n.message) for n in app._notifications))

    asyncio.run(main())
""")


def test_the_training_screen_says_which_extra_to_install(demo_db_path, tmp_path):
    from db import open_db
    from exports import SftOptions, write_to

    db = open_db(demo_db_path)  # a preset and an export to pick: ctrl+s would start a run if it could
    write_to(db, SftOptions(), out=tmp_path / "train.jsonl")
    db.conn.close()
    result = subprocess.run([sys.executable, "-c", APP, str(demo_db_path)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] if " " in line else "" for line in result.stdout.splitlines()}
    assert lines["STARTED"] == "0"  # ctrl+s ran nothing
    assert "Training needs the optional train extra" in lines["SCREEN"] and FIX in lines["SCREEN"]
    assert "Training needs the optional train extra" in lines["NOTICES"] and FIX in lines["NOTICES"]
