"""The export screen: the choices of `nlistral export`, the counts of the plan before anything is written.

The file goes beside the store by default (a fresh name: exports.default_path); the screen says when the
path it will write is taken, and replaces it only after an explicit choice to overwrite.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Input, Label, Select, SelectionList, Static

from exports import (
    ABLATIONS, DEFAULT_MAX_TOKENS, REASONS, SFT_FORMATS, DpoOptions, ExportError, ExportPlan, ExportRecord,
    ExportTargetError, SftOptions, TargetExistsError, available_scopes, check_target, default_path, list_exports,
    current_at, plan_dpo, plan_sft, write_dpo, write_sft,
)
from nlistral_tui.data.store import Store
from nlistral_tui.screens.choice import ChoiceScreen

PLAN_DELAY_S = 0.3


def plan_view(plan: ExportPlan) -> Group:
    """The counts of a plan as tables: what goes in, by label / source / model / split, and what is left out."""
    head = Text(f"{plan.rows:,} {'pairs' if plan.kind == 'dpo' else 'rows'} from {plan.examples:,} of "
                f"{plan.considered:,} examples · rule {plan.rule} · lengths by {plan.length_measure} "
                f"(max {plan.max_tokens}) · review log at event {plan.review_log_position}")
    parts: list[Any] = [head]
    balance = plan.label_balance()
    for title, counts in (("label", plan.by_label), ("source", plan.by_source), ("model", plan.by_model),
                          ("split", plan.by_split)):
        table = Table(title=f"By {title}", title_justify="left")
        table.add_column(title)
        table.add_column("rows", justify="right")
        if title == "label":
            table.add_column("share", justify="right")
        for key, n in sorted(counts.items()):
            share = [f"{100 * balance.get(key, 0):.1f}%"] if title == "label" else []
            table.add_row(Text(str(key)), f"{n:,}", *share)
        parts.append(table)
    left = Table(title="Left out", title_justify="left")
    for col in ("reason", "examples", "why"):
        left.add_column(col, justify="right" if col == "examples" else "left")
    for reason, n in sorted(plan.left_out.items(), key=lambda kv: -kv[1]):
        left.add_row(Text(reason), f"{n:,}", Text(REASONS.get(reason, "")))
    parts.append(left)
    if plan.cross_split:
        parts.append(Text(f"{len(plan.cross_split)} written rows also appear in another split "
                          f"(e.g. #{plan.cross_split[0].example_id} also in {', '.join(plan.cross_split[0].also_in)})."))
    parts += [Text(f"warning: {w}", style="yellow") for w in plan.warnings]
    return Group(*parts)


class ExportScreen(Screen[None]):
    """Choose an export; its plan (counts) updates as the choices change; ctrl+s writes it after a confirmation."""

    BINDINGS = [
        Binding("ctrl+s", "write", "write", id="export.write"),
        Binding("escape", "close", "back", id="export.close"),
    ]

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.plan: ExportPlan | None = None
        self.error: str | None = None
        self.history: list[ExportRecord] = []
        self._timer = None

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
    def options(self) -> SftOptions | DpoOptions:
        """The options the form describes (ExportOptionError when they do not fit together)."""
        q = self.query_one
        common: dict[str, Any] = {
            "splits": tuple(q("#export-splits", SelectionList).selected),
            "datasets": tuple(q("#export-datasets", SelectionList).selected),
            "include_bias": q("#export-include-bias", Checkbox).value,
            "use_relabels": q("#export-use-relabels", Checkbox).value,
        }
        text = q("#export-max-tokens", Input).value.strip()
        common["max_tokens"] = int(text) if text.isdigit() else text
        if q("#export-kind", Select).value == "dpo":
            return DpoOptions(**common)
        return SftOptions(ablation=q("#export-ablation", Select).value, fmt=q("#export-fmt", Select).value,
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

    def _valid_options(self) -> SftOptions | DpoOptions | None:
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
        what = f"{self.plan.rows:,} {'pairs' if self.plan.kind == 'dpo' else 'rows'}"
        try:
            check_target(out, folder=False, store=self.store.path)
        except TargetExistsError:
            fresh = self._default_out()
            about = self._about(self._listed(out))
            title = f"{out.name} already exists ({about or 'not an export of this store'}): replace it?"
            choices = [("o", f"overwrite {out} with {what}{' (the old export is marked superseded)' if about else ''}",
                        out), ("f", f"write to a fresh name: {fresh}", fresh), ("n", "no, write nothing", None)]
            self.app.push_screen(ChoiceScreen(title, choices),
                                 lambda chosen: chosen is not None and self._write(options, chosen, chosen == out))
            return
        except ExportTargetError as exc:
            self.notify(str(exc), severity="error", timeout=10, markup=False)
            return
        self.app.push_screen(ChoiceScreen(f"Write {what} to {out}?", [("y", "yes, write it", True), ("n", "no", False)]),
                             lambda yes: yes and self._write(options, out, False))

    # ------------------------------------------------------------- workers
    @work(thread=True, exclusive=True, group="export-scopes", exit_on_error=False)
    def _load_scopes(self) -> None:
        db = self.store.db()
        scopes, history = available_scopes(db), list_exports(db)
        self.app.call_from_thread(self._scopes_loaded, scopes, history)

    def _scopes_loaded(self, scopes: list[tuple[str, str, int]], history: list[ExportRecord]) -> None:
        self.history = history
        splits = sorted({s for _d, s, _n in scopes})
        datasets = sorted({d for d, _s, _n in scopes})
        split_list = self.query_one("#export-splits", SelectionList)
        split_list.clear_options()
        split_list.add_options([(Content(s), s, s == "train") for s in splits])
        dataset_list = self.query_one("#export-datasets", SelectionList)
        dataset_list.clear_options()
        dataset_list.add_options([(Content(d), d, False) for d in datasets])
        table = Table(title="Written exports", title_justify="left")
        for col in ("id", "kind", "rule", "rows", "path", "created", "now"):
            table.add_column(col, justify="right" if col in ("id", "rows") else "left")
        for r in history[:20]:
            now = f"superseded by #{r.superseded_by}" if r.superseded_by is not None else r.state()
            table.add_row(str(r.id), r.kind, Text(r.rule), f"{r.counts.get('rows', 0):,}", Text(r.path),
                          r.created_at[:16].replace("T", " "), Text(now, style="dim" if now in ("ok", "unchecked")
                                                                    else "yellow"))
        self.query_one("#export-history", Static).update(table)
        self._show_target()
        self._replan()

    @work(thread=True, exclusive=True, group="export-plan", exit_on_error=False)
    def _plan(self, options: SftOptions | DpoOptions) -> None:
        db = self.store.db()
        try:
            plan = plan_dpo(db, options) if isinstance(options, DpoOptions) else plan_sft(db, options)
        except ExportError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._planned, plan)

    def _planned(self, plan: ExportPlan) -> None:
        self.plan, self.error = plan, None
        self.query_one("#export-plan-text", Static).update(plan_view(plan))

    def _waiting(self) -> None:  # on the write worker's thread, each time a write waits again
        self.app.call_from_thread(self.notify, f"waiting: another process is writing to {self.store.path}; the export "
                                  "goes on when it is done.", severity="warning", timeout=8, markup=False)

    @work(thread=True, exclusive=True, group="export-write", exit_on_error=False)
    def _write(self, options: SftOptions | DpoOptions, out: Path, overwrite: bool) -> None:
        db = self.store.db()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            writer = write_dpo if isinstance(options, DpoOptions) else write_sft
            manifest = writer(db, options, out=out, overwrite=overwrite, on_wait=self._waiting)
        except (ExportError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"Export failed: {exc}", severity="error", timeout=10, markup=False)
            return
        self.app.call_from_thread(
            self.notify, f"Wrote {manifest.rows:,} rows to {manifest.path} (export {manifest.export_id}; "
            f"manifest {manifest.manifest}).", timeout=10, markup=False)
        self.app.call_from_thread(self._load_scopes)
