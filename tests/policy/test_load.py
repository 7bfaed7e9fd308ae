"""Every load-time error, pinned by its text and its file:line:col.

Each case edits one small, valid policy (`BASE`) and loads it; the messages are part of the
interface, so a test fails when one changes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from guardrails.errors import PolicyError
from guardrails.policy.load import load_policies, load_policy_file, load_policy_text
from guardrails.policy.source import MAX_FILE_BYTES

# Line numbers, for reading the expected positions below:
#  1 policy         8 amount       15 LOW          22 fallback
#  2 owner          9 country      16 rules:
#  3 upstream:     10 thresholds:  17 name
#  4 url           11 when         18 when
#  5 protocol      12 outcome      19 outcome
#  6 score_path    13 reason       20 reason
#  7 inputs:       14 outcome      21 outcomes
BASE = """\
policy: p
owner: me
upstream:
  url: http://127.0.0.1:9/score
  protocol: json
  score_path: score
inputs:
  amount: {type: float, min: 0}
  country: {type: str, in: [US, CA]}
thresholds:
  - when: score >= 0.5
    outcome: decline
    reason: HIGH
  - outcome: approve
    reason: LOW
rules:
  - name: canada
    when: country == "CA"
    outcome: decline
    reason: CANADA
outcomes: [approve, decline]
fallback: {outcome: decline, reason: DOWN}
"""

ALL_TOP_KEYS = (
    "policy, shadow_of, version, owner, description, upstream, inputs, on_invalid, extra_fields, score, "
    "thresholds, rules, outcomes, fallback, monitor, tests"
)


def edit(old: str, new: str) -> str:
    """BASE with `old` (which must occur exactly once) replaced by `new`."""
    assert BASE.count(old) == 1, f"{old!r} occurs {BASE.count(old)} times in BASE"
    return BASE.replace(old, new)


def problems(text: str, file: str = "p.yaml") -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, file)
    return [str(problem) for problem in caught.value.problems]


def test_base_policy_loads() -> None:
    policy = load_policy_text(BASE, "p.yaml")
    assert policy.name == "p"
    assert policy.outcomes == ("approve", "decline")
    assert [rule.name for rule in policy.rules] == ["canada"]


# ---- YAML: syntax and hostile input ------------------------------------------------------

YAML_CASES = [
    (
        "syntax error",
        edit("owner: me", "owner: [me"),
        ["p.yaml:3:9: YAML: while parsing a flow sequence expected ',' or ']', but got ':'"],
    ),
    (
        "bad indentation",
        edit("owner: me", "owner: me\n  extra: 1"),
        ["p.yaml:3:8: YAML: mapping values are not allowed here"],
    ),
    ("alias", "a: &x 1\nb: *x\n", ["p.yaml:2:4: YAML: aliases (*name) are not allowed in policy files"]),
    ("empty file", "", ["p.yaml:1:1: file is empty"]),
    ("only a comment", "# nothing here\n", ["p.yaml:1:1: file is empty"]),
    ("duplicate key", edit("owner: me", "owner: me\nowner: you"), ["p.yaml:3:1: duplicate key `owner`"]),
    (
        "duplicate nested key",
        edit("  amount: {type: float, min: 0}", "  amount: {type: float, min: 0, min: 1}"),
        ["p.yaml:8:33: duplicate key `min`"],
    ),
    ("integer key", edit("owner: me", "owner: me\n1: x"), ["p.yaml:3:1: keys must be strings, got 1"]),
    ("list key", edit("owner: me", "owner: me\n[a]: x"), ["p.yaml:3:1: keys must be strings, got ['a']"]),
    ("null key", edit("owner: me", "owner: me\nnull: x"), ["p.yaml:3:1: keys must be strings, got None"]),
    (
        "python tag on a mapping",
        edit("owner: me", "owner: !!python/object:os.system {}"),
        ["p.yaml:2:8: YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"],
    ),
    (
        "python tag on a sequence",
        edit("owner: me", "owner: !!python/object/apply:os.system [echo]"),
        [
            "p.yaml:2:8: YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'"
        ],
    ),
    (
        "python tag on a scalar",
        edit("owner: me", "owner: !!python/name:os.system"),
        ["p.yaml:2:8: YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"],
    ),
    (
        "python tag on the document",
        "!!python/object:guardrails.cli.main\n" + BASE,
        [
            "p.yaml:1:1: YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:guardrails.cli.main'"
        ],
    ),
    (
        "local tag on a mapping",
        edit("owner: me", "owner: !me {a: 1}"),
        ["p.yaml:2:8: YAML: could not determine a constructor for the tag '!me'"],
    ),
    (
        "nesting too deep in block style",
        "".join("  " * i + f"k{i}:\n" for i in range(40)),
        ["p.yaml:32:63: YAML: nested deeper than 32 levels"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in YAML_CASES], ids=[c[0] for c in YAML_CASES])
def test_yaml_problem(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_alias_bomb_is_refused_fast() -> None:
    # "Billion laughs": 9 levels of 9 aliases each would expand to 9**9 strings.
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(8):
        this, below = chr(ord("b") + level), chr(ord("a") + level)
        lines.append(f"{this}: &{this} [" + ",".join([f"*{below}"] * 9) + "]")
    bomb = "\n".join(lines) + "\n"
    assert len(bomb) < 400
    started = time.perf_counter()
    assert problems(bomb) == ["p.yaml:2:8: YAML: aliases (*name) are not allowed in policy files"]
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 10_000, "p.yaml:1:33: YAML: nested deeper than 32 levels"),
        ("{" * 10_000, "p.yaml:1:33: YAML: nested deeper than 32 levels"),
        ("a: " + "[" * 10_000 + "]" * 10_000, "p.yaml:1:35: YAML: nested deeper than 32 levels"),
        ("- " * 10_000, "p.yaml:1:65: YAML: nested deeper than 32 levels"),
    ],
    ids=["flow sequences", "flow mappings", "under a key", "block sequences"],
)
def test_deep_nesting_is_refused_without_recursing(text: str, expected: str) -> None:
    started = time.perf_counter()
    assert problems(text) == [expected]
    assert time.perf_counter() - started < 5.0


def test_text_over_the_size_cap() -> None:
    assert MAX_FILE_BYTES == 262_144
    text = "#" + "x" * 262_144
    assert problems(text) == ["p.yaml:1:1: file is 262145 bytes; the limit is 262144"]


def test_size_cap_counts_bytes_not_characters() -> None:
    text = "# " + "é" * 131_072  # 2 + 2 * 131072 bytes
    assert problems(text) == ["p.yaml:1:1: file is 262146 bytes; the limit is 262144"]


def test_text_exactly_at_the_size_cap_loads() -> None:
    text = BASE + "#" * (262_144 - len(BASE) - 1) + "\n"
    assert len(text.encode()) == 262_144
    assert load_policy_text(text).name == "p"


# ---- the shape of the file (spec) -------------------------------------------------------

SHAPE_CASES = [
    (
        "unknown key with a did-you-mean",
        edit("  - outcome: approve", "  - ouctome: approve"),
        [
            "p.yaml:14:5: unknown key `ouctome` (did you mean `outcome`?); allowed here: when, outcome, reason",
            "p.yaml:14:5: missing required key `outcome`",
        ],
    ),
    (
        "unknown top-level key",
        edit("owner: me", "owner: me\nthreshold: []"),
        [f"p.yaml:3:1: unknown key `threshold` (did you mean `thresholds`?); allowed here: {ALL_TOP_KEYS}"],
    ),
    (
        "unknown key with nothing close",
        edit("owner: me", "owner: me\nzzz: 1"),
        [f"p.yaml:3:1: unknown key `zzz`; allowed here: {ALL_TOP_KEYS}"],
    ),
    (
        "unknown key in a test's expect",
        BASE + "tests:\n  - name: t\n    input: {amount: 1, country: US}\n    score: 0.1\n"
        "    expect: {outcome: approve, reason: [LOW]}\n",
        [
            "p.yaml:27:32: unknown key `reason` (did you mean `reasons`?); "
            "allowed here: outcome, reasons, rules, shadow_rules, fallback, errors"
        ],
    ),
    ("missing required top-level key", edit("owner: me\n", ""), ["p.yaml:1:1: missing required key `owner`"]),
    (
        "missing required key in a threshold",
        edit("    reason: LOW\n", ""),
        ["p.yaml:14:5: missing required key `reason`"],
    ),
    ("wrong type", edit("owner: me", "owner: [me]"), ["p.yaml:2:8: Expected `str`, got `array`"]),
    (
        "wrong nested type",
        edit("  protocol: json", "  protocol: json\n  timeout_ms: soon"),
        ["p.yaml:6:15: Expected `int`, got `str`"],
    ),
    ("not a mapping", "just a string\n", ["p.yaml:1:1: Expected `object`, got `str`"]),
    ("unknown protocol", edit("  protocol: json", "  protocol: grpc"), ["p.yaml:5:13: Invalid enum value 'grpc'"]),
    (
        "url without a scheme",
        edit("  url: http://127.0.0.1:9/score", "  url: ftp://x"),
        ["p.yaml:4:8: Expected `str` matching regex '^https?://'"],
    ),
    (
        "bad policy name",
        edit("policy: p", "policy: Credit_Risk"),
        ["p.yaml:1:9: Expected `str` matching regex '^[a-z0-9][a-z0-9-]*$'"],
    ),
    ("policy name too long", edit("policy: p", "policy: " + "a" * 65), ["p.yaml:1:9: Expected `str` of length <= 64"]),
    (
        "no thresholds",
        edit(
            "thresholds:\n  - when: score >= 0.5\n    outcome: decline\n    reason: HIGH\n"
            "  - outcome: approve\n    reason: LOW\n",
            "thresholds: []\n",
        ),
        ["p.yaml:10:13: Expected `array` of length >= 1"],
    ),
    (
        "`in` values of a nested list",
        edit("  country: {type: str, in: [US, CA]}", "  country: {type: str, in: [US, [CA]]}"),
        ["p.yaml:9:33: Expected `bool | int | float | str`, got `array`"],
    ),
    (
        "shape problems together, in line order",
        edit("owner: me", "owner: 5\nthreshold: []").replace("  protocol: json", "  protocol: grpc"),
        [
            "p.yaml:2:8: Expected `str`, got `int`",
            f"p.yaml:3:1: unknown key `threshold` (did you mean `thresholds`?); allowed here: {ALL_TOP_KEYS}",
            "p.yaml:6:13: Invalid enum value 'grpc'",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_shape_problem(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


# ---- outcomes, thresholds and rules -----------------------------------------------------

OUTCOME_NOT_LISTED = "outcome `deny` is not in `outcomes` (approve, decline)"

STRUCTURE_CASES = [
    (
        "threshold outcome not in outcomes",
        edit("    outcome: decline\n    reason: HIGH", "    outcome: deny\n    reason: HIGH"),
        [f"p.yaml:12:14: {OUTCOME_NOT_LISTED}"],
    ),
    (
        "rule outcome not in outcomes",
        edit("    outcome: decline\n    reason: CANADA", "    outcome: deny\n    reason: CANADA"),
        [f"p.yaml:19:14: {OUTCOME_NOT_LISTED}"],
    ),
    (
        "fallback outcome not in outcomes",
        edit("fallback: {outcome: decline", "fallback: {outcome: deny"),
        [f"p.yaml:22:21: {OUTCOME_NOT_LISTED}"],
    ),
    (
        "duplicate outcome",
        edit("outcomes: [approve, decline]", "outcomes: [approve, decline, approve]"),
        ["p.yaml:21:30: outcome `approve` is listed twice"],
    ),
    (
        "last threshold with `when`",
        edit("  - outcome: approve\n", "  - when: score < 0.5\n    outcome: approve\n"),
        ["p.yaml:14:11: the last threshold must have no `when`, so every score gets an outcome"],
    ),
    (
        "middle threshold without `when`",
        edit("  - when: score >= 0.5\n    outcome: decline", "  - outcome: decline"),
        ["p.yaml:11:5: only the last threshold may leave out `when`; the ones after it never match"],
    ),
    (
        "`outcome` in a threshold",
        edit("  - when: score >= 0.5", '  - when: outcome == "approve"'),
        ["p.yaml:11:11: thresholds come before any outcome: `outcome` can only be used in rules"],
    ),
    (
        "duplicate rule name",
        edit("outcomes:", "  - name: canada\n    when: amount > 5\n    outcome: decline\n    reason: BIG\noutcomes:"),
        ["p.yaml:21:11: rule name `canada` is used twice"],
    ),
    (
        "final on a shadow rule",
        edit("    reason: CANADA\n", "    reason: CANADA\n    final: true\n    mode: shadow\n"),
        ["p.yaml:21:12: `final` has no effect on a shadow rule"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in STRUCTURE_CASES], ids=[c[0] for c in STRUCTURE_CASES]
)
def test_structure_problem(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


# ---- expressions: the column points into the expression ---------------------------------

UNKNOWN_SCROE = "unknown name `scroe` (did you mean `score`?)"

EXPRESSION_CASES = [
    (
        "does not parse",
        edit("  - when: score >= 0.5", "  - when: score >=> 0.5"),
        "11:19: syntax error: invalid syntax",
    ),
    (
        "unknown name at the start",
        edit("  - when: score >= 0.5", "  - when: scroe >= 0.5"),
        f"11:11: {UNKNOWN_SCROE}",
    ),
    (
        "unknown name in the middle",
        edit("  - when: score >= 0.5", "  - when: amount > 1 and scroe >= 0.5"),
        f"11:26: {UNKNOWN_SCROE}",
    ),
    (
        "unknown name in a double-quoted expression",
        edit("  - when: score >= 0.5", '  - when: "amount > 1 and scroe >= 0.5"'),
        f"11:27: {UNKNOWN_SCROE}",
    ),
    (
        "unknown name after escaped quotes",
        edit('    when: country == "CA"', '    when: "country == \\"CA\\" and scroe > 1"'),
        f"18:34: {UNKNOWN_SCROE}",
    ),
    (
        "unknown name after doubled single quotes",
        edit('    when: country == "CA"', "    when: 'country == ''CA'' and scroe > 1'"),
        f"18:34: {UNKNOWN_SCROE}",
    ),
    (
        "unknown name on the second line of a plain scalar",
        edit("  - when: score >= 0.5\n", "  - when: score >= 0.5\n      and scroe > 1\n"),
        f"12:11: {UNKNOWN_SCROE}",
    ),
    (
        "unknown name in a folded block scalar",
        edit("  - when: score >= 0.5\n", "  - when: >-\n      score >= 0.5 and scroe > 1\n"),
        f"12:24: {UNKNOWN_SCROE}",
    ),
    (
        "unknown name in a flow mapping",
        edit(
            "  - when: score >= 0.5\n    outcome: decline\n    reason: HIGH\n",
            "  - {when: score >= 0.5 and scroe > 1, outcome: decline, reason: HIGH}\n",
        ),
        f"11:29: {UNKNOWN_SCROE}",
    ),
    (
        "attribute access",
        edit("  - when: score >= 0.5", "  - when: amount > 0 and score.real >= 0.5"),
        "11:26: attribute access not allowed",
    ),
    (
        "subscript",
        edit("  - when: score >= 0.5", "  - when: amount > 0 and country[0] == 'U'"),
        "11:26: subscripts not allowed",
    ),
    (
        "lambda",
        edit("  - when: score >= 0.5", '  - when: "amount > 0 and (lambda: True)()"'),
        "11:28: lambda not allowed",
    ),
    (
        "unknown function",
        edit('    when: country == "CA"', "    when: country == \"CA\" and __import__('os')"),
        "18:31: unknown function `__import__`; the functions are: "
        "abs, clip, exp, is_missing, len, log, log1p, max, min, sqrt",
    ),
    (
        "brackets nested too deep",
        edit("  - when: score >= 0.5", "  - when: " + "(" * 40 + "score >= 0.5" + ")" * 40),
        "11:43: brackets nested deeper than 32",
    ),
    (
        "a value that can never match",
        edit('    when: country == "CA"', '    when: country == "MX"'),
        "18:22: `country` is never 'MX'; its values are: CA, US",
    ),
    (
        "not a condition",
        edit("  - when: score >= 0.5", "  - when: score + 1"),
        "11:11: a condition must be true or false, but this is a number",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in EXPRESSION_CASES], ids=[c[0] for c in EXPRESSION_CASES]
)
def test_expression_problem(text: str, expected: str) -> None:
    assert problems(text) == [f"p.yaml:{expected}"]


# ---- inputs ----------------------------------------------------------------------------

AMOUNT = "  amount: {type: float, min: 0}"
COUNTRY = "  country: {type: str, in: [US, CA]}"

INPUT_CASES = [
    ("reserved name", edit(AMOUNT, "  score: {type: float, min: 0}"), ["p.yaml:8:10: input name `score` is reserved"]),
    (
        "`outcome` is reserved",
        edit(AMOUNT, "  outcome: {type: str}"),
        ["p.yaml:8:12: input name `outcome` is reserved"],
    ),
    (
        "function name is reserved",
        edit(AMOUNT, "  len: {type: float}"),
        ["p.yaml:8:8: input name `len` is reserved"],
    ),
    (
        "invalid name",
        edit(AMOUNT, "  Amount-X: {type: float, min: 0}"),
        ["p.yaml:8:13: input name `Amount-X` must match [a-z_][a-z0-9_]*"],
    ),
    (
        "min on a str",
        edit(COUNTRY, "  country: {type: str, min: 1, in: [US, CA]}"),
        ["p.yaml:9:29: `min` only applies to int and float inputs"],
    ),
    (
        "max on a bool",
        edit(AMOUNT, "  amount: {type: float, min: 0}\n  flag: {type: bool, max: 1}"),
        ["p.yaml:9:27: `max` only applies to int and float inputs"],
    ),
    (
        "max_length on a number",
        edit(AMOUNT, "  amount: {type: float, min: 0, max_length: 3}"),
        ["p.yaml:8:45: `max_length` only applies to str inputs"],
    ),
    (
        "min greater than max",
        edit(AMOUNT, "  amount: {type: float, min: 10, max: 1}"),
        ["p.yaml:8:30: `min` 10.0 is greater than `max` 1.0"],
    ),
    (
        "default of the wrong type",
        edit(AMOUNT, "  amount: {type: float, min: 0, default: lots}"),
        ["p.yaml:8:42: default 'lots' is not a float"],
    ),
    (
        "bool default for an int",
        edit(AMOUNT, "  amount: {type: int, min: 0, default: true}"),
        ["p.yaml:8:40: default True is not an int"],
    ),
    (
        "default not among the allowed values",
        edit(COUNTRY, "  country: {type: str, in: [US, CA], default: MX}"),
        ["p.yaml:9:47: default 'MX' is not one of the allowed values"],
    ),
    (
        "default out of range",
        edit(AMOUNT, "  amount: {type: float, min: 0, default: -1}"),
        ["p.yaml:8:42: default -1 is outside [min, max]"],
    ),
    (
        "null default",
        edit(AMOUNT, "  amount: {type: float, min: 0, default: null}"),
        ["p.yaml:8:42: `default` cannot be null; use `required: false` for an input that may be missing"],
    ),
    (
        "required with a default",
        edit(AMOUNT, "  amount: {type: float, min: 0, default: 1, required: true}"),
        ["p.yaml:8:55: a required input cannot have a `default`"],
    ),
    (
        "`in` values of the wrong type for a str",
        edit(COUNTRY, "  country: {type: str, in: [US, CA, 3]}"),
        ["p.yaml:9:37: 3 is not a str"],
    ),
    (
        "`in` values of the wrong type for an int",
        edit(AMOUNT, "  amount: {type: float, min: 0}\n  tier: {type: int, in: [1, 2.5, true]}"),
        ["p.yaml:9:29: 2.5 is not an int", "p.yaml:9:34: True is not an int"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in INPUT_CASES], ids=[c[0] for c in INPUT_CASES])
def test_input_problem(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


# ---- score and upstream ----------------------------------------------------------------

JSON_UPSTREAM = "  protocol: json\n  score_path: score\n"

UPSTREAM_CASES = [
    (
        "one label",
        edit("outcomes:", "score: {labels: [only]}\noutcomes:"),
        "21:17: `labels` needs at least two classes",
    ),
    ("duplicate label", edit("outcomes:", "score: {labels: [a, a]}\noutcomes:"), "21:17: `labels` lists a class twice"),
    (
        "positive not in labels",
        edit("outcomes:", "score: {labels: [good, bad], positive: worse}\noutcomes:"),
        "21:40: `positive` class `worse` is not in `labels`",
    ),
    (
        "positive without labels",
        edit("outcomes:", "score: {positive: bad}\noutcomes:"),
        "21:19: `positive` class `bad` is not in `labels`",
    ),
    (
        "score min above max",
        edit("outcomes:", "score: {min: 2, max: 1}\noutcomes:"),
        "21:14: `score.min` is greater than `score.max`",
    ),
    (
        "score max below the default min",
        edit("outcomes:", "score: {max: -1}\noutcomes:"),
        "21:8: `score.min` is greater than `score.max`",
    ),
    (
        "v2 without a tensor",
        edit(JSON_UPSTREAM, "  protocol: v2\n"),
        "4:3: the v2 protocol needs `tensor` (name, datatype, features)",
    ),
    (
        "tensor feature not declared",
        edit(JSON_UPSTREAM, "  protocol: v2\n  tensor: {name: x, features: [amount, income]}\n"),
        "6:40: tensor feature `income` is not a declared input",
    ),
    (
        "tensor feature is a string",
        edit(JSON_UPSTREAM, "  protocol: v2\n  tensor: {name: x, features: [amount, country]}\n"),
        "6:40: tensor feature `country` is a string; a tensor holds numbers",
    ),
    (
        "tensor feature optional without a default",
        edit(JSON_UPSTREAM, "  protocol: v2\n  tensor: {name: x, features: [amount, extra]}\n").replace(
            COUNTRY, COUNTRY + "\n  extra: {type: float, required: false}"
        ),
        "6:40: tensor feature `extra` may be missing; give it a `default`",
    ),
    (
        "tensor without features",
        edit(JSON_UPSTREAM, "  protocol: v2\n  tensor: {name: x, features: []}\n"),
        "6:31: Expected `array` of length >= 1",
    ),
    (
        "json without score_path",
        edit("  score_path: score\n", ""),
        "4:3: the json protocol needs `score_path` (e.g. predictions.0.probability)",
    ),
    (
        "score_path on v2",
        edit("  protocol: json\n", "  protocol: v2\n  tensor: {name: x, features: [amount]}\n"),
        "7:15: `score_path` only applies to the json protocol",
    ),
    (
        "score_path on mlflow",
        edit("  protocol: json\n", "  protocol: mlflow\n"),
        "6:15: `score_path` only applies to the json protocol",
    ),
    (
        "output on json",
        edit(JSON_UPSTREAM, JSON_UPSTREAM + "  output: y\n"),
        "7:11: `output` only applies to the v2 protocol",
    ),
    (
        "tensor on json",
        edit(JSON_UPSTREAM, JSON_UPSTREAM + "  tensor: {name: x, features: [amount]}\n"),
        "7:11: `tensor` only applies to the v2 protocol",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in UPSTREAM_CASES], ids=[c[0] for c in UPSTREAM_CASES]
)
def test_score_and_upstream_problem(text: str, expected: str) -> None:
    assert problems(text) == [f"p.yaml:{expected}"]


def test_v2_policy_with_a_declared_tensor_loads() -> None:
    text = edit(JSON_UPSTREAM, "  protocol: v2\n  tensor: {name: x, features: [amount]}\n  output: proba\n")
    policy = load_policy_text(text)
    assert policy.upstream.tensor is not None
    assert policy.upstream.tensor.features == ["amount"]
    assert policy.upstream.output == "proba"


# ---- several problems at once ----------------------------------------------------------


def test_every_semantic_problem_is_reported_sorted_by_line() -> None:
    # Found in the order fallback, threshold, input, rule; reported in file order.
    text = (
        edit("fallback: {outcome: decline", "fallback: {outcome: deny")
        .replace("    outcome: decline\n    reason: HIGH", "    outcome: deny\n    reason: HIGH")
        .replace(AMOUNT, "  Amount: {type: float, min: 0}")
        .replace('    when: country == "CA"', "    when: scroe > 1")
    )
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    expected = [
        "p.yaml:8:11: input name `Amount` must match [a-z_][a-z0-9_]*",
        f"p.yaml:12:14: {OUTCOME_NOT_LISTED}",
        f"p.yaml:18:11: {UNKNOWN_SCROE}",
        f"p.yaml:22:21: {OUTCOME_NOT_LISTED}",
    ]
    assert [str(problem) for problem in caught.value.problems] == expected
    assert str(caught.value) == "\n".join(expected)
    assert [(p.file, p.line, p.col) for p in caught.value.problems] == [
        ("p.yaml", 8, 11),
        ("p.yaml", 12, 14),
        ("p.yaml", 18, 11),
        ("p.yaml", 22, 21),
    ]


# ---- files -------------------------------------------------------------------------------


def test_file_over_the_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("#" * 300_000)
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert str(caught.value) == f"{path}:1:1: file is 300000 bytes; the limit is 262144"


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"\xffpolicy: p\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert str(caught.value) == (
        f"{path}:1:1: cannot read: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert str(caught.value) == f"{path}:1:1: cannot read: [Errno 2] No such file or directory: '{path}'"


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(edit("owner: me", "owner: me\nowner: you"))
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert str(caught.value) == f"{path}:3:1: duplicate key `owner`"


def test_load_policies_reports_every_file_and_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yml").write_text(BASE)
    (tmp_path / "c.yaml").write_text(edit("owner: me", "owner: [me"))
    (tmp_path / "notes.txt").write_text("not a policy")
    policies, found = load_policies([tmp_path])
    assert [policy.file for policy in policies] == [str(tmp_path / "a.yaml")]
    assert [str(problem) for problem in found] == [
        f"{tmp_path / 'b.yml'}:1:1: policy `p` is also defined in {tmp_path / 'a.yaml'}",
        f"{tmp_path / 'c.yaml'}:3:9: YAML: while parsing a flow sequence expected ',' or ']', but got ':'",
    ]


def test_load_policies_in_an_empty_folder(tmp_path: Path) -> None:
    policies, found = load_policies([tmp_path])
    assert policies == []
    assert [str(problem) for problem in found] == [f"{tmp_path}:1:1: no policy files (*.yaml, *.yml) found"]


# ---- the version id --------------------------------------------------------------------

REFORMATTED = """\
# The same policy, written differently: comments, flow style, key order, quoting.
owner: "me"
policy: p   # the name
inputs:
  country:
    in: ["US", "CA"]
    type: str
  amount: {min: 0, type: float}
upstream: {protocol: json, score_path: score, url: "http://127.0.0.1:9/score"}
thresholds:
  - {when: "score >= 0.5", reason: HIGH, outcome: decline}
  - reason: LOW
    outcome: approve

rules:
  - {name: canada, outcome: decline, reason: CANADA, when: 'country == "CA"'}
fallback:
  reason: DOWN
  outcome: decline
outcomes:
  - approve
  - decline
"""


def test_version_id_ignores_comments_whitespace_and_key_order() -> None:
    original = load_policy_text(BASE).version_id
    assert len(original) == 16
    assert int(original, 16) >= 0
    assert load_policy_text(REFORMATTED).version_id == original
    assert load_policy_text("# a comment\n\n" + BASE.replace(": ", ":   ")).version_id == original


def test_version_id_changes_when_a_threshold_changes() -> None:
    original = load_policy_text(BASE).version_id
    changed = load_policy_text(edit("score >= 0.5", "score >= 0.6")).version_id
    assert changed != original
    assert load_policy_text(edit("reason: HIGH", "reason: VERY_HIGH")).version_id not in (original, changed)
