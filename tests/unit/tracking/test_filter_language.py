"""The run filter language: parsing, precedence, order-by and error positions."""

from __future__ import annotations

import pytest

from loopml.errors import FilterSyntaxError
from loopml.tracking._filter import And, Compare, Not, Or, OrderKey, parse_filter, parse_order_by


@pytest.mark.parametrize("text", [None, "", "   "])
def test_blank_is_no_filter(text: str | None) -> None:
    assert parse_filter(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.acc > 0.9", Compare("metric", "acc", ">", 0.9)),
        ("metrics.acc>=1", Compare("metric", "acc", ">=", 1)),
        ("metrics.loss < -1e-3", Compare("metric", "loss", "<", -0.001)),
        ("metric.acc == 1", Compare("metric", "acc", "=", 1)),
        ("params.model = 'rf'", Compare("param", "model", "=", "rf")),
        ('params.model <> "rf"', Compare("param", "model", "!=", "rf")),
        ("tags.team LIKE 'ml%'", Compare("tag", "team", "like", "ml%")),
        ("tags.team ilike 'ML%'", Compare("tag", "team", "ilike", "ML%")),
        ("params.`my key` = 'it''s'", Compare("param", "my key", "=", "it's")),
        ('tags."a.b" = "say ""hi"""', Compare("tag", "a.b", "=", 'say "hi"')),
        ("params.lr = 0.10", Compare("param", "lr", "=", "0.10")),  # text fields keep the literal
        ("tags.v in (1.10, 2)", Compare("tag", "v", "in", ("1.10", "2"))),
        ("status = 'finished'", Compare("attr", "status", "=", "finished")),
        ("attributes.run_name = 'x'", Compare("attr", "name", "=", "x")),
        ("start_time >= 1000", Compare("attr", "start_time", ">=", 1000)),
        ("status IN ('failed', 'killed')", Compare("attr", "status", "in", ("failed", "killed"))),
        ("params.m not in ('a')", Compare("param", "m", "notin", ("a",))),
        ("metrics.acc is null", Compare("metric", "acc", "isnull", None)),
        ("parent_run_id IS NOT NULL", Compare("attr", "parent_run_id", "notnull", None)),
    ],
)
def test_comparisons(text: str, expected: Compare) -> None:
    assert parse_filter(text) == expected


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Compare("metric", k, ">", 1) for k in "abc")
    assert parse_filter("metrics.a > 1 or metrics.b > 1 and metrics.c > 1") == Or((a, And((b, c))))
    assert parse_filter("(metrics.a > 1 or metrics.b > 1) and metrics.c > 1") == And((Or((a, b)), c))


def test_not_and_keywords_are_case_insensitive() -> None:
    a, b = Compare("metric", "a", ">", 1), Compare("metric", "b", ">", 1)
    assert parse_filter("NOT metrics.a > 1 AnD not (metrics.b > 1)") == And((Not(a), Not(b)))


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("metrics.acc > 0.9 andd params.x = 'y'", 18),
        ("metrics.acc ! 3", 12),
        ("metrics.acc >", 13),
        ("(metrics.a > 1", 14),
        ("params.x in (1, 2", 17),
        ("tags.a not like 'x'", 11),
        ("and metrics.a > 1", 0),
        ("metrics.a > 1 or", 16),
        ("params.x = 'unterminated", 11),
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError) as err:
        parse_filter(text)
    assert f"position {position}" in str(err.value)
    assert err.value.details["position"] == position
    assert err.value.code == "INVALID_FILTER"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("foo.bar = 1", "unknown field prefix 'foo'"),
        ("bogus = 1", "unknown attribute 'bogus'"),
        ("attributes.nope = 1", "unknown attribute 'nope'"),
        ("metrics.acc like 'x%'", "compares text"),
        ("metrics.acc = 'high'", "needs a number"),
        ("metrics.acc in (1, 'x')", "needs numbers"),
        ("start_time > 'yesterday'", "needs a number"),
    ],
)
def test_semantic_errors(text: str, fragment: str) -> None:
    with pytest.raises(FilterSyntaxError, match=fragment):
        parse_filter(text)


def test_order_by() -> None:
    assert parse_order_by(None) == []
    assert parse_order_by("metrics.acc DESC, start_time") == [
        OrderKey("metric", "acc", True),
        OrderKey("attr", "start_time", False),
    ]
    assert parse_order_by(["params.lr asc", "tags.`a b` desc"]) == [
        OrderKey("param", "lr", False),
        OrderKey("tag", "a b", True),
    ]


@pytest.mark.parametrize("clause", ["metrics.acc sideways", "nope", "metrics.acc desc desc", ""])
def test_bad_order_by(clause: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_order_by([clause])
