"""The HTML profile report: self-contained, escaped, one chart per column, a heatmap."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from loopml.data.models import Anomaly, PiiFinding, Profile
from loopml.data.profile import profile_table
from loopml.data.report import render_profile_html, write_profile_html

VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source", "track", "embed"}


class TreeChecker(HTMLParser):
    """Checks that every element is closed in order and records tags, ids and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: dict[str, int] = {}
        self.errors: list[str] = []
        self.text: list[str] = []
        self.svg_classes: list[str] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.in_title = False
        self.title = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        if tag == "svg":
            self.svg_classes.append(a.get("class") or "")
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")
        for name in ("src", "href"):
            value = a.get(name) or ""
            if value.startswith(("http:", "https:", "//")):
                self.errors.append(f"external reference {value}")
        if tag == "title" and not self.stack[-1:] == ["svg"] and "head" in self.stack:
            self.in_title = True
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()
        if tag == "title":
            self.in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.in_title:
            self.title += data


def parse(page: str) -> TreeChecker:
    checker = TreeChecker()
    checker.feed(page)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert not checker.stack, f"unclosed: {checker.stack}"
    return checker


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    df: pd.DataFrame = load_wine(as_frame=True).frame
    df = df.assign(cultivar=df["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"}).astype("category"))
    df["rich"] = df["alcohol"] > 13
    df["bottled"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(df.index, unit="D")
    df["note"] = np.where(df.index % 3 == 0, None, "<b>fruity</b> & dry")
    return df


@pytest.fixture(scope="module")
def profile(wine: pd.DataFrame) -> Profile:
    return profile_table(wine)


def test_page_is_well_formed_with_one_chart_per_column(profile: Profile) -> None:
    page = render_profile_html(profile, title="Wine")
    tree = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert tree.svg_classes.count("chart") == len(profile.columns)
    assert tree.svg_classes.count("heatmap") == 1
    assert tree.title == "Wine"
    # summary table: one row per column, each linking to its card
    assert {h.lstrip("#") for h in tree.hrefs} == {f"col-{i}" for i in range(len(profile.columns))} <= tree.ids
    assert "<script" not in page.lower()


def test_title_and_values_are_escaped(profile: Profile) -> None:
    title = '<script>alert("x")</script> & co'
    page = render_profile_html(profile, title=title)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    assert "<b>fruity</b>" not in page and "&lt;b&gt;fruity&lt;/b&gt; &amp; dry" in page
    assert parse(page).title == title


def test_heatmap_covers_numeric_columns(profile: Profile) -> None:
    page = render_profile_html(profile, title="Wine")
    numeric = [n for n, c in profile.columns.items() if c.kind == "numeric"]
    heatmap = page[page.index('class="heatmap"') :]
    heatmap = heatmap[: heatmap.index("</svg>")]
    assert heatmap.count("<rect") == len(numeric) ** 2 + 1  # cells + colour scale
    assert "linearGradient" in heatmap
    assert "alcohol × alcohol: 1.000" in heatmap


def test_pii_badges_and_anomalies(profile: Profile) -> None:
    pii = [PiiFinding(column="note", kind="email", match_rate=0.75, examples=["j***@example.com"], reason="regex")]
    anomalies = [
        Anomaly(
            column="alcohol", kind="out_of_range", severity="error", rows=3, message="alcohol > 15 <%>", examples=[15.2]
        ),
        Anomaly(column=None, kind="row_count", severity="warning", rows=0, message="fewer rows than expected"),
    ]
    page = render_profile_html(profile, title="Wine", pii=pii, anomalies=anomalies)
    tree = parse(page)
    assert "PII: email" in page and "75% of sampled values match" in page
    assert "<h2>Anomalies</h2>" in page and "alcohol &gt; 15 &lt;%&gt;" in page
    assert "out_of_range" in page and "(table)" in page
    assert "15.2" in "".join(tree.text)
    assert "<h2>Anomalies</h2>" not in render_profile_html(profile, title="Wine")


def test_charts_match_column_kinds(profile: Profile) -> None:
    page = render_profile_html(profile, title="Wine")
    assert 'aria-label="histogram of alcohol"' in page
    assert 'aria-label="most frequent values of cultivar"' in page
    assert 'aria-label="most frequent values of rich"' in page
    assert "barolo" in page


def test_empty_profile_renders() -> None:
    empty = profile_table(pd.DataFrame({"a": pd.Series([], dtype="float64"), "b": pd.Series([], dtype="str")}))
    page = render_profile_html(empty, title="Empty")
    tree = parse(page)
    assert tree.svg_classes.count("chart") == 2
    assert "No correlations" in page
    parse(render_profile_html(profile_table([]), title="Nothing"))


def test_write_profile_html(tmp_path: Path, profile: Profile) -> None:
    out = write_profile_html(profile, tmp_path / "reports" / "wine.html", title="Wine ü")
    assert out.exists()
    text = out.read_text(encoding="utf-8")
    assert "Wine ü" in text
    parse(text)
