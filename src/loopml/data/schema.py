"""Data schemas: what a batch must look like, inferred from a profile, kept as YAML.

A :class:`Schema` lists the expected columns (type, nullability, numeric range,
allowed categories), the expected number of rows per batch, and custom checks
written in Python. :func:`infer_schema` builds one from a
:class:`~loopml.data.models.Profile` of known-good data;
:func:`loopml.data.validation.validate` checks a batch against it.

The YAML file is meant to be read and edited by a person. Custom checks are
Python functions and do not live in the file: load the file, then add them::

    import pyarrow.compute as pc
    from loopml.data.schema import Schema

    schema = Schema.load("schema.yaml")

    @schema.check("positive_weight", column="weight")
    def positive_weight(t):
        return pc.greater(t["weight"], 0)  # True for good rows

    # or: schema.add_check("positive_weight", lambda t: pc.greater(t["weight"], 0), column="weight")
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, get_args

import yaml

from loopml.data.models import AnomalyKind, Kind, Profile, Severity
from loopml.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "COLUMN_SEVERITY_KINDS",
    "Check",
    "CheckFn",
    "ColumnSchema",
    "Schema",
    "infer_schema",
    "type_family",
]

#: format version written to (and required in) schema files
SCHEMA_VERSION = 1

#: a custom check: takes the batch as an Arrow table, returns a boolean mask of GOOD
#: rows (pa.Array / pa.ChunkedArray / numpy array, nulls count as good) or one bool
CheckFn = Callable[["pa.Table"], Any]
_F = TypeVar("_F", bound=CheckFn)

#: anomaly kinds whose severity a column may override (``severity:`` in YAML)
COLUMN_SEVERITY_KINDS: tuple[AnomalyKind, ...] = (
    "missing_column",
    "type_mismatch",
    "out_of_range",
    "unseen_category",
    "null_rate",
)
_KINDS: tuple[str, ...] = get_args(Kind)
_SEVERITIES: tuple[str, ...] = get_args(Severity)

# -- type families ---------------------------------------------------------------
# A type string (str() of an Arrow type) maps to a coarse family; validation accepts
# a batch column whose family the schema column's family accepts (see validate.py).

Family = Literal["float", "int", "bool", "string", "timestamp", "timestamp_tz", "date", "null", "other"]

_FLOAT_TYPES = {"halffloat", "float", "double", "float16", "float32", "float64"}
_INT_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_STRING_TYPES = {"string", "utf8", "large_string", "large_utf8", "string_view"}
_DICT_PREFIX = "dictionary<values="


def type_family(type_str: str) -> Family:
    """The family of an Arrow type string, e.g. ``"double"`` -> ``"float"``.

    Dictionary types take the family of their values
    (``dictionary<values=string, ...>`` -> ``"string"``); unknown types are ``"other"``.
    """
    t = type_str.strip()
    if t.startswith(_DICT_PREFIX):
        return type_family(t[len(_DICT_PREFIX):].split(",", 1)[0])
    if t in _FLOAT_TYPES:
        return "float"
    if t in _INT_TYPES:
        return "int"
    if t in ("bool", "boolean"):
        return "bool"
    if t in _STRING_TYPES:
        return "string"
    if t.startswith("timestamp"):
        return "timestamp_tz" if "tz=" in t else "timestamp"
    if t.startswith(("date32", "date64")):
        return "date"
    if t == "null":
        return "null"
    return "other"


# -- entities ----------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (YAML and set membership want plain values)."""
    item = getattr(v, "item", None)
    if item is not None and type(v).__module__ == "numpy":
        return item()
    return v


