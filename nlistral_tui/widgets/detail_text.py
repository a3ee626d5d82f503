"""The detail pane's two columns as Content: the pair and thought, then reflection (and the blind reflection
beside it), judge, prediction, review."""
from __future__ import annotations

from textual.content import Content

from db import grounding
from db.detail import ExampleDetail, TeamDecision
from db.records import Generation
from db.textdiff import EditSize, edit_size, word_diff
from exports.routing import DEFAULT_SMALL
from nlistral_tui.text import label_text, literal

HEAD = "bold $accent"
MUTED = "$text-muted"
GOOD = "$text-success"
BAD = "$text-error"
BIAS_NAMES = {
    "gold_wrong": "gold looks wrong",
    "ambiguous": "ambiguous",
    "premise_underspecified": "premise underspecified",
    "annotation_artifact": "annotation artifact",
}
UNGROUNDED = "bold underline $text-error"  # a quote or number the pair does not contain (db/grounding.py)
STATUS_STYLE = {"accepted": GOOD, "rejected": BAD, "edited": "$text-warning", "pending": MUTED}
DECISION_STYLE = {"accept": GOOD, "reject": BAD, "edit": "$text-warning", "flag": "$text-warning"}


def edit_gold_note(label: int | None, gold: int | None, suggested: int | None) -> str | None:
    """What a curated export does with an edit whose label is not gold (None when the label is gold)."""
    if label is None or gold is None or label == gold:
        return None
    if suggested == label:
        return (f"label {label} differs from gold {gold}: the suggested relabel {label} matches it, so a curated "
                "export keeps this edit only with --use-relabels (else it leaves it out: edit_not_gold)")
    return (f"label {label} differs from gold {gold}: a curated export leaves this edit out (edit_not_gold) "
            f"unless a relabel to {label} is suggested (l) and --use-relabels is used")


def edit_route_note(base: str | None, edited: str, recorded_words: int | None = None) -> str:
    """The edit's size against what it replaced (as recorded; computed for an edit recorded before sizes were)
    and the route exports give it (exports.routing, default share)."""
    if base is None:
        return "size unknown (the edit did not record what it replaced): large, also a DPO pair"
    size = edit_size(base, edited) if recorded_words is None else EditSize(recorded_words, len(base.split()))
    route = ("small: trained as edited, no DPO pair" if size.ratio <= DEFAULT_SMALL
             else "large: trained as edited and a DPO pair against the text it replaced")
    return (f"{size.words} of {size.of} words changed ({size.ratio:.0%}) · {route} "
            f"(--route small={DEFAULT_SMALL:g})")


def _verdict(label: int | None, gold: int | None, what: str = "gold") -> tuple[str, str]:
    if label is None:
        return "✗ did not parse", BAD
    if gold is None:
        return f"no {what}", MUTED
    return ("✓ matches " + what, GOOD) if label == gold else ("✗ differs from " + what, BAD)


def _flags(gen: Generation) -> list[str | tuple[str, str]]:
    parts: list[str | tuple[str, str]] = []
    for flag in gen.flags:
        parts += ["  ", (f"⚑ {flag}", "$text-warning")]
    if gen.parse_status != "ok":
        parts += ["  ", (f"parse {gen.parse_status}", BAD if gen.parse_status == "failed" else MUTED)]
    return parts


def target_text(gen: Generation, d: ExampleDetail, fallback: str) -> Content:
    """A thought's or reflection's text (fallback when it has none), literally, with the quotes and numbers the
    pair does not contain marked (when the generation carries a grounding flag)."""
    text = gen.thought_process or ""
    if not text:
        return literal(fallback)
    if not set(gen.flags) & set(grounding.FLAGS):
        return literal(text)
    parts, last = [], 0
    for f in grounding.findings(text, d.example.premise, d.example.hypothesis):
        if f.start >= last:
            parts += [literal(text[last:f.start]), literal(text[f.start:f.end], UNGROUNDED)]
            last = f.end
    return Content.assemble(*parts, literal(text[last:]))


def _section(title: str, *rest: str | tuple[str, str] | Content) -> Content:
    return Content.assemble((title, HEAD), *rest, "\n")


def _gen_line(gen: Generation, label_word: str, gold: int | None) -> Content:
    verdict, style = _verdict(gen.predicted_label, gold)
    return Content.assemble(
        literal(gen.model, MUTED), "  ", f"{label_word} {label_text(gen.predicted_label)}", "  ",
        (verdict, style), *_flags(gen), "\n",
    )


