"""What a generate, reflect (blind or not) or judge run is asked to do: the stage, the examples, the sending options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.scope import Scope
from db.tasks import JUDGE_TARGETS
from pipeline.api.endpoint import ClientConfigError, Endpoint, resolve_endpoint
from pipeline.errors import PipelineError
from pipeline.prompts import PROMPTS, Prompt
from pipeline.settings import Settings, load_settings

STAGES = ("thought", "reflection", "blind_reflection", "judge")
# A blind reflection run is a reflect run (`reflect --blind`); its config says blind=true.
RUN_KIND = {"thought": "generate", "reflection": "reflect", "blind_reflection": "reflect", "judge": "judge"}
MODEL_OF = {"blind_reflection": "reflection"}  # the [models] setting of a stage, where it is not the stage's name


class GenerateError(PipelineError):
    """The work cannot be done as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Selection:
    """Which examples a run covers, as the command line names them (--dataset, --split, --ids, --limit)."""

    dataset: str | None = None
    split: str | None = None
    ids: tuple[int, ...] | None = None
    limit: int | None = None

    @property
    def scope(self) -> Scope:
        """The same examples as a Scope (what the store's queries take)."""
        return Scope(datasets=(self.dataset,) if self.dataset else (), splits=(self.split,) if self.split else (),
                     ids=self.ids, limit=self.limit)

    def as_config(self) -> dict[str, Any]:
        """What the runs table records of it."""
        return {"dataset": self.dataset, "split": self.split, "ids": list(self.ids) if self.ids else None,
                "limit": self.limit}


EVERY_EXAMPLE = Selection()


@dataclass(frozen=True)
class StageOptions:
    """Everything a run needs besides the selection; build it with `stage_options`."""

    stage: str
    model: str
    endpoint: Endpoint | None  # None only for --dry-run without a key
    rps: float | None
    tokens_per_minute: int | None
    max_concurrency: int
    timeout_s: float
    max_retries: int
    retry_failed: bool = False
    judge_target: str = "thought"

    @property
    def prompt(self) -> Prompt:
        """The prompt of this stage."""
        return PROMPTS[self.stage]

    def config(self, selection: Selection) -> dict[str, Any]:
        """What the runs table records (never the key)."""
        return {
            "stage": self.stage, "model": self.model, "prompt_version": self.prompt.version,
            "endpoint": self.endpoint.label if self.endpoint else None, "rps": self.rps,
            "tokens_per_minute": self.tokens_per_minute, "max_concurrency": self.max_concurrency,
            "timeout_s": self.timeout_s, "max_retries": self.max_retries, "retry_failed": self.retry_failed,
            "judge_target": self.judge_target if self.stage == "judge" else None,
            "selection": selection.as_config(),
            **({"blind": self.stage == "blind_reflection"} if RUN_KIND[self.stage] == "reflect" else {}),
        }


def stage_options(stage: str, settings: Settings | None = None, *, model: str | None = None,
                  server_url: str | None = None, rps: float | None = None, max_concurrency: int | None = None,
                  retry_failed: bool = False, judge_target: str = "thought", need_endpoint: bool = True,
                  ) -> StageOptions:
    """Options from the config file, with command-line values (when given) taking precedence."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    if judge_target not in JUDGE_TARGETS:
        raise GenerateError(f"--target must be one of {', '.join(JUDGE_TARGETS)}, not {judge_target!r}")
    settings = settings or load_settings()
    api = settings.api
    endpoint: Endpoint | None
    try:
        endpoint = resolve_endpoint(settings, server_url)
    except ClientConfigError:
        if need_endpoint:
            raise
        endpoint = None
    rate = rps if rps is not None else api.rps
    concurrency = max_concurrency if max_concurrency is not None else api.max_concurrency
    if rate is not None and not rate > 0:  # not "<= 0": nan is neither
        raise GenerateError(f"--rps must be positive, not {rate}")
    if concurrency < 1:
        raise GenerateError(f"--max-concurrency must be at least 1, not {concurrency}")
    return StageOptions(
        stage=stage, model=model or getattr(settings.models, MODEL_OF.get(stage, stage)), endpoint=endpoint, rps=rate,
        tokens_per_minute=api.tokens_per_minute or None, max_concurrency=concurrency, timeout_s=api.timeout_s,
        max_retries=api.max_retries, retry_failed=retry_failed, judge_target=judge_target)
