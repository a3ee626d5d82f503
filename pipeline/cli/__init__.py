"""The command line: `nlistral` and its command groups, one module each, over the headless core."""
from pipeline.cli.app import app, main

__all__ = ["app", "main"]
