"""Rich views of team review: agreement between reviewers, their pace, assignments and audit samples.

Reviewer names and strata are data: always Text, never markup, control characters shown.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pipeline.control_chars import shown
from pipeline.views.tables import pct

if TYPE_CHECKING:
    from db.assignments import Assigned
    from pipeline.agreement import Agreement, AgreementReport

UNDEFINED = "undefined"
_KAPPA_NOTE = "kappa undefined: both reviewers used one and the same category only"
_NO_PAIRS = "no two reviewers have rated the same example yet"


def _number(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value:.3f}"


def agreement_table(title: str, agreement: Agreement) -> Table:
    """Each pair of reviewers with shared examples: shared, raw agreement, Cohen's kappa; alpha in the title."""
    note = _KAPPA_NOTE if any(p.kappa is None for p in agreement.pairs) else None
    table = Table(title=f"{title}: Krippendorff's alpha {_number(agreement.alpha)}", title_justify="left",
                  caption=note if agreement.pairs else _NO_PAIRS, caption_justify="left")
    for col in ("reviewer a", "reviewer b", "shared", "agreement", "kappa"):
        table.add_column(col, justify="left" if col.startswith("reviewer") else "right")
    for p in agreement.pairs:
        table.add_row(Text(shown(p.a)), Text(shown(p.b)), str(p.shared), pct(p.agreement), _number(p.kappa))
    return table


def agreement_view(report: AgreementReport) -> Group:
    """Agreement on decisions, bias flags and relabels, and each reviewer's decisions, pace and accept rate."""
    reviewers = Table(title="Reviewers", title_justify="left")
    for col in ("reviewer", "decisions", "median s", "accept rate"):
        reviewers.add_column(col, justify="left" if col == "reviewer" else "right")
    for r in report.reviewers:
        reviewers.add_row(Text(shown(r.reviewer)), str(r.decisions),
                          "-" if r.median_seconds is None else f"{r.median_seconds:.1f}", pct(r.accept_rate))
    return Group(
        agreement_table("Agreement on decisions (accept / reject / edit / flag)", report.decisions),
        agreement_table("Agreement on bias flags (category or none)", report.flags),
        agreement_table("Agreement on suggested relabels (0, 1 or none)", report.relabels),
        reviewers,
    )


def assigned_view(done: Assigned) -> Group:
    """What `nlistral assign` did: examples chosen and skipped, per reviewer counts, examples shared by pairs."""
    lines = Text(f"{done.chosen} examples chosen; {done.chosen - done.skipped} assigned now")
    if done.skipped:
        lines.append(f"; {done.skipped} already assigned were kept as they are (--replace assigns them again)")
    if done.replaced:
        lines.append(f"; {done.replaced} earlier assignments replaced")
    lines.append(".")
    per = Table(title="Assigned per reviewer", title_justify="left")
    per.add_column("reviewer")
    per.add_column("examples", justify="right")
    for reviewer, n in done.per_reviewer.items():
        per.add_row(Text(shown(reviewer)), str(n))
    parts: list[Text | Table] = [lines, per]
    if done.shared:
        shared = Table(title="Shared by two reviewers (for agreement)", title_justify="left")
        for col in ("reviewer a", "reviewer b", "examples"):
            shared.add_column(col, justify="right" if col == "examples" else "left")
        for (a, b), n in done.shared.items():
            shared.add_row(Text(shown(a)), Text(shown(b)), str(n))
        parts.append(shared)
    return Group(*parts)


def strata_table(name: str, strata: list[tuple[tuple[str, ...], int, int]], keys: tuple[str, ...]) -> Table:
    """An audit sample's strata: each stratum's values, examples in it, examples sampled."""
    taken = sum(n for _, _, n in strata)
    table = Table(title=Text(f"Sample {shown(name)!r}: {taken} examples"), title_justify="left")
    for key in keys:
        table.add_column(key)
    table.add_column("examples", justify="right")
    table.add_column("sampled", justify="right")
    for values, size, n in strata:
        table.add_row(*(Text(shown(v)) for v in values), str(size), str(n))
    return table