@dataclass(frozen=True)
class ColumnSchema:
    """What one column must look like. Immutable: change it with :func:`dataclasses.replace`.

    Attributes:
        name: the column name.
        type: the Arrow type as a string (``str(pa_type)``), e.g. ``"double"``, ``"int64"``,
            ``"large_string"``, ``"bool"``, ``"timestamp[us]"``. Compatible types are
            accepted, see :func:`loopml.data.validation.validate`.
        kind: coarse kind (numeric | boolean | categorical | string | datetime | other).
        nullable: False makes any missing value (null, NaN) an error.
        max_null_rate: share of missing values (0..1) above which a warning is raised;
            None for no limit. Only meaningful when ``nullable``.
        min, max: inclusive range of numeric values; None for unbounded. Numeric types only.
        categories: the allowed values (strings, integers or booleans); a value outside is
            an ``unseen_category`` error. None allows any value. Integer, boolean and
            string (also dictionary) types only.
        severity: per-kind severity overrides for this column's anomalies, e.g.
            ``{"unseen_category": "warning"}``; keys from :data:`COLUMN_SEVERITY_KINDS`.

    Raises:
        ConfigError: a field has the wrong type, ``min > max``, a rate outside 0..1, or
            range/categories on a type they do not apply to.
    """

    name: str
    type: str
    kind: Kind
    nullable: bool = True
    max_null_rate: float | None = None
    min: float | None = None
    max: float | None = None
    categories: Sequence[str | int | bool] | None = None
    severity: Mapping[AnomalyKind, Severity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def fail(fld: str, what: str) -> ConfigError:
            return ConfigError(f"column {self.name!r}: {fld} {what}", column=self.name, field=fld,
                               problem=f"{fld} {what}")

        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"column name {self.name!r} must be a non-empty string", field="name")
        if not isinstance(self.type, str) or not self.type.strip():
            raise fail("type", f"must be an Arrow type string such as 'double' or 'large_string', got {self.type!r}")
        if self.kind not in _KINDS:
            raise fail("kind", f"must be one of {', '.join(_KINDS)}, got {self.kind!r}")
        if not isinstance(self.nullable, bool):
            raise fail("nullable", f"must be true or false, got {self.nullable!r}")
        family = type_family(self.type)
        if self.max_null_rate is not None:
            if not _is_number(self.max_null_rate) or not 0.0 <= float(self.max_null_rate) <= 1.0:
                raise fail("max_null_rate", f"must be a number between 0 and 1 (or null), got {self.max_null_rate!r}")
            object.__setattr__(self, "max_null_rate", float(self.max_null_rate))
        for bound in ("min", "max"):
            value = _plain(getattr(self, bound))
            if value is None:
                continue
            if not _is_number(value) or math.isnan(value):
                raise fail(bound, f"must be a number (or null), got {value!r}")
            if family not in ("float", "int"):
                raise fail(bound, f"applies to numeric columns only, not to type {self.type!r}; remove it")
            object.__setattr__(self, bound, float(value))
        if self.min is not None and self.max is not None and self.min > self.max:
            raise fail("min", f"({self.min}) is greater than max ({self.max}); swap them or fix one")
        if self.categories is not None:
            self._check_categories(family, fail)
        if not isinstance(self.severity, Mapping):
            raise fail("severity", f"must be a mapping of anomaly kind to error|warning, got {self.severity!r}")
        for k, v in self.severity.items():
            if k not in COLUMN_SEVERITY_KINDS:
                raise fail("severity", f"has unknown anomaly kind {k!r}; use one of {', '.join(COLUMN_SEVERITY_KINDS)}")
            if v not in _SEVERITIES:
                raise fail("severity", f"for {k} must be 'error' or 'warning', got {v!r}")
        object.__setattr__(self, "severity", dict(self.severity))

    def _check_categories(self, family: str, fail: Callable[[str, str], ConfigError]) -> None:
        cats = self.categories
        if isinstance(cats, str | bytes) or not isinstance(cats, Iterable):
            raise fail("categories", f"must be a list of values (or null), got {cats!r}")
        values = tuple(_plain(c) for c in cats)
        want: tuple[type, ...]
        if family == "string":
            want, label = (str,), "strings"
        elif family == "int":
            want, label = (int,), "integers"
        elif family == "bool":
            want, label = (bool,), "true/false"
        else:
            raise fail("categories", f"apply to string, integer and boolean columns only, not to type {self.type!r}")
        for c in values:
            # bool is an int subclass: keep booleans out of integer domains and vice versa
            if not isinstance(c, want) or (family == "int" and isinstance(c, bool)):
                raise fail("categories", f"must all be {label} for type {self.type!r}, got {c!r}")
        object.__setattr__(self, "categories", values)

    def severity_of(self, kind: AnomalyKind, default: Severity) -> Severity:
        """The severity of a ``kind`` anomaly on this column (override or ``default``)."""
        return self.severity.get(kind, default)


