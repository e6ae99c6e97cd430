"""An optional second check of requests: the training data's schema (ranges, categories, nulls).

The model signature says which columns and types a model takes. A data schema
(:class:`loopml.data.schema.Schema`, e.g. inferred from the training set and
edited by a person) also says which *values* are plausible: ``age`` in 0..120,
``colour`` one of ``red``/``blue``. ``loopml serve --schema schema.yaml`` refuses
requests whose values break it (HTTP 422 naming column, rows and values), so a
model never answers on data it has never seen the like of. Warnings (a high
null rate, a batch-size expectation) never refuse a request.

For numeric inputs the ranges, categories and nullability are checked on the
request's float64 array directly (vectorised, a few microseconds); other inputs
go through :func:`loopml.data.validation.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from loopml.errors import SignatureMismatchError
from loopml.serving.payload import Input

if TYPE_CHECKING:
    from loopml.data.schema import Schema

__all__ = ["SchemaGate"]

_MAX_LISTED = 5


@dataclass(frozen=True)
class _NumericRule:
    name: str
    lo: float | None
    hi: float | None
    nullable: bool
    categories: np.ndarray | None


class SchemaGate:
    """Checks model inputs against a data schema; raises naming every broken rule."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._rules = {c.name: _NumericRule(c.name, c.min, c.max, c.nullable,
                                            None if c.categories is None or not all(
                                                isinstance(v, int | float) and not isinstance(v, bool)
                                                for v in c.categories)
                                            else np.array(sorted(float(v) for v in c.categories)))
                       for c in schema.columns.values()}
        self._plain = all(not c.categories or self._rules[c.name].categories is not None for c in schema.columns.values())

    def check(self, x: Input, *, model: str) -> None:
        """Raises:
            SignatureMismatchError: values outside the schema's ranges or categories, or missing values
                in a column that is not nullable (every problem listed).
        """
        if x.array is not None and self._plain and not self.schema.checks:
            problems = self._check_array(x)
        else:
            problems = self._check_frame(x)
        if problems:
            raise SignatureMismatchError(
                f"input breaks the data schema of {model}: " + "; ".join(problems), problems=problems)

    def _check_array(self, x: Input) -> list[str]:
        assert x.array is not None
        problems: list[str] = []
        for j, name in enumerate(x.columns):
            rule = self._rules.get(name)
            if rule is None:
                continue
            col = x.array[:, j]
            nan = np.isnan(col)
            if not rule.nullable and nan.any():
                problems.append(f"column {name!r} is missing in row {int(np.flatnonzero(nan)[0])} but is not nullable")
            bad = np.zeros(len(col), dtype=bool)
            if rule.lo is not None:
                bad |= col < rule.lo
            if rule.hi is not None:
                bad |= col > rule.hi
            if bad.any():
                rows = np.flatnonzero(bad)
                shown = ", ".join(f"{col[i]:g}" for i in rows[:_MAX_LISTED])
                problems.append(f"column {name!r} is outside [{_fmt(rule.lo, '-inf')}, {_fmt(rule.hi, 'inf')}] in {len(rows)} "
                                f"row(s), first row {int(rows[0])} (values {shown})")
            if rule.categories is not None:
                unseen = ~np.isin(col, rule.categories) & ~nan
                if unseen.any():
                    rows = np.flatnonzero(unseen)
                    problems.append(f"column {name!r} has unseen value(s) {sorted({float(col[i]) for i in rows})[:_MAX_LISTED]}"
                                    f" in {len(rows)} row(s), first row {int(rows[0])}")
        return problems

    def _check_frame(self, x: Input) -> list[str]:
        from loopml.data.validation import validate

        df = x.to_frame()
        known = [c for c in df.columns if c in self._rules]
        anomalies = validate(df[known], self.schema)
        return [a.message for a in anomalies
                if a.severity == "error" and a.kind not in ("missing_column", "row_count")]


def _fmt(v: float | None, unbounded: str) -> str:
    return unbounded if v is None else f"{v:g}"
