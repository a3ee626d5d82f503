"""Fuzzing the one parser: thousands of generated hostile replies, no exception, no invented label.

Each generated reply comes with the set of labels a parser may return for it: a valid reply must give
its label; a mutation that leaves the label field alone (truncation, inserted braces, quotes, control
characters, unicode, huge integers, deep nesting) may give that label or none, never the other one;
replies whose only "labels" are in prose, conflict, or are numbers that merely round to 0/1 must give
none. On top, an oracle written independently of the parser: a label is returned only where the reply
holds a label field (`label`/`predicted_label`/`prediction`/`answer` followed by `:` or `=`) or is a
bare label.
"""
from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from pipeline.parsing import STATUSES, Parsed, parse_judge, parse_prediction, parse_reflection, parse_thought

SEED = 1212
N_REPLIES = 5000

Case = tuple[str, frozenset]  # the reply, the labels (None included where allowed) a parser may return

THOUGHTS = (
    "Step 1: The premise says a man sleeps on a bench. Step 2: Sleeping is a way of resting.",
    "Step 1: Two children play in a park. Step 2: The hypothesis adds a dog, which is not stated.",
    "Step 1: The chef's knife isn't mentioned. Step 2: He said \"no\" to the offer; so it stays open.",
    "Step 1: Ünïcödé text — 東京 and émoji 🙂 stay as written. Step 2: nothing follows.",
)
WORDS = {1: ("entailment", "Entailment", "1", "yes", "true"), 0: ("not_entailment", "neutral", "contradiction",
                                                                    "0", "no", "false", "Non-Entailment")}
NOISE = ["{", "}", "[", "]", '"', "'", ",", ":", "\\", " ", "\n", "```", "\x00", "\x1b]0;pwned\x07", "\x1b[2J",
         "\u2028", "\ud800", "\u202e", "🙂", "ß", "\t", "{{{{", "}}}}", '\\"', "null", "True"]
HUGE = "9" * 5000
# Label values that only round to 0/1, or are out of range: never a label.
NOT_LABELS = ["0.99999999999999999", "1e-400", "1e0", "1E0", "1.0000000000000001", "0.5", "-0.0", "2", "-1", "10",
              "01", "NaN", "Infinity", "-Infinity", "1" * 5000, "0" + "0" * 4400, "1e999", '"1.5"', '"0.99"',
              '"maybe"', "null", "[1, 0]", '{"x": 1}', '"1e-400"', '"yes and no"', '"1 (not entailment)"']
PROSE = [
    "I first wrote predicted_label: {a}, but on reflection the predicted_label: {b}",
    "The gold label: {a}\nMy view differs.",
    "Some would say label = {a}, others label = {b}; I cannot decide.",
    "There is no mislabel: {w}, as far as I can tell.",
    "The original label: {w}, but the opposite holds.",
    "The premise entails the hypothesis, so {w}.",
    "Hmm. The answer is probably {w}; the label could be {a}.",
    "Annotators' label: {a}\nThe earlier thought predicted {b}.",
    "My prediction: {a}? Or {b}. Hard to say.\nI would rather not commit.",
    "{w}, {w2}, or {a}: all plausible readings.",
    "The previous answer: {a} was wrong, as the error analysis shows.",
    "Label: {a}\nLabel: {b}",
    "predicted_label: {a}\nFinal answer: {b}",
    "The label: {a}\nFinal answer: {b}",
]


def _label_json(label: int, rng: random.Random) -> str:
    """The label value as a model might write it (all of these must be read as `label`)."""
    return rng.choice([str(label), json.dumps(str(label)), json.dumps(rng.choice(WORDS[label])), f"{label}.0",
                       "true" if label else "false"])


