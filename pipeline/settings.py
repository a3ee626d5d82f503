"""The user's config file (TOML): reviewer name, reasons, guidelines, model names, API endpoint, TUI keymap.

Looked up at $NLISTRAL_CONFIG, else $XDG_CONFIG_HOME/nlistral/config.toml, else
~/.config/nlistral/config.toml. Every key is optional; unknown keys are an error naming the file.
Command-line options always win over the file.
"""
from __future__ import annotations

import getpass
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError

DEFAULT_THOUGHT_MODEL = "ministral-8b-latest"
DEFAULT_REFLECTION_MODEL = "mistral-small-latest"
DEFAULT_JUDGE_MODEL = "mistral-small-latest"
# Why a reviewer rejects or flags an NLI reflection: one digit key each in the review app's dialogs.
DEFAULT_REASONS = ("reflection rationalises gold", "wrong reading of the premise", "thought and label disagree",
                   "gold is wrong", "ambiguous pair", "formatting")
MAX_REASONS = 9  # keys 1-9


class SettingsError(UsageError):
    """The config file is unreadable or holds an unknown key or a value of the wrong type."""


@dataclass(frozen=True)
class Models:
    """Model names per generation stage (any Mistral-compatible model id)."""

    thought: str = DEFAULT_THOUGHT_MODEL
    reflection: str = DEFAULT_REFLECTION_MODEL
    judge: str = DEFAULT_JUDGE_MODEL


@dataclass(frozen=True)
class Api:
    """Where requests go and how fast (the key is never stored here: use MISTRAL_API_KEY or OPENAI_API_KEY)."""

    # "mistral" (mistralai SDK), "openai" (openai SDK: vLLM, SGLang, llama.cpp, Ollama) or "local" (a model folder,
    # [models] naming it, run in this process)
    backend: str = "mistral"
    # None: the Mistral API; else a server, or (backend "openai") a list of servers to spread requests over
    server_url: str | list[str] | None = None
    rps: float = 1.0  # requests per second (the free tier allows about 1)
    tokens_per_minute: int = 500_000
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 6


@dataclass(frozen=True)
class Cartography:
    """Where dataset cartography draws its regions (db/cartography.py): mean confidence and variability of
    the gold label's probability across a training run's checkpoints."""

    ambiguous_variability: float = 0.2  # at least this variability: ambiguous, whatever the confidence
    hard_confidence: float = 0.5  # below it (and not ambiguous): hard-to-learn; at or above: easy


@dataclass(frozen=True)
class Suspicion:
    """The weight of each signal in the gold-suspicion score (db/suspicion.py); 0 turns a signal off."""

    thought_disagrees: float = 1.0  # the current thought's label is not gold
    reflection_not_gold: float = 1.5  # shown gold, the reflection still reached the other label
    blind_disagrees: float = 2.0  # the blind reflection (not shown gold) reached the other label
    label_inconsistent: float = 0.5  # the thought's or reflection's label contradicts its own reasoning
    judge_low: float = 0.5  # the latest judge score is 2 or lower (of 5)
    reviewer_flag: float = 3.0  # a reviewer flagged the example (gold looks wrong or biased)
    adapter_wrong: float = 2.0  # times the share of evaluate runs whose prediction is not gold
    hard_to_learn: float = 2.0  # times (1 - confidence), in the hard-to-learn region of the latest train run


@dataclass(frozen=True)
class Settings:
    """Everything the config file can set."""

    reviewer: str | None = None
    reasons: tuple[str, ...] = DEFAULT_REASONS  # reasons = ["...", ...]: why a reject or a flag (at most 9)
    guidelines: str | None = None  # the team's Markdown guide, relative to this file; else GUIDE.md beside the store
    models: Models = field(default_factory=Models)
    api: Api = field(default_factory=Api)
    cartography: Cartography = field(default_factory=Cartography)
    suspicion: Suspicion = field(default_factory=Suspicion)
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys, e.g. accept = "a"
    path: Path | None = None  # the file these came from, if any


