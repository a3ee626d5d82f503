"""Writers of curated training data (SFT, DPO, Hugging Face datasets) with their lineage records.

Headless (imports db only; transformers and datasets only inside the functions that need them).
The API for the CLI and the review app's export screen:

- SftOptions / DpoOptions (ExportOptions): what to select (validated on creation; ExportOptionError says
  what to fix).
- plan: the counts only (rows by label, source, model and split; left out by reason with example ids;
  cross-split pairs), computed exactly as a write does: show them before writing.
- write(ExportRequest(options, out | hf_dir, overwrite)): write JSON Lines (out) or a datasets folder
  (hf_dir) under a temporary name, then the manifest (FILE.manifest.json), the `exports` row and an
  `export` run; returns the Manifest. An existing target is replaced only with overwrite=True (the
  export it held is marked superseded); the store and the inputs are never a target
  (ExportTargetError). on_wait is told each time a write waits for another process's lock.
  write_to is write with the request's parts as arguments.
- check_target / default_path: the same checks before writing (for a form), a fresh default name.
- list_exports: the recorded exports, newest first; ExportRecord.state() says whether each file is still
  what was exported (STATES).
- REASONS: each left-out reason in words; ABLATIONS, SFT_FORMATS, POLICIES: the choices (a policy says how an
  example several reviewers disagree on is exported: db.curation).

Large exports select in worker processes (exports.fast); small ones in the caller's process.
"""
import db  # noqa: F401  (first: it loads sqlite-utils without pandas / numpy, which a worker's start would pay for)
from db.curation import DEFAULT_POLICY, POLICIES
from db.export_reads import available_scopes
from exports.dpo import describe as describe_dpo
from exports.errors import (
    EmptyExportError,
    ExportError,
    ExportOptionError,
    ExportTargetError,
    ExportWriteError,
    ManifestPlaceError,
    TargetExistsError,
    TokenizerLoadError,
)
from exports.lineage import (
    STATES,
    ExportRecord,
    Manifest,
    current_at,
    list_exports,
    listed_at,
)
from exports.options import (
    ABLATIONS,
    DEFAULT_MAX_TOKENS,
    SFT_FORMATS,
    DpoOptions,
    ExportOptions,
    SftOptions,
)
from exports.rules import REASONS
from exports.run import ExportRequest, plan, write, write_to
from exports.sft import describe as describe_sft
from exports.tally import CrossSplit, ExportPlan
from exports.target import check_target, default_path, manifest_path

__all__ = [
    "ABLATIONS", "DEFAULT_MAX_TOKENS", "DEFAULT_POLICY", "POLICIES", "REASONS", "SFT_FORMATS", "STATES",
    "CrossSplit", "DpoOptions",
    "EmptyExportError", "ExportError", "ExportOptionError", "ExportOptions", "ExportPlan", "ExportRecord",
    "ExportRequest", "ExportTargetError", "ExportWriteError", "Manifest", "ManifestPlaceError", "SftOptions",
    "TargetExistsError", "TokenizerLoadError", "available_scopes", "check_target", "current_at", "default_path",
    "describe_dpo", "describe_sft", "list_exports", "listed_at", "manifest_path", "plan",
    "write", "write_to",
]