def _valid(rng: random.Random) -> tuple[str, int, str]:
    """A well-formed reply of some shape: (reply, label, shape)."""
    label = rng.randint(0, 1)
    thought = rng.choice(THOUGHTS)
    shape = rng.choice(["json", "json", "reflection", "fenced", "prose_around", "single_quotes", "trailing_comma",
                        "unquoted_keys", "fields", "bare", "final_line", "list", "twice_encoded", "judge"])
    value = _label_json(label, rng)
    body = f'"thought_process": {json.dumps(thought)}, "predicted_label": {value}'
    if shape == "json":
        reply = "{" + body + "}"
    elif shape == "reflection":
        reply = json.dumps({"error_analysis": "The thought read too much into the premise.",
                            "improved_thought_process": thought, "predicted_label": label})
    elif shape == "fenced":
        reply = "```json\n{" + body + "}\n```"
    elif shape == "prose_around":
        reply = "Here is my analysis.\n{" + body + "}\nI hope this helps."
    elif shape == "single_quotes":
        reply = "{'thought_process': 'Step 1: the man sleeps.', 'predicted_label': " + str(label) + "}"
    elif shape == "trailing_comma":
        reply = "{" + body + ",}"
    elif shape == "unquoted_keys":
        reply = "{thought_process: " + json.dumps(thought) + ", predicted_label: " + str(label) + "}"
    elif shape == "fields":
        reply = f"Thought process: {thought}\nPredicted label: {rng.choice(WORDS[label])}"
    elif shape == "bare":
        reply = rng.choice(WORDS[label]) + rng.choice(["", ".", "\n"])
    elif shape == "final_line":
        reply = f"{thought}\nFinal answer: {rng.choice(WORDS[label])}"
    elif shape == "list":
        reply = "[{" + body + "}]"
    elif shape == "twice_encoded":
        reply = json.dumps("{" + body + "}")
    else:
        reply = json.dumps({"score": rng.randint(1, 5), "rationale": "Sound steps."})
    return reply, label, shape


def _insert(reply: str, piece: str, rng: random.Random) -> str:
    at = rng.randint(0, len(reply))
    return reply[:at] + piece + reply[at:]


def generate(n: int, seed: int = SEED) -> Iterator[tuple[str, str, Case]]:
    """n (mutation, shape, case) triples, deterministic for a seed."""
    rng = random.Random(seed)
    mutations = ["none", "truncate", "noise", "noise", "huge_int", "deep", "conflict", "retract", "not_label",
                 "prose", "control", "unicode_keys"]
    for _ in range(n):
        reply, label, shape = _valid(rng)
        same = frozenset({None, label})
        # Each pathological input costs up to ~50 ms a parser: 1 % of the cases (all of them run once
        # more in test_pathological_inputs_are_fast).
        mutation = "pathological" if rng.random() < 0.01 else rng.choice(mutations)
        if mutation == "none":
            case: Case = (reply, frozenset({label}) if shape != "judge" else frozenset({None}))
        elif mutation == "truncate":
            case = (reply[: rng.randint(0, len(reply))], same)
        elif mutation in ("noise", "control"):
            pool = NOISE if mutation == "noise" else NOISE[12:20]
            for _ in range(rng.randint(1, 6)):
                reply = _insert(reply, rng.choice(pool), rng)
            case = (reply, same)
        elif mutation == "huge_int":
            where = rng.choice(["prose", "value", "key"])
            if where == "prose":
                case = (_insert(reply, f" {HUGE} ", rng), same)
            elif where == "value" and reply.startswith("{") and reply.endswith("}"):
                case = (reply[:-1] + f', "tokens": {HUGE}' + "}", same)
            else:
                case = ('{"thought_process": "x", "predicted_label": ' + HUGE + "}", frozenset({None}))
        elif mutation == "deep":
            depth = rng.choice([2, 50, 999, 1500, 5000])
            opener, closer = rng.choice([("[", "]"), ('{"a": ', "}"), ('{"answer": ', "}")])
            case = (opener * depth + reply + closer * rng.choice([0, depth]), same)
        elif mutation == "conflict":
            other = "{" + f'"thought_process": "Step 1: other.", "predicted_label": {1 - label}' + "}"
            mine = "{" + f'"thought_process": "Step 1: mine.", "predicted_label": {label}' + "}"
            case = (rng.choice([f"{mine}\n{other}", f"{other}\nCorrected: {mine}",
                                "{" + f'"thought_process": "x", "predicted_label": {label}, "label": {1 - label}' + "}",
                                "{" + f'"thought_process": "x", "predicted_label": {label}, "predicted_label": '
                                      f"{1 - label}" + "}"]), frozenset({None}))
        elif mutation == "retract":
            case = (mine_then(label, rng), frozenset({None}))
        elif mutation == "not_label":
            bad = rng.choice(NOT_LABELS)
            case = ('{"thought_process": "Step 1: unclear.", "predicted_label": ' + bad + "}", frozenset({None}))
        elif mutation == "prose":
            a, b = rng.randint(0, 1), rng.randint(0, 1)
            w, w2 = rng.choice(WORDS[rng.randint(0, 1)]), rng.choice(WORDS[rng.randint(0, 1)])
            case = (rng.choice(PROSE).format(a=a, b=b, w=w, w2=w2), frozenset({None}))
        elif mutation == "unicode_keys":
            # Look-alike keys (Cyrillic a, fullwidth colon) are not label fields.
            case = (reply.replace("predicted_label", "predicted_lаbel").replace("Predicted label", "Predicted lаbel")
                    .replace("Final answer:", "Final answer：").replace("{'", "{ '"), same)
        else:
            case = (rng.choice(PATHOLOGICAL)(), frozenset({None}))
        yield mutation, shape, case


