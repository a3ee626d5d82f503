"""Stages 1-3 against a Mistral-compatible API: thoughts, reflections (and blind ones: `reflect --blind`), judge
scores.

A run selects only the work whose answer is not stored yet (same kind, example, model, prompt
version and parent), sends it paced and retried, and stores each answer in its own transaction the
moment it arrives. Killing the process (even with SIGKILL) loses at most the requests in flight; a
re-run picks up the rest. The dedupe key on each generation makes a second copy impossible even if
two runs race. Parse failures are stored with the raw text and are not re-sent unless asked.

options: what a run is asked to do; tasks: the requests still to send; send: sending and storing;
summary: what a run reports; run: a whole run, the dry-run estimate and one reflection on demand.
"""
from __future__ import annotations

from pipeline.generate.options import RUN_KIND, STAGES, GenerateError, Selection, StageOptions, stage_options
from pipeline.generate.run import Estimate, RunResult, estimate, reflect_one, run_stage
from pipeline.generate.send import Counters, ProgressFn, parse_answer
from pipeline.generate.summary import FAILURE_HINTS, all_failed_message
from pipeline.generate.tasks import Task, generation_key, select_tasks

__all__ = [
    "FAILURE_HINTS",
    "RUN_KIND",
    "STAGES",
    "Counters",
    "Estimate",
    "GenerateError",
    "ProgressFn",
    "RunResult",
    "Selection",
    "StageOptions",
    "Task",
    "all_failed_message",
    "estimate",
    "generation_key",
    "parse_answer",
    "reflect_one",
    "run_stage",
    "select_tasks",
    "stage_options",
]
