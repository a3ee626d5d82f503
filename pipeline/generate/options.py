"""What a generate, reflect (blind or not) or judge run is asked to do: the stage, the examples, the sending options."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from db.scope import Scope
from db.tasks import JUDGE_TARGETS
from pipeline.api.client import PRICES_PER_MTOK
from pipeline.api.endpoint import BACKENDS, ClientConfigError, Endpoint, resolve_endpoints
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
    endpoint: Endpoint | None  # the first server; None only for --dry-run without a key or URL
    rps: float | None
    tokens_per_minute: int | None
    max_concurrency: int
    timeout_s: float
    max_retries: int
    retry_failed: bool = False
    judge_target: str = "thought"
    backend: str = "mistral"  # one of pipeline.api.endpoint.BACKENDS
    more_endpoints: tuple[Endpoint, ...] = ()  # further servers to spread requests over (backend "openai")
    # backend "local": model is the folder as given (stored as the model's name), endpoint None, and
    # max_concurrency is the batch size; rps and tokens_per_minute do not apply

    @property
    def prompt(self) -> Prompt:
        """The prompt of this stage."""
        return PROMPTS[self.stage]

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every server requests go to (empty for --dry-run without one)."""
        return (self.endpoint, *self.more_endpoints) if self.endpoint else ()

    @property
    def cost_note(self) -> str | None:
        """Why the cost reads 0 (a self-hosted or in-process model without a price), else None."""
        if self.backend == "local":
            return (f"{self.model} runs in this process (--backend local), which has no price, so its cost is "
                    "counted as 0; the machine's time is not included.")
        if self.backend == "openai" and self.model not in PRICES_PER_MTOK:
            return (f"no price is known for {self.model} on a self-hosted server (--backend openai), so its cost "
                    "is counted as 0; what the server costs to run is not included.")
        return None

    def config(self, selection: Selection) -> dict[str, Any]:
        """What the runs table records (never the key)."""
        return {
            "stage": self.stage, "model": self.model, "prompt_version": self.prompt.version,
            "backend": self.backend, "endpoint": self.endpoint.label if self.endpoint else None,
            "servers": [e.label for e in self.endpoints], "rps": self.rps,
            "tokens_per_minute": self.tokens_per_minute, "max_concurrency": self.max_concurrency,
            "timeout_s": self.timeout_s, "max_retries": self.max_retries, "retry_failed": self.retry_failed,
            "judge_target": self.judge_target if self.stage == "judge" else None,
            "selection": selection.as_config(),
            **({"blind": self.stage == "blind_reflection"} if RUN_KIND[self.stage] == "reflect" else {}),
        }


def stage_options(stage: str, settings: Settings | None = None, *, model: str | None = None,
                  server_url: str | Sequence[str] | None = None, rps: float | None = None,
                  max_concurrency: int | None = None, retry_failed: bool = False, judge_target: str = "thought",
                  need_endpoint: bool = True, backend: str | None = None) -> StageOptions:
    """Options from the config file, with command-line values (when given) taking precedence."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    if judge_target not in JUDGE_TARGETS:
        raise GenerateError(f"--target must be one of {', '.join(JUDGE_TARGETS)}, not {judge_target!r}")
    settings = settings or load_settings()
    api = settings.api
    urls = (server_url,) if isinstance(server_url, str) else tuple(server_url or ())
    name = backend or api.backend
    endpoints: tuple[Endpoint, ...] = ()
    try:
        name, endpoints = resolve_endpoints(settings, backend, urls)
    except ClientConfigError:
        if need_endpoint or name not in BACKENDS:
            raise
    rate = rps if rps is not None else api.rps
    concurrency = max_concurrency if max_concurrency is not None else api.max_concurrency
    if rate is not None and not rate > 0:  # not "<= 0": nan is neither
        raise GenerateError(f"--rps must be positive, not {rate}")
    if concurrency < 1:
        raise GenerateError(f"--max-concurrency must be at least 1, not {concurrency}")
    model = model or getattr(settings.models, MODEL_OF.get(stage, stage))
    if name == "local":  # a clear error now, not after the run has started
        from pipeline.api.local_model import check_model_dir

        check_model_dir(model)
    return StageOptions(
        stage=stage, model=model,
        endpoint=endpoints[0] if endpoints else None, rps=rate, tokens_per_minute=api.tokens_per_minute or None,
        max_concurrency=concurrency, timeout_s=api.timeout_s, max_retries=api.max_retries, retry_failed=retry_failed,
        judge_target=judge_target, backend=name, more_endpoints=endpoints[1:])