def diff_content(old: str, new: str) -> Content:
    """A word diff of old -> new as git --word-diff writes it, [-removed-] {+added+}, and coloured too."""
    parts: list[Content] = []
    for span in word_diff(old, new):
        if span.op == "equal":
            parts.append(literal(span.text))
        elif span.op == "delete":
            parts += [Content.styled("[-", BAD), literal(span.text, f"strike {BAD}"), Content.styled("-]", BAD)]
        else:
            parts += [Content.styled("{+", GOOD), literal(span.text, f"bold {GOOD}"), Content.styled("+}", GOOD)]
    return Content.assemble(*parts)


def left_column(d: ExampleDetail, reviewer: str | None = None) -> Content:
    """Header (with who is reviewing), premise, hypothesis, gold label and the thought."""
    ex = d.example
    you = Content.assemble(("  ·  reviewer ", MUTED), literal(reviewer, "bold")) if reviewer else Content("")
    parts: list[Content] = [
        Content.assemble((f"#{ex.id}", "bold"), "  ", literal(f"{ex.dataset}/{ex.split}", MUTED),
                         (f"  source {ex.source_id}", MUTED), you, "\n\n"),
        _section("PREMISE"), literal(ex.premise), Content("\n\n"),
        _section("HYPOTHESIS"), literal(ex.hypothesis), Content("\n\n"),
        Content.assemble(("GOLD  ", HEAD), (label_text(ex.gold_label) if ex.gold_label is not None
                                              else "none (unlabelled)", "bold"), "\n"),
    ]
    if d.state.suggested_label is not None:
        parts.append(Content.assemble(("  suggested relabel: ", "$text-warning"),
                                      label_text(d.state.suggested_label), (" (gold kept)", MUTED), "\n"))
    parts.append(Content("\n"))
    if d.thought is None:
        parts.append(_section("THOUGHT", ("  none yet", MUTED)))
    else:
        parts += [_section("THOUGHT"), _gen_line(d.thought, "label", ex.gold_label),
                  target_text(d.thought, d, d.thought.raw_response or "(empty)")]
    return Content.assemble(*parts)


def edit_content(d: ExampleDetail, show_diff: bool = False) -> Content:
    """The current edit: its label against gold (and what a curated export does with it), its text or its diff."""
    s, gold = d.state, d.example.gold_label
    verdict, style = _verdict(s.edited_label, gold)
    parts: list[Content | str | tuple[str, str]] = [
        _section("EDITED THOUGHT", f"  label {label_text(s.edited_label)}  ", (verdict, style))]
    if note := edit_gold_note(s.edited_label, gold, s.suggested_label):
        parts += [(note, "$text-warning"), "\n"]
    parts += [(edit_route_note(d.edit_base, s.edited_thought or "", d.edit_words), MUTED), "\n"]
    parts.append("\n")
    if not show_diff:
        parts.append(literal(s.edited_thought))
    elif d.edit_base is None:
        parts += [("Diff: the edit did not record the text it replaced\n", "bold"), literal(s.edited_thought)]
    else:
        same = " (the text is unchanged: the edit set the label)" if d.edit_base == s.edited_thought else ""
        parts += [("Diff: what the edit replaced → edited thought", "bold"), (same, MUTED), "\n",
                  diff_content(d.edit_base, s.edited_thought or "")]
    parts.append("\n\n")
    return Content.assemble(*parts)


def reflection_content(d: ExampleDetail, show_diff: bool = False) -> Content:
    """The current reflection (or its diff against the thought); headed "shown gold" when a blind one is beside it."""
    r, title = d.reflection, "REFLECTION (shown gold)" if d.blind is not None else "REFLECTION"
    if r is None:
        need = d.example.disagrees
        return _section(title, ("  none" + (" (needs one: press R)" if need else ""), MUTED))
    n = len(d.reflections)
    version = next((i + 1 for i, g in enumerate(d.reflections) if g.id == r.id), n)
    chosen = " (chosen)" if d.state.chosen_reflection_id == r.id else ""
    parts = [_section(title, (f"  version {version} of {n}{chosen}", MUTED)),
             _gen_line(r, "label", d.example.gold_label), Content("\n"),
             Content.styled("Error analysis\n", "bold"), literal(r.error_analysis or "(none)"), Content("\n\n")]
    if show_diff and d.thought is not None and not d.edited:
        parts += [Content.styled("Diff: flawed thought → improved thought\n", "bold"),
                  diff_content(d.thought.thought_process or "", r.thought_process or "")]
    else:
        parts += [Content.styled("Improved thought\n", "bold"), target_text(r, d, "(none)")]
    return Content.assemble(*parts, "\n")