def config_path() -> Path:
    """Where the config file is looked for."""
    if os.environ.get("NLISTRAL_CONFIG"):
        return Path(os.environ["NLISTRAL_CONFIG"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "nlistral" / "config.toml"


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file (defaults when it does not exist)."""
    path = path or config_path()
    if not path.exists():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read the config file: {exc}") from exc
    sections = {"models": Models, "api": Api, "cartography": Cartography, "suspicion": Suspicion}
    top = _check(path, "", data, Settings, skip=frozenset({"path"}))
    built = {k: sections[k](**_check(path, k, v, sections[k])) if k in sections else v for k, v in top.items()}
    if "reasons" in built:
        built["reasons"] = tuple(r.strip() for r in built["reasons"])
    keymap = built.get("keymap", {})
    if not all(isinstance(v, str) for v in keymap.values()):
        raise SettingsError(f"{path}: [keymap] values must be strings such as \"a\" or \"ctrl+z\".")
    return Settings(**built, path=path)


def _check(path: Path, section: str, data: object, cls: type, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    where = f"[{section}]" if section else "the top level"
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: {where} must be a table.")
    known = {f.name for f in fields(cls)} - skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"{path}: unknown key(s) {', '.join(unknown)} in {where}; "
                            f"known: {', '.join(sorted(known))}.")
    types = {f.name: f.type for f in fields(cls)}
    for key, value in data.items():
        problem = _problem(f"{section}.{key}" if section else key, types[key], value)
        if problem:
            raise SettingsError(f"{path}: {key} in {where} {problem}, not {value!r}; fix it or remove the line.")
    return data


# Keys whose value must lie in a range: what they must be, and the test.
RANGES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "api.rps": ("a number above 0", lambda v: v > 0),
    "api.tokens_per_minute": ("a whole number of 0 (no limit) or more", lambda v: v >= 0),
    "api.max_concurrency": ("a whole number of 1 or more", lambda v: v >= 1),
    "api.timeout_s": ("a number of seconds above 0", lambda v: 0 < v < math.inf),
    "api.max_retries": ("a whole number of 0 or more", lambda v: v >= 0),
    "cartography.ambiguous_variability": ("a number from 0 to 0.5", lambda v: 0 <= v <= 0.5),
    "cartography.hard_confidence": ("a number from 0 to 1", lambda v: 0 <= v <= 1),
    **{f"suspicion.{name}": ("a number of 0 or more", lambda v: 0 <= v < math.inf) for name in (
        "thought_disagrees", "reflection_not_gold", "blind_disagrees", "label_inconsistent", "judge_low",
        "reviewer_flag", "adapter_wrong", "hard_to_learn")},
}


def _problem(key: str, annotation: object, value: object) -> str | None:
    """What is wrong with a config value for a field annotated as annotation (a string here), or None."""
    kind = str(annotation).replace(" | None", "")
    if kind == "tuple[str, ...]":
        items = value if isinstance(value, list) else [None]
        texts = [v.strip() for v in items if isinstance(v, str)]
        ok = len(texts) == len(items) and 0 < len(texts) <= MAX_REASONS and all(texts) and len(set(texts)) == len(texts)
        return None if ok else f"must be a list of 1 to {MAX_REASONS} different non-empty strings in quotes"
    if kind == "str | list[str]":  # [api] server_url: one server, or several for backend "openai"
        items = value if isinstance(value, list) and value else [value]
        ok = all(isinstance(v, str) and v.strip() for v in items)
        return None if ok else "must be a non-empty string in quotes, or a list of them"
    if kind == "str":
        ok = isinstance(value, str) and (value.strip() != "" or key == "reviewer")
        return None if ok else "must be a non-empty string in quotes"
    if kind in ("int", "float"):
        number = (int,) if kind == "int" else (int, float)
        if not isinstance(value, number) or isinstance(value, bool):
            return f"must be {'a whole number' if kind == 'int' else 'a number'}"
        rule = RANGES.get(key)
        return None if rule is None or rule[1](value) else f"must be {rule[0]}"
    return None


def reviewer_name(settings: Settings | None = None) -> str:
    """Who is reviewing: the config file, else $NLISTRAL_REVIEWER, else the OS user."""
    settings = settings or load_settings()
    if settings.reviewer:
        return settings.reviewer
    if os.environ.get("NLISTRAL_REVIEWER"):
        return os.environ["NLISTRAL_REVIEWER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
