"""Step outputs as bytes: serialised, content-hashed, stored inline or in the artifact store.

DataFrames and Arrow tables are stored as parquet, everything else with
cloudpickle. Outputs up to :data:`INLINE_BYTES` are kept inline in the step's
record (no file write, which keeps small steps cheap); larger ones go to
``pipelines/outputs/<sha256>`` in the artifact store, stored once per content.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import cloudpickle

from loopml.errors import InvalidInputError
from loopml.storage.base import BlobStore

__all__ = ["INLINE_BYTES", "OutputRef", "dump", "exists", "load", "value_hash"]

INLINE_BYTES = 4096

OutputRef = dict[str, Any]  # {"sha256", "size", "format", "inline" | "key", "uri"?}


def _serialise(value: Any, step: str, name: str) -> tuple[bytes, str]:
    try:
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            buf = io.BytesIO()
            value.to_parquet(buf, index=True)
            return buf.getvalue(), "pandas-parquet"
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    try:
        return cloudpickle.dumps(value), "pickle"
    except Exception as e:
        raise InvalidInputError(
            f"step {step!r}: output {name!r} of type {type(value).__name__} cannot be serialised ({type(e).__name__}: {e}); "
            "return plain data (numbers, arrays, DataFrames, fitted models) instead of open files, locks or connections",
            step=step, output=name,
        ) from None


def value_hash(value: Any) -> str:
    """Content hash of a parameter value (JSON when possible, else its pickle)."""
    import json

    try:
        data = json.dumps(value, sort_keys=True, default=repr).encode()
    except (TypeError, ValueError):
        data = cloudpickle.dumps(value)
    return hashlib.sha256(data).hexdigest()


def dump(value: Any, blobs: BlobStore, *, step: str, name: str) -> OutputRef:
    """Serialise ``value`` and store it; returns its reference (with its sha256)."""
    data, fmt = _serialise(value, step, name)
    digest = hashlib.sha256(data).hexdigest()
    ref: OutputRef = {"sha256": digest, "size": len(data), "format": fmt}
    uri = getattr(value, "uri", None)
    if isinstance(uri, str) and (uri.startswith("models:/") or uri.startswith("datasets:/")):
        ref["uri"] = uri  # lineage: the step produced this registered version
    if len(data) <= INLINE_BYTES:
        ref["inline"] = base64.b64encode(data).decode()
    else:
        key = f"pipelines/outputs/{digest[:2]}/{digest}"
        if not blobs.exists(key):
            blobs.put_bytes(key, data)
        ref["key"] = key
    return ref


def exists(ref: OutputRef, blobs: BlobStore) -> bool:
    """True when the output's bytes are still available."""
    return "inline" in ref or blobs.exists(ref["key"])


def load(ref: OutputRef, blobs: BlobStore) -> Any:
    """The value behind ``ref`` (its sha256 is verified)."""
    if "inline" in ref:
        data = base64.b64decode(ref["inline"])
    else:
        data = blobs.get_bytes(ref["key"], sha256=ref["sha256"])
    if ref["format"] == "pandas-parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    return cloudpickle.loads(data)