def right_column(d: ExampleDetail, show_diff: bool = False, width: int | None = None,
                 colours: bool = False) -> Content:
    """The edit, if any; the reflection (or its diff against the thought) with the blind reflection beside it
    (side by side when width allows, else below); judge scores, prediction, attribution (its thought coloured
    token by token when colours), review."""
    ex, parts = d.example, []
    if d.edited:  # what a curated export uses comes first; `d` diffs the edit, not the reflection
        parts.append(edit_content(d, show_diff))
    if d.blind is None:
        parts.append(reflection_content(d, show_diff))
    elif width is not None and width >= SIDE_BY_SIDE_WIDTH:
        parts += [side_by_side(reflection_content(d, show_diff), blind_content(d), width), Content("\n")]
    else:
        parts += [reflection_content(d, show_diff), Content("\n"), blind_content(d)]
    for j in d.judges:
        target = f" of #{j.parent_id}" if j.parent_id else ""
        score = "-" if j.score is None else f"{j.score:g}/5"
        parts += [Content("\n"), _section("JUDGE", f"  {score}{target}  ", literal(j.model, MUTED)),
                  literal(j.rationale or "")]
        parts.append(Content("\n"))
    if d.prediction is not None:
        p = d.prediction
        run = f"  run {p.run_id}" if p.run_id is not None else ""
        parts += [Content("\n"), _section("PREDICTION", (run, MUTED)), _gen_line(p, "label", ex.gold_label),
                  literal(p.thought_process or p.raw_response or ""), Content("\n")]
    if d.attribution is not None:
        parts += [Content("\n"), attribution_content(d, colours)]
    if d.suspicion is not None:
        parts += [Content("\n"), suspicion_content(d)]
    parts += [Content("\n"), review_content(d)]
    return Content.assemble(*parts)


# Attribution colours, by the token's score against the answer's largest |score|: towards the label, against it.
TOWARDS = ("on $success 20%", "on $success 45%", "on $success 75%")
AGAINST = ("on $error 20%", "on $error 45%", "on $error 75%")


def attribution_content(d: ExampleDetail, colours: bool) -> Content:
    """Where the label of the attributed answer comes from (shares), and with colours its thought, token by token:
    green pushes towards the answer's label, red away, stronger for larger scores (text shown literally)."""
    a, answer = d.attribution, d.attributed
    assert a is not None
    shares = (f"  run {a.run_id} · label {label_text(a.label)} · thought {a.shares['thought']:.0%} · premise "
              f"{a.shares['premise']:.0%} · hypothesis {a.shares['hypothesis']:.0%}")
    head = _section("ATTRIBUTION", (shares, MUTED))
    if not a.converged:
        warning = (f"not converged: the scores miss {a.missed:.0%} of the output difference "
                   "(nlistral attribute --max-steps)\n")
        head = Content.assemble(head, (warning, BAD))
    if not colours:
        return Content.assemble(head, ("press i to colour the answer's thought by attribution\n", MUTED))
    text = answer.thought_process if answer is not None else None
    if not text:
        return Content.assemble(head, ("the attributed answer is no longer stored\n", MUTED))
    top = max((abs(x) for _, _, x in a.tokens), default=0.0) or 1.0
    parts: list[Content] = []
    last = 0
    for start, end, score in a.tokens:
        if start < last or end <= start:
            continue  # a character split over several tokens: styled once, by its first token
        strength = min(2, int(abs(score) / top * 3))
        parts += [literal(text[last:start]),
                  literal(text[start:end], (TOWARDS if score >= 0 else AGAINST)[strength])]
        last = end
    parts.append(literal(text[last:]))
    legend = Content.styled("green: towards the label · red: against · stronger: larger (i: off)\n", MUTED)
    return Content.assemble(head, legend, *parts, "\n")


def suspicion_content(d: ExampleDetail) -> Content:
    """The example's place in the stored gold-suspicion ranking and the reasons, each with the points it adds."""
    ranked = d.suspicion
    if ranked is None:
        return Content("")
    lines = [_section("GOLD SUSPICION", f"  #{ranked.rank}  score {ranked.suspect.score:g}",
                      ("  (as of the last ranking: t, r recomputes)", MUTED))]
    for reason in ranked.suspect.reasons:
        lines.append(Content.assemble("• ", literal(reason.detail), (f"  +{reason.points:g}", MUTED), "\n"))
    return Content.assemble(*lines)