def mine_then(label: int, rng: random.Random) -> str:
    """A JSON answer followed or preceded by prose that states the other label."""
    answer = "{" + f'"thought_process": "Step 1: the man sleeps.", "predicted_label": {label}' + "}"
    prose = rng.choice([f"Actually, the predicted_label: {1 - label}.", f"Wait: label = {1 - label}",
                        f"Final answer: {1 - label}"])
    return rng.choice([f"{answer}\n{prose}", f"{prose}\n{answer}"])


PATHOLOGICAL: list[Callable[[], str]] = [
    lambda: " " * 100_000,
    lambda: "{" * 50_000,
    lambda: "[" * 50_000 + "]" * 49_999,
    lambda: '"' * 50_000,
    lambda: "'" * 50_000 + "label: 1",
    lambda: "label: " + " " * 100_000 + "x",
    lambda: "predicted_label:" * 20_000,
    lambda: "\\" * 100_000,
    lambda: "{" + '"a": ' * 20_000,
    lambda: "```" * 30_000,
    lambda: "cannot " + " " * 100_000 + "be",
    lambda: "cannot " + "a" * 100_000 + "ly inferred",
    lambda: "is not " * 20_000,
    lambda: '{"thought_process": "' + "x, " * 30_000,
    lambda: '{"thought_process": "' + " " * 50_000 + '" ' * 3,
    lambda: ',"' + " " * 50_000 + '"x',
    lambda: "{}" * 50_000,
    lambda: "{'a': '" + "', '" * 20_000,
    lambda: "thought_process: " + "a " * 50_000 + "\npredicted_label: 1\npredicted_label: 0",
    lambda: "Final answer: " + "1 " * 50_000,
    lambda: HUGE * 20,
    lambda: "-" + HUGE,
    lambda: "\x00" * 100_000,
]

PARSERS: dict[str, Callable[[str], Parsed]] = {
    "thought": parse_thought,
    "reflection": lambda raw: parse_reflection(raw, gold=1),
    "judge": parse_judge,
    "prediction": parse_prediction,
    "prediction_label_only": lambda raw: parse_prediction(raw, with_thought=False),
}

# The oracle, independent of the parser's own patterns: a label field, or the whole reply is a label.
_FIELD = re.compile(r"(?<![A-Za-z])(?:predicted[\s_-]*label|label|prediction|answer)[\\\"'`*\s]{0,4}[:=]", re.IGNORECASE)
_BARE = re.compile(r"[\s`'\"()\[\]]*(?:[01]|entail\w*|not[_ -]entail\w*|non[_ -]?entail\w*|no[_ -]entailment|"
                   r"contradiction|neutral|yes|no|true|false)[\s.!`'\"()\[\]]*", re.IGNORECASE)


