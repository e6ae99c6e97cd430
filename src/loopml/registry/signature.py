"""Model signatures: the columns and types a model takes and what it returns.

A signature is inferred from an input example, stored with the model version,
and checked against incoming data. The check reports every mismatch at once
(missing columns, wrong types) rather than the first one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInputError, SignatureMismatchError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ColumnSpec", "Signature", "dtype_kind", "infer_signature", "to_frame"]

#: which stored kinds accept which incoming kinds (safe conversions only)
_ACCEPTS: dict[str, set[str]] = {
    "float": {"float", "integer", "boolean"},
    "integer": {"integer", "boolean"},
    "boolean": {"boolean"},
    "string": {"string", "category"},
    "category": {"category", "string"},
    "datetime": {"datetime"},
    "object": {"object", "string", "category", "integer", "float", "boolean", "datetime"},
}


def dtype_kind(dtype: Any) -> str:
    """Coarse kind of a pandas/numpy dtype: float, integer, boolean, string, category, datetime or object."""
    import pandas as pd
    from pandas.api import types as pt

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pt.is_bool_dtype(dtype):
        return "boolean"
    if pt.is_integer_dtype(dtype):
        return "integer"
    if pt.is_float_dtype(dtype):
        return "float"
    if pt.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pt.is_string_dtype(dtype):
        return "string"
    return "object"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    dtype: str  # kind, see dtype_kind
    nullable: bool = True


@dataclass(frozen=True)
class Signature:
    """Input columns and output shape of a model.

    Attributes:
        inputs: expected input columns, in order.
        output_dtype: kind of the predictions (float, integer, string, ...).
        output_shape: shape of the predictions without the row axis (``[]`` for one value per row).
    """

    inputs: list[ColumnSpec]
    output_dtype: str | None = None
    output_shape: list[int] = field(default_factory=list)

    @property
    def outputs(self) -> dict[str, Any]:
        return {"dtype": self.output_dtype, "shape": self.output_shape}

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [{"name": c.name, "dtype": c.dtype, "nullable": c.nullable} for c in self.inputs],
            "outputs": self.outputs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        outputs = data.get("outputs") or {}
        return cls(
            inputs=[ColumnSpec(c["name"], c["dtype"], c.get("nullable", True)) for c in data.get("inputs", [])],
            output_dtype=outputs.get("dtype"),
            output_shape=list(outputs.get("shape") or []),
        )

    def problems(self, df: pd.DataFrame) -> list[str]:
        """Every way ``df`` fails this signature (empty when it fits)."""
        found: list[str] = []
        present = {str(c): df[c].dtype for c in df.columns}
        for col in self.inputs:
            if col.name not in present:
                found.append(f"missing column {col.name!r} (expected {col.dtype})")
                continue
            kind = dtype_kind(present[col.name])
            if kind not in _ACCEPTS.get(col.dtype, {col.dtype}):
                found.append(f"column {col.name!r} has type {kind} ({present[col.name]}), expected {col.dtype}")
            elif not col.nullable and df[col.name].isna().any():
                found.append(f"column {col.name!r} has {int(df[col.name].isna().sum())} missing values but is not nullable")
        return found

    def check(self, df: pd.DataFrame, *, model: str = "model") -> pd.DataFrame:
        """Validate ``df`` and return it with exactly the signature's columns, in order.

        Raises:
            SignatureMismatchError: listing every missing column and type mismatch.
        """
        found = self.problems(df)
        if found:
            expected = ", ".join(f"{c.name}:{c.dtype}" for c in self.inputs)
            raise SignatureMismatchError(
                f"input does not match the signature of {model}: " + "; ".join(found) + f". Expected columns: {expected}",
                problems=found,
            )
        return df[self.columns] if list(map(str, df.columns)) != self.columns else df


def to_frame(data: Any) -> pd.DataFrame:
    """Coerce model input (DataFrame, dict of columns, list of records, 2-D array) to a DataFrame.

    Raises:
        InvalidInputError: the input cannot be read as a table.
    """
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    try:
        if isinstance(data, pd.Series):
            return data.to_frame().T if data.name is None else data.to_frame()
        if isinstance(data, Mapping):
            if all(not isinstance(v, Sequence | np.ndarray) or isinstance(v, str) for v in data.values()):
                return pd.DataFrame([data])
            return pd.DataFrame(dict(data))
        if isinstance(data, np.ndarray):
            if data.ndim == 1:
                data = data.reshape(1, -1)
            if data.ndim != 2:
                raise InvalidInputError(f"model input array must be 1-D or 2-D, got shape {data.shape}")
            return pd.DataFrame(data, columns=[str(i) for i in range(data.shape[1])])
        if isinstance(data, Sequence) and not isinstance(data, str | bytes):
            return pd.DataFrame(list(data))
    except ValueError as e:
        raise InvalidInputError(f"model input cannot be read as a table: {e}") from None
    raise InvalidInputError(
        f"model input of type {type(data).__name__} is not supported; pass a DataFrame, a dict, a list of records or a 2-D array"
    )


def infer_signature(input_example: Any, output: Any = None) -> Signature:
    """Infer a signature from an input example and, optionally, the model's output on it.

    A column is nullable when the example holds a missing value in it; otherwise a
    missing value in that column is refused when the model is called or served.
    """
    import numpy as np

    df = to_frame(input_example)
    # like MLflow: a column is optional (nullable) when the example has a missing value in it
    inputs = [ColumnSpec(str(c), dtype_kind(t), nullable=bool(df[c].isna().any())) for c, t in df.dtypes.items()]
    out_dtype = None
    out_shape: list[int] = []
    if output is not None:
        arr = np.asarray(output)
        out_dtype = dtype_kind(arr.dtype)
        out_shape = list(arr.shape[1:])
    return Signature(inputs, out_dtype, out_shape)