BLIND_OUTCOME = {  # the reflection axis of the outcome cells (db/outcomes.py), as a line and its style
    "robust": ("robust: both reflections reach gold", GOOD),
    "rationalised": ("rationalised? only the reflection shown gold reaches it (reflection_rationalises)", BAD),
    "doubts_gold": ("gold doubted: neither reflection reaches it (reflections_doubt_gold)", "$text-warning"),
}
SIDE_BY_SIDE_WIDTH = 70  # the right column's text width from which the two reflections sit side by side
GUTTER = " │ "


def blind_content(d: ExampleDetail) -> Content:
    """The blind reflection (`reflect --blind`, never shown gold): its label against gold and against the
    reflection shown gold, what the pair says (robust, rationalised, gold doubted), its check and its reasoning."""
    b, r, gold = d.blind, d.reflection, d.example.gold_label
    if b is None:
        return Content("")
    parts: list[Content | str | tuple[str, str]] = [
        _section("BLIND REFLECTION (not shown gold)"), _gen_line(b, "label", gold)]
    if r is not None and b.predicted_label is not None and r.predicted_label is not None:
        same = b.predicted_label == r.predicted_label
        parts += [("= agrees with" if same else "≠ differs from", GOOD if same else BAD),
                  " the reflection shown gold\n"]
    outcome = BLIND_OUTCOME.get(d.reflection_outcome or "")
    if outcome:
        parts += [(f"→ {outcome[0]}", f"bold {outcome[1]}"), "\n"]
    parts += ["\n", Content.styled("Check of the earlier attempt\n", "bold"), literal(b.error_analysis or "(none)"),
              "\n\n", Content.styled("Own reasoning\n", "bold"),
              literal(b.thought_process or b.raw_response or "(none)"), "\n"]
    return Content.assemble(*parts)


def side_by_side(left: Content, right: Content, width: int) -> Content:
    """Two blocks wrapped to half the width each and laid out line by line, with a rule between them."""
    half = (width - len(GUTTER)) // 2
    a, b = left.rstrip().wrap(half), right.rstrip().wrap(half)
    blank = Content("")
    lines = [Content.assemble(x.pad_right(half - x.cell_length), (GUTTER, MUTED), y)
             for x, y in zip(a + [blank] * (len(b) - len(a)), b + [blank] * (len(a) - len(b)))]
    return Content("\n").join(lines) + "\n"


def review_content(d: ExampleDetail) -> Content:
    """The review state: decision, who and how long, relabel suggestion, bias flag, note (the edit is above)."""
    s = d.state
    who = "" if s.reviewer is None else f" by {s.reviewer}"
    spent = f" · {s.seconds_spent:.0f} s" if s.seconds_spent else ""
    parts: list[Content | str | tuple[str, str]] = [
        ("REVIEW  ", HEAD), (s.status, f"bold {STATUS_STYLE.get(s.status, '')}"), literal(who + spent, MUTED)]
    if s.skipped:
        parts.append(("  skipped", MUTED))
    parts.append("\n")
    if s.bias_category:
        parts += [("⚑ bias: ", "$text-warning"), BIAS_NAMES.get(s.bias_category, s.bias_category)]
        if s.bias_note:
            parts += [" — ", literal(s.bias_note)]
        parts.append("\n")
    if s.suggested_label is not None:
        parts += [("relabel suggested: ", "$text-warning"), label_text(s.suggested_label), "\n"]
    if s.note:
        parts += [("note: ", "bold"), literal(s.note), "\n"]
    return Content.assemble(*parts, team_content(d))


def team_content(d: ExampleDetail) -> Content:
    """Every reviewer's standing decision with its reason and comment, the adjudication marked; '' if none."""
    if not d.decisions:
        return Content("")
    parts: list[Content | str | tuple[str, str]] = ["\n", ("DECISIONS", HEAD)]
    if d.state.conflict:
        parts.append(("  ✗ reviewers disagree: J adjudicates", BAD))
    elif d.state.adjudicated:
        parts.append(("  adjudicated", GOOD))
    parts.append("\n")
    for t in d.decisions:
        parts += [decision_line(t), "\n"]
    return Content.assemble(*parts)


def decision_line(t: TeamDecision) -> Content:
    """One reviewer's decision: who, what, ⚖ if it adjudicates, the reason; the comment (as typed) below."""
    parts: list[Content | str | tuple[str, str]] = [literal(t.reviewer, "bold"), "  ",
                                                    (t.decision, DECISION_STYLE.get(t.decision, ""))]
    if t.adjudication:
        parts.append(("  ⚖ adjudication", "bold $accent"))
    if t.reason:
        parts += [("  reason: ", MUTED), literal(t.reason)]
    if t.comment:
        parts += [("\n  comment: ", MUTED), literal(t.comment)]
    return Content.assemble(*parts)