def holds_a_label(reply: str) -> bool:
    """Whether a reply states a label at all: a label field somewhere, or nothing but a label."""
    return bool(_FIELD.search(reply)) or bool(_BARE.fullmatch(reply))


def expected(name: str, shape: str, label: frozenset) -> frozenset:
    """The labels a parser must return for an unmutated reply of a shape (exactly one)."""
    no_thought = shape in ("bare", "final_line") or (shape == "reflection" and name == "thought")
    return frozenset({None}) if no_thought and name in ("thought", "reflection") else label


def check(name: str, parsed: Parsed, reply: str, allowed: frozenset) -> None:
    """Every property one parsed reply must have."""
    where = f"{name} on {reply[:120]!r}"
    assert isinstance(parsed, Parsed), where
    assert parsed.status in STATUSES, where
    assert parsed.label in (None, 0, 1) and not isinstance(parsed.label, bool), where
    assert not any("could not read this reply" in p for p in parsed.problems), (where, parsed.problems)
    if name == "judge":
        assert parsed.label is None, where
        assert (parsed.status == "failed") == (parsed.score is None), where
        assert parsed.score is None or 1 <= parsed.score <= 5, where
        return
    assert (parsed.status == "failed") == (parsed.label is None), where
    assert parsed.label in allowed, (where, parsed)
    if parsed.label is not None:
        assert holds_a_label(reply), (where, parsed)
    if name in ("thought", "reflection") and parsed.label is not None:
        assert parsed.thought and parsed.thought.strip(), where  # what an export needs (exports.rules)


def test_fuzz_thousands_of_replies_never_raise_and_never_invent_a_label() -> None:
    cases = list(generate(N_REPLIES))
    assert len(cases) >= 5000
    started = time.perf_counter()
    slowest = (0.0, "")
    outcomes: Counter[tuple[str, str]] = Counter()
    for mutation, shape, (reply, allowed) in cases:
        for name, parse in PARSERS.items():
            t0 = time.perf_counter()
            parsed = parse(reply)
            spent = time.perf_counter() - t0
            slowest = max(slowest, (spent, f"{name}/{mutation}: {reply[:60]!r}"))
            check(name, parsed, reply, allowed if mutation != "none" else expected(name, shape, allowed))
            if mutation == "none" and name == "judge" and shape == "judge":
                assert parsed.status == "ok" and parsed.score is not None, reply
            outcomes[(mutation, "label" if parsed.label is not None else parsed.status)] += 1
    elapsed = time.perf_counter() - started
    # Every kind of mutation was tried, and valid replies really parse (the fuzz is not all failures).
    assert {m for m, _ in outcomes} >= {"none", "truncate", "noise", "huge_int", "deep", "conflict", "retract",
                                        "not_label", "prose", "control", "pathological"}
    assert outcomes[("none", "label")] > 0 and outcomes[("truncate", "label")] > 0
    assert slowest[0] < 1.0, slowest  # no catastrophic backtracking on any single reply
    assert elapsed < 60, elapsed
    print(f"\n{len(cases)} replies x {len(PARSERS)} parsers in {elapsed:.2f} s; slowest {slowest[0] * 1000:.0f} ms")


@pytest.mark.parametrize("make", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_pathological_inputs_are_fast(make: Callable[[], str]) -> None:
    reply = make()
    for name, parse in PARSERS.items():
        t0 = time.perf_counter()
        parsed = parse(reply)
        assert time.perf_counter() - t0 < 1.0, (name, reply[:60])
        check(name, parsed, reply, frozenset({None}))


@pytest.mark.parametrize("value", [None, 42, 1.0, b'{"predicted_label": 1}', ["1"], {"predicted_label": 1}, object()])
def test_non_text_input_never_raises(value: object) -> None:
    for name, parse in PARSERS.items():
        parsed = parse(value)  # type: ignore[arg-type]
        assert parsed.status == "failed" and parsed.label is None and parsed.score is None, name


def test_the_generator_is_deterministic() -> None:
    assert list(generate(50)) == list(generate(50))
