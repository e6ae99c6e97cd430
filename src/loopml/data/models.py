"""Typed entities of the data layer: dataset versions, profiles, schema anomalies,
skew and PII findings. Profiles serialise to JSON with :meth:`Profile.to_dict`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "Anomaly",
    "ColumnInfo",
    "ColumnProfile",
    "DatasetVersion",
    "Histogram",
    "PiiFinding",
    "Profile",
    "SkewFinding",
]

#: coarse kind of a column, from its Arrow type
Kind = Literal["numeric", "boolean", "categorical", "string", "datetime", "other"]


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # Arrow type, e.g. "double", "int64", "string", "dictionary<values=string, indices=int32>"


@dataclass(frozen=True)
class DatasetVersion:
    """An immutable, numbered snapshot of a dataset (a parquet file in the artifact store).

    Attributes:
        sha256: content hash of the snapshot; registering identical content returns the same version.
        source: where the data came from (a path, a query, free text), as given at registration.
    """

    name: str
    version: int
    sha256: str
    artifact_key: str
    num_rows: int
    num_bytes: int
    columns: list[ColumnInfo]
    source: str | None
    description: str | None
    created_at: int
    created_by: str | None
    profile_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"datasets:/{self.name}/{self.version}"


@dataclass
class Histogram:
    """Counts between stored bin edges (``len(edges) == len(counts) + 1``)."""

    edges: list[float]
    counts: list[int]


@dataclass
class ColumnProfile:
    """Statistics of one column.

    Numeric columns fill mean/std/min/max/quantiles/histogram; categorical and
    string columns fill ``top`` (most frequent values with counts). ``distinct``
    may be approximate for large data (``distinct_approx`` says so).
    """

    name: str
    type: str
    kind: Kind
    count: int  # non-null values
    nulls: int
    distinct: int | None = None
    distinct_approx: bool = False
    mean: float | None = None
    std: float | None = None
    min: Any = None
    max: Any = None
    quantiles: dict[str, float] = field(default_factory=dict)  # "0.5" -> value
    histogram: Histogram | None = None
    top: list[tuple[Any, int]] = field(default_factory=list)
    pii: list[str] = field(default_factory=list)  # PII kinds found, see loopml.data.pii

    @property
    def null_rate(self) -> float:
        total = self.count + self.nulls
        return self.nulls / total if total else 0.0


@dataclass
class Profile:
    """Per-column statistics of a table, the reference monitoring compares against."""

    num_rows: int
    columns: dict[str, ColumnProfile]
    correlations: dict[str, dict[str, float]] = field(default_factory=dict)  # numeric columns, Pearson
    sample_size: int | None = None  # rows behind sample-based statistics (quantiles, histograms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        cols = {}
        for name, c in data["columns"].items():
            c = dict(c)
            h = c.get("histogram")
            c["histogram"] = Histogram(**h) if h else None
            c["top"] = [tuple(t) for t in c.get("top", [])]
            cols[name] = ColumnProfile(**c)
        return cls(
            num_rows=data["num_rows"],
            columns=cols,
            correlations=data.get("correlations", {}),
            sample_size=data.get("sample_size"),
        )


Severity = Literal["error", "warning"]
AnomalyKind = Literal[
    "missing_column",
    "unexpected_column",
    "type_mismatch",
    "out_of_range",
    "unseen_category",
    "null_rate",
    "row_count",
    "custom_check",
]


@dataclass(frozen=True)
class Anomaly:
    """One way a batch breaks its schema."""

    column: str | None  # None for table-level anomalies (row count)
    kind: AnomalyKind
    severity: Severity
    rows: int  # how many rows are affected (0 when not row-based)
    message: str
    examples: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkewFinding:
    """How far one column's distribution moved between two profiles."""

    column: str
    kind: Kind
    metric: str  # "psi", "jensen_shannon", ...
    value: float
    threshold: float
    drifted: bool
    detail: str = ""


@dataclass(frozen=True)
class PiiFinding:
    """A column that looks like it holds personal data."""

    column: str
    kind: str  # email | phone | payment_card | ip_address | name_like
    match_rate: float  # share of sampled non-null values that matched (1.0 for name_like)
    examples: list[str] = field(default_factory=list)  # masked
    reason: str = ""
