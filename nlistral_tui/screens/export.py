"""The export screen: the choices of `nlistral export`, the counts of the plan before anything is written.

The file goes beside the store by default (a fresh name: exports.default_path); the screen says when the
path it will write is taken, and replaces it only after an explicit choice to overwrite.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Checkbox, Footer, Input, Label, Select, SelectionList, Static

from exports import (
    ABLATIONS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_POLICY,
    POLICIES,
    SFT_FORMATS,
    DpoOptions,
    ExportError,
    ExportOptions,
    ExportPlan,
    ExportRecord,
    ExportRequest,
    ExportTargetError,
    SftOptions,
    TargetExistsError,
    available_scopes,
    check_target,
    current_at,
    default_path,
    list_exports,
    plan,
    write,
)
from nlistral_tui.data.store import Store
from nlistral_tui.messages import (
    ExportFailed,
    ExportPlanFailed,
    ExportPlanned,
    ExportScopesRead,
    ExportWaiting,
    ExportWritten,
)
from nlistral_tui.screens.choice import ChoiceScreen
from nlistral_tui.screens.dialog import ask
from pipeline.views.export import exports_view, plan_summary, plan_view, unit

PLAN_DELAY_S = 0.3
POLICY_WORDS = {"unanimous": "leave it out", "majority": "most reviewers' decision", "latest": "the latest decision"}
HISTORY_SHOWN = 20  # the newest exports listed under the plan


class ExportScreen(Screen[None]):
    """Choose an export; its plan (counts) updates as the choices change; ctrl+s writes it after a confirmation."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "write", "write", id="export.write"),
        Binding("escape", "close", "back", id="export.close"),
    ]

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.plan: ExportPlan | None = None
        self.error: str | None = None
        self.history: list[ExportRecord] = []
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="export-body"):
            with VerticalScroll(id="export-form"):
                yield Label("Kind")
                yield Select([(Content("SFT (thought + label)"), "sft"), (Content("DPO (preference pairs)"), "dpo")],
                             value="sft", allow_blank=False, id="export-kind", compact=True)
                yield Label("Rule (SFT ablation)")
                yield Select([(Content(a), a) for a in ABLATIONS], value="reflected", allow_blank=False,
                             id="export-ablation", compact=True)
                yield Label("Layout (SFT)")
                yield Select([(Content(f), f) for f in SFT_FORMATS], value="inst", allow_blank=False, id="export-fmt",
                             compact=True)
                yield Label("Splits")
                yield SelectionList[str](id="export-splits", compact=True)
                yield Label("Datasets (none ticked: all)")
                yield SelectionList[str](id="export-datasets", compact=True)
                yield Checkbox("keep bias-flagged examples", id="export-include-bias", compact=True)
                yield Checkbox("train on suggested relabels", id="export-use-relabels", compact=True)
                yield Checkbox("reviewed examples only (curated)", id="export-reviewed-only", compact=True)
                yield Label("Where reviewers disagree (no adjudication)")
                yield Select([(Content(f"{p}: {POLICY_WORDS[p]}"), p) for p in POLICIES], value=DEFAULT_POLICY,
                             allow_blank=False, id="export-policy", compact=True)
                yield Label("Max tokens (longer rows are left out, never cut)")
                yield Input(str(DEFAULT_MAX_TOKENS), type="integer", id="export-max-tokens", compact=True)
                yield Label("Write to")
                yield Input(str(self._default_out()), id="export-out", compact=True)
                yield Static(id="export-target", markup=False)
            with VerticalScroll(id="export-plan"):
                yield Static("Reading the splits and datasets…", id="export-plan-text")
                yield Static(id="export-history")
        yield Footer()

    def on_mount(self) -> None:
        self._load_scopes()

    # ------------------------------------------------------------- choices
    def options(self) -> ExportOptions:
        """The options the form describes (ExportOptionError when they do not fit together)."""
        q = self.query_one
        common: dict[str, Any] = {
            "splits": tuple(q("#export-splits", SelectionList).selected),
            "datasets": tuple(q("#export-datasets", SelectionList).selected),
            "include_bias": q("#export-include-bias", Checkbox).value,
            "use_relabels": q("#export-use-relabels", Checkbox).value,
            "policy": str(q("#export-policy", Select).value),
        }
        text = q("#export-max-tokens", Input).value.strip()
        common["max_tokens"] = int(text) if text.isdigit() else text
        if q("#export-kind", Select).value == "dpo":
            return DpoOptions(**common)
        return SftOptions(ablation=str(q("#export-ablation", Select).value), fmt=str(q("#export-fmt", Select).value),
                          reviewed_only=q("#export-reviewed-only", Checkbox).value, **common)

    def _default_out(self) -> Path:
        """A fresh file beside the store for the chosen kind and rule."""
        kind, rule = "sft", "reflected"
        if self.is_mounted:
            kind = str(self.query_one("#export-kind", Select).value)
            rule = "pairs" if kind == "dpo" else str(self.query_one("#export-ablation", Select).value)
        return default_path(self.store.path, kind, rule)

    def _out(self) -> Path:
        """The path in the form (relative paths are taken from where the app runs, as in the CLI)."""
        return Path(self.query_one("#export-out", Input).value.strip() or self._default_out())

    def _listed(self, out: Path) -> ExportRecord | None:
        """The current export of this store at out, if any (from the list read when the screen opened)."""
        return next(iter(current_at(self.history, out)), None)

    def _about(self, record: ExportRecord | None) -> str:
        return f"export #{record.id}, written {record.created_at[:16].replace('T', ' ')} UTC" if record else ""

    @on(Input.Changed, "#export-out")
    def _show_target(self, _event: Any = None) -> None:
        """Say whether the path is free, taken (and by which export), or cannot be written."""
        out = self._out()
        box = self.query_one("#export-target", Static)
        try:
            check_target(out, folder=False, store=self.store.path)
            box.update(Text("a new file", style="dim"))
        except TargetExistsError:
            about = self._about(self._listed(out)) or "not an export of this store"
            box.update(Text(f"exists ({about}): writing asks before replacing it", style="yellow"))
        except ExportTargetError as exc:
            box.update(Text(str(exc), style="red"))

    @on(Select.Changed)
    @on(SelectionList.SelectedChanged)
    @on(Checkbox.Changed)
    @on(Input.Changed, "#export-max-tokens")
    def _changed(self, event: Any) -> None:
        if isinstance(event, Select.Changed) and event.select.id in ("export-kind", "export-ablation"):
            self.query_one("#export-out", Input).value = str(self._default_out())
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(PLAN_DELAY_S, self._replan)

    def _replan(self) -> None:
        options = self._valid_options()
        if options is None:
            return
        self.query_one("#export-plan-text", Static).update(Text("Counting…", style="dim"))
        self._plan(options)

    def _valid_options(self) -> ExportOptions | None:
        """The chosen options, or None after showing why they are not valid."""
        try:
            return self.options()
        except (ExportError, ValueError) as exc:
            self._show_error(str(exc))
            return None

    def _show_error(self, message: str) -> None:
        self.plan, self.error = None, message
        self.query_one("#export-plan-text", Static).update(Text(message, style="red"))

    # ------------------------------------------------------------- actions
    def action_close(self) -> None:
        self.dismiss(None)

    def action_write(self) -> None:
        options = self._valid_options()
        if options is None:
            return
        if self.plan is None:
            self.notify("Wait for the counts (or fix the options) before writing.", severity="warning")
            return
        out = self._out()
        what = f"{self.plan.rows:,} {unit(self.plan.kind)}"
        try:
            check_target(out, folder=False, store=self.store.path)
        except TargetExistsError:
            fresh = self._default_out()
            about = self._about(self._listed(out))
            title = f"{out.name} already exists ({about or 'not an export of this store'}): replace it?"
            choices = [("o", f"overwrite {out} with {what}{' (the old export is marked superseded)' if about else ''}",
                        out), ("f", f"write to a fresh name: {fresh}", fresh), ("n", "no, write nothing", None)]
            ask(self.app, ChoiceScreen(title, choices), lambda chosen: self._chosen(options, chosen, out))
            return
        except ExportTargetError as exc:
            self.notify(str(exc), severity="error", timeout=10, markup=False)
            return
        confirm = ChoiceScreen(f"Write {what} to {out}?", [("y", "yes, write it", True), ("n", "no", False)])
        ask(self.app, confirm, lambda yes: self._chosen(options, out if yes else None, None))

    def _chosen(self, options: ExportOptions, path: Path | None, taken: Path | None) -> None:
        """Write to the path chosen (None: nothing), replacing what is there when it is the taken one."""
        if path is not None:
            self._write(ExportRequest(options, out=path, overwrite=path == taken))

    # ------------------------------------------------------------- workers
    # Every worker reports by posting a message (thread-safe); the handlers below update the screen.
    @work(thread=True, exclusive=True, group="export-scopes", exit_on_error=False)
    def _load_scopes(self) -> None:
        db = self.store.db()
        self.post_message(ExportScopesRead(available_scopes(db), list_exports(db)))

    @work(thread=True, exclusive=True, group="export-plan", exit_on_error=False)
    def _plan(self, options: ExportOptions) -> None:
        try:
            counts = plan(self.store.db(), options)
        except ExportError as exc:
            self.post_message(ExportPlanFailed(str(exc)))
            return
        self.post_message(ExportPlanned(counts))

    def _waiting(self) -> None:  # on the write worker's thread, each time a write waits again
        self.post_message(ExportWaiting())

    @work(thread=True, exclusive=True, group="export-write", exit_on_error=False)
    def _write(self, request: ExportRequest) -> None:
        db = self.store.db()
        try:
            request.path.parent.mkdir(parents=True, exist_ok=True)
            manifest = write(db, request, on_wait=self._waiting)
        except (ExportError, OSError) as exc:
            self.post_message(ExportFailed(str(exc)))
            return
        self.post_message(ExportWritten(manifest))

    # ------------------------------------------------------------- handlers
    def on_export_scopes_read(self, msg: ExportScopesRead) -> None:
        self.history = msg.history
        splits = sorted({s for _d, s, _n in msg.scopes})
        datasets = sorted({d for d, _s, _n in msg.scopes})
        split_list = self.query_one("#export-splits", SelectionList)
        split_list.clear_options()
        split_list.add_options([(Content(s), s, s == "train") for s in splits])
        dataset_list = self.query_one("#export-datasets", SelectionList)
        dataset_list.clear_options()
        dataset_list.add_options([(Content(d), d, False) for d in datasets])
        shown = msg.history[:HISTORY_SHOWN]
        self.query_one("#export-history", Static).update(exports_view(shown, {r.id: r.state() for r in shown}))
        self._show_target()
        self._replan()

    def on_export_plan_failed(self, msg: ExportPlanFailed) -> None:
        self._show_error(msg.message)

    def on_export_planned(self, msg: ExportPlanned) -> None:
        self.plan, self.error = msg.plan, None
        self.query_one("#export-plan-text", Static).update(Group(plan_summary(msg.plan), plan_view(msg.plan)))

    def on_export_waiting(self, _msg: ExportWaiting) -> None:
        self.notify(f"waiting: another process is writing to {self.store.path}; the export goes on when it is done.",
                    severity="warning", timeout=8, markup=False)

    def on_export_failed(self, msg: ExportFailed) -> None:
        self.notify(f"Export failed: {msg.message}", severity="error", timeout=10, markup=False)

    def on_export_written(self, msg: ExportWritten) -> None:
        m = msg.manifest
        self.notify(f"Wrote {m.rows:,} rows to {m.path} (export {m.export_id}; manifest {m.manifest}).", timeout=10,
                    markup=False)
        self._load_scopes()