@dataclass(frozen=True)
class Check:
    """A custom check; see :meth:`Schema.add_check`."""

    name: str
    fn: CheckFn
    column: str | None = None
    severity: Severity = "error"


@dataclass
class Schema:
    """What a batch must look like: columns, expected rows per batch, custom checks.

    Attributes:
        columns: the expected columns by name (in this order anomalies are reported).
        row_count: expected (min, max) number of rows of a batch, inclusive; None for no bound.
            A batch outside the range gives a ``row_count`` warning.
        allow_extra_columns: False reports columns that are not in the schema as
            ``unexpected_column`` warnings; True ignores them.
        checks: custom checks (Python only, never written to YAML).

    Raises:
        ConfigError: a ``columns`` key differs from its column's name, or ``row_count`` is
            not two non-negative integers (or None) with min <= max.
    """

    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    row_count: tuple[int | None, int | None] = (None, None)
    allow_extra_columns: bool = False
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key, col in self.columns.items():
            if not isinstance(col, ColumnSchema):
                raise ConfigError(f"schema column {key!r} must be a ColumnSchema, got {type(col).__name__}")
            if key != col.name:
                raise ConfigError(f"schema column key {key!r} differs from the column's name {col.name!r}; make them equal")
        rc = self.row_count
        if not isinstance(rc, tuple | list) or len(rc) != 2:
            raise ConfigError(f"row_count must be a (min, max) pair, got {rc!r}", field="row_count")
        lo, hi = (_plain(v) for v in rc)
        for label, v in (("min", lo), ("max", hi)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"row_count {label} must be a non-negative integer (or null), got {v!r}",
                                  field=f"row_count.{label}")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"row_count min ({lo}) is greater than max ({hi}); swap them or fix one",
                              field="row_count.min")
        self.row_count = (lo, hi)
        if not isinstance(self.allow_extra_columns, bool):
            raise ConfigError(f"allow_extra_columns must be true or false, got {self.allow_extra_columns!r}",
                              field="allow_extra_columns")

    # -- custom checks ---------------------------------------------------------

    def add_check(self, name: str, fn: CheckFn, *, column: str | None = None, severity: Severity = "error") -> None:
        """Add a custom check, run by :func:`~loopml.data.validation.validate` after the column checks.

        Adding a check under an existing name replaces it (re-running a notebook cell is safe).

        Args:
            name: identifies the check in anomalies.
            fn: takes the batch as a ``pa.Table`` and returns a boolean mask of GOOD rows
                (``pa.Array``, ``pa.ChunkedArray`` or numpy array, one value per row; nulls
                count as good) or a single bool for the whole batch. A check that raises
                is reported as a ``custom_check`` anomaly, never propagated.
            column: the column the check is about: anomalies name it and show its failing
                values as examples (otherwise failing row indices).
            severity: ``"error"`` or ``"warning"``.

        Raises:
            InvalidInputError: empty name, ``fn`` not callable, or an unknown severity.
        """
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"check name must be a non-empty string, got {name!r}")
        if not callable(fn):
            raise InvalidInputError(f"check {name!r}: fn must be callable (pa.Table -> mask or bool), got {fn!r}")
        if severity not in _SEVERITIES:
            raise InvalidInputError(f"check {name!r}: severity must be 'error' or 'warning', got {severity!r}")
        if column is not None and not isinstance(column, str):
            raise InvalidInputError(f"check {name!r}: column must be a column name or None, got {column!r}")
        self.checks = [c for c in self.checks if c.name != name]
        self.checks.append(Check(name, fn, column, severity))

    def check(self, name: str | None = None, *, column: str | None = None,
              severity: Severity = "error") -> Callable[[_F], _F]:
        """Decorator form of :meth:`add_check`; ``name`` defaults to the function's name.

        Example::

            @schema.check("positive_weight", column="weight")
            def positive_weight(t):
                return pc.greater(t["weight"], 0)
        """

        def register(fn: _F) -> _F:
            self.add_check(name or str(getattr(fn, "__name__", "check")), fn, column=column, severity=severity)
            return fn

        return register

    def remove_check(self, name: str) -> None:
        """Remove the custom check ``name`` (no error if there is none)."""
        self.checks = [c for c in self.checks if c.name != name]

    # -- YAML --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The schema as plain data, in the YAML layout (custom checks are left out)."""
        lo, hi = self.row_count
        return {
            "version": SCHEMA_VERSION,
            "allow_extra_columns": self.allow_extra_columns,
            "row_count": None if lo is None and hi is None else {"min": lo, "max": hi},
            "columns": {name: _column_to_dict(c) for name, c in self.columns.items()},
        }

    def to_yaml(self) -> str:
        """The schema as commented YAML: a header explaining the fields, then one block per column."""
        d = self.to_dict()
        columns = d.pop("columns")
        parts = [_HEADER]
        if self.checks:
            parts.append("# Custom checks defined in Python when this file was written (add them again after loading):\n")
            for c in self.checks:
                about = f"column {c.column!r}, " if c.column else ""
                parts.append(f"#   {c.name} ({about}severity {c.severity})\n")
            parts.append("\n")
        parts.append(_dump(d))
        if not columns:
            parts.append("columns: {}\n")
        else:
            parts.append("columns:\n")
            for name, block in columns.items():
                text = _dump({name: block})
                parts.append("\n" + "".join("  " + line for line in text.splitlines(keepends=True)))
        return "".join(parts)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_yaml` to ``path`` (parent folders are created); returns the absolute path."""
        p = Path(path).expanduser().resolve()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_yaml(), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Schema:
        """Read a schema file written by :meth:`save` (or by hand).

        Raises:
            ConfigError: the file does not exist, is not valid YAML, or a field is wrong; the
                message names the file, the line and the field.
        """
        p = Path(path).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"schema file {str(p)!r} does not exist; write one with infer_schema(profile).save(path)",
                path=str(p),
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read schema file {str(p)!r}: {e}", path=str(p)) from None
        return cls.from_yaml(text, source=str(p))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<schema>") -> Schema:
        """Parse a schema from YAML text; ``source`` names it in error messages.

        Raises:
            ConfigError: invalid YAML or a wrong field, naming ``source``, the line and the field.
        """
        return _parse(text, source)


# -- inference -------------------------------------------------------------------


def infer_schema(profile: Profile, *, category_limit: int = 50, range_margin: float = 0.0,
                 row_count_slack: float | None = 0.5) -> Schema:
    """A schema that the profiled data satisfies, to validate later batches against.

    For each profiled column:

    * ``type`` and ``kind`` as profiled;
    * ``nullable`` is True iff the profile saw missing values; then ``max_null_rate`` is
      ``max(1.5 * observed, observed + 0.01)`` (capped at 1): a warning baseline;
    * numeric columns (not boolean) get ``min``/``max`` from the profile, widened on each
      side by ``range_margin`` times the observed span (0.0: exactly the observed range);
    * boolean, categorical and string columns get ``categories`` when the profile's ``top``
      lists every value (its counts add up to the non-null count) and there are at most
      ``category_limit`` of them; otherwise any value is allowed. ``profile_table`` keeps
      ``top_k=20`` values by default: profile with a larger ``top_k`` for larger domains.

    The expected rows per batch are ``floor(num_rows * (1 - row_count_slack))`` to
    ``ceil(num_rows * (1 + row_count_slack))``; ``row_count_slack=None`` sets no bound.
    Review the result (``schema.save(path)`` and read the file): inference cannot know
    which observed limits are real rules.

    Args:
        profile: statistics of known-good data.
        category_limit: the largest domain kept as ``categories``.
        range_margin: relative widening of numeric ranges (0.1 = 10% of the span per side).
        row_count_slack: relative tolerance on the number of rows (default 0.5 = +-50%).

    Returns:
        The inferred schema (no custom checks, ``allow_extra_columns=False``).

    Raises:
        InvalidInputError: a negative limit, margin or slack.
    """
    if category_limit < 0:
        raise InvalidInputError(f"category_limit must be >= 0, got {category_limit}")
    if range_margin < 0:
        raise InvalidInputError(f"range_margin must be >= 0, got {range_margin}")
    if row_count_slack is not None and row_count_slack < 0:
        raise InvalidInputError(f"row_count_slack must be >= 0 (or None for no bound), got {row_count_slack}")
    columns: dict[str, ColumnSchema] = {}
    for name, cp in profile.columns.items():
        family = type_family(cp.type)
        nullable = cp.nulls > 0
        rate = cp.null_rate
        max_null_rate = min(1.0, max(rate * 1.5, rate + 0.01)) if nullable else None
        lo = hi = None
        if family in ("float", "int") and cp.kind == "numeric" and cp.min is not None and cp.max is not None:
            lo, hi = float(_plain(cp.min)), float(_plain(cp.max))
            if math.isnan(lo) or math.isnan(hi):
                lo = hi = None
            elif range_margin:
                span = hi - lo
                lo, hi = lo - range_margin * span, hi + range_margin * span
        categories = None
        if cp.kind in ("categorical", "string", "boolean") and family in ("string", "int", "bool") and cp.top:
            values = [_plain(v) for v, _ in cp.top]
            complete = sum(int(n) for _, n in cp.top) == cp.count or (
                cp.distinct is not None and not cp.distinct_approx and cp.distinct == len(values))
            if complete and len(values) <= category_limit:
                categories = tuple(_sorted(values))
        columns[name] = ColumnSchema(
            name=name, type=cp.type, kind=cp.kind, nullable=nullable, max_null_rate=max_null_rate,
            min=lo, max=hi, categories=categories,
        )
    n = profile.num_rows
    row_count: tuple[int | None, int | None] = (None, None)
    if row_count_slack is not None:
        row_count = (max(0, math.floor(n * (1 - row_count_slack))), math.ceil(n * (1 + row_count_slack)))
    return Schema(columns=columns, row_count=row_count)


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return values


# -- YAML writing ------------------------------------------------------------------

_HEADER = """\
# loopml data schema: what each batch must look like. Edit freely; loopml reads it with
# Schema.load(path) and checks batches with loopml.data.validation.validate(batch, schema).
#
# version               format version of this file (1)
# allow_extra_columns   false: columns not listed below give an unexpected_column warning
# row_count             expected rows per batch, inclusive {min, max}; null = no bound (warning)
# columns               one block per column, in report order:
#   type                Arrow type: double, int64, large_string, bool, timestamp[us], ...
#                       (int columns accept integral floats; float columns accept ints)
#   kind                numeric | boolean | categorical | string | datetime | other
#   nullable            false: any missing value (null or NaN) is an error
#   max_null_rate       share of missing values (0..1) above which a warning is raised; null = no limit
#   min, max            inclusive range of numeric values; null = unbounded
#   categories          the allowed values; any other value is an unseen_category error; null = any
#   severity            optional per-anomaly overrides, e.g. {unseen_category: warning}
#
# Custom checks are Python functions, not part of this file:
#   schema = Schema.load("schema.yaml")
#   schema.add_check("positive_weight", lambda t: pc.greater(t["weight"], 0), column="weight")

"""


# block mappings, flow lists (``categories: [a, b, c]``); a subclass so the global SafeDumper stays untouched
_Dumper: Any = type("_Dumper", (yaml.SafeDumper,), {})


def _represent_list(dumper: yaml.SafeDumper, data: Any) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", list(data), flow_style=True)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def _dump(data: Any) -> str:
    return str(yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=100))


def _column_to_dict(c: ColumnSchema) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": c.type,
        "kind": c.kind,
        "nullable": c.nullable,
        "max_null_rate": c.max_null_rate,
        "min": c.min,
        "max": c.max,
        "categories": list(c.categories) if c.categories is not None else None,
    }
    if c.severity:
        d["severity"] = dict(c.severity)
    return d


# -- YAML reading ------------------------------------------------------------------

_TOP_KEYS = ("version", "allow_extra_columns", "row_count", "columns")
_COLUMN_KEYS = ("type", "kind", "nullable", "max_null_rate", "min", "max", "categories", "severity")
_ROW_COUNT_KEYS = ("min", "max")


class _Lines:
    """1-based line numbers of mapping keys by path, from the composed YAML node tree."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = (*path, str(key.value))
                self.lines[k] = key.start_mark.line + 1
                self._walk(value, k)

    def line(self, *path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def _parse(text: str, source: str) -> Schema:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix the syntax", path=source,
                          line=mark.line + 1 if mark is not None else None) from None
    lines = _Lines(node)

    def fail(path: tuple[str, ...], message: str) -> ConfigError:
        line = lines.line(*path)
        where = f"{source}:{line}" if line is not None else source
        dotted = ".".join(path) if path else "document"
        return ConfigError(f"{where}: {dotted}: {message}", path=source, line=line, field=dotted)

    if not isinstance(data, dict):
        raise fail((), f"a schema must be a mapping with keys {', '.join(_TOP_KEYS)}, got {type(data).__name__}")
    _unknown(data, _TOP_KEYS, (), fail)
    version = data.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise fail(("version",), f"unsupported schema format version {version!r}; this loopml reads version {SCHEMA_VERSION}")
    if "columns" not in data:
        raise fail((), "missing 'columns' (a mapping of column name to its block)")
    cols_raw = data["columns"]
    if cols_raw is None:
        cols_raw = {}
    if not isinstance(cols_raw, dict):
        raise fail(("columns",), f"must be a mapping of column name to its block, got {type(cols_raw).__name__}")

    columns: dict[str, ColumnSchema] = {}
    for key, block in cols_raw.items():
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise fail(("columns", str(key)), f"column name {key!r} must be a string; quote it")
        name = str(key)
        path = ("columns", name)
        if not isinstance(block, dict):
            raise fail(path, f"must be a mapping with keys {', '.join(_COLUMN_KEYS)}, got {type(block).__name__}")
        _unknown(block, _COLUMN_KEYS, path, fail)
        for required in ("type", "kind"):
            if required not in block:
                raise fail(path, f"missing {required!r}")
        severity = block.get("severity") or {}
        try:
            columns[name] = ColumnSchema(
                name=name,
                type=block["type"],
                kind=block["kind"],
                nullable=block.get("nullable", True),
                max_null_rate=block.get("max_null_rate"),
                min=block.get("min"),
                max=block.get("max"),
                categories=block.get("categories"),
                severity=severity,
            )
        except ConfigError as e:
            fld = str(e.details.get("field", ""))
            raise fail((*path, fld) if fld else path, str(e.details.get("problem", e.message))) from None

    rc = data.get("row_count")
    row_count: tuple[Any, Any] = (None, None)
    if rc is not None:
        if not isinstance(rc, dict):
            raise fail(("row_count",), f"must be a mapping {{min: ..., max: ...}} (or null), got {rc!r}")
        _unknown(rc, _ROW_COUNT_KEYS, ("row_count",), fail)
        row_count = (rc.get("min"), rc.get("max"))
    try:
        return Schema(columns=columns, row_count=cast(tuple[int | None, int | None], row_count),
                      allow_extra_columns=data.get("allow_extra_columns", False))
    except ConfigError as e:
        fld = str(e.details.get("field", ""))
        raise fail(tuple(fld.split(".")) if fld else (), e.message) from None


def _unknown(d: dict[Any, Any], known: tuple[str, ...], path: tuple[str, ...],
             fail: Callable[[tuple[str, ...], str], ConfigError]) -> None:
    for k in d:
        if k not in known:
            raise fail((*path, str(k)), f"unknown field {k!r}; known fields: {', '.join(known)}")
