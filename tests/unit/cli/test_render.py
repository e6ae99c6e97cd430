"""Formatting helpers of the command line."""

from __future__ import annotations

import math

import pytest

from loopml.cli import _render as r


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "-"), (0, "0ms"), (850, "850ms"), (4200, "4.2s"), (184_000, "3m 04s"), (7_500_000, "2h 05m")],
)
def test_fmt_duration(ms: int | None, text: str) -> None:
    assert r.fmt_duration(ms) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (3, "3"), (0.1234567, "0.123457"), (math.nan, "nan"), (-math.inf, "-inf"), (1e9, "1e+09")],
)
def test_fmt_number(value: float | None, text: str) -> None:
    assert r.fmt_number(value) == text


def test_fmt_value_shows_strings_raw_and_others_as_json() -> None:
    assert r.fmt_value("rf") == "rf"
    assert r.fmt_value(None) == "null"
    assert r.fmt_value([1, 2]) == "[1, 2]"
    assert r.fmt_value({"b": 1, "a": True}) == '{"a": true, "b": 1}'


def test_fmt_bytes() -> None:
    assert r.fmt_bytes(5) == "5 B"
    assert r.fmt_bytes(2048) == "2.0 KB"
    assert r.fmt_bytes(3 * 1024**3) == "3.0 GB"


def test_user_text_is_not_markup() -> None:
    assert r.text("[red]x[/red]").plain == "[red]x[/red]"
