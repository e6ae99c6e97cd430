"""The reference a deployment is compared against, fitted once per model version and stored.

The reference is the served model version's training dataset (the dataset
version its run logged with ``run.log_dataset("datasets:/...")``), or the one
configured under ``[monitoring.deployments.NAME] reference``. It is fitted once
— bin edges, counts, quantiles and a sorted sample per input column, and the
same for the model's own predictions on that data (the reference for output
drift) — and stored in the artifact store under ``monitoring/references/``.
Later evaluations load the fitted reference, so the raw training data is not
needed at monitoring time (it may even have been deleted).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from loopml.config import Settings
    from loopml.monitoring.drift import Reference
    from loopml.registry.models import ModelVersion

__all__ = ["FittedReference", "get_reference", "training_dataset"]

logger = logging.getLogger(__name__)
_SAMPLE_ROWS_FOR_OUTPUTS = 100_000
_cache: dict[str, FittedReference] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class FittedReference:
    """Inputs and outputs of the reference data, fitted for drift tests."""

    dataset: str  # datasets:/name/version
    inputs: Reference
    outputs: Reference | None
    categorical: tuple[str, ...]
    task: str  # classification | regression


def training_dataset(mv: ModelVersion) -> str | None:
    """The ``datasets:/name/version`` URI the model version was trained on, if its run logged one."""
    found = [d for d in mv.datasets if str(d.get("path", "")).startswith("datasets:/")]
    training = [d for d in found if d.get("context") in ("training", "train", None)]
    chosen = (training or found)
    return str(chosen[0]["path"]) if chosen else None


def _task_of(mv: ModelVersion) -> str:
    sig = mv.signature
    if sig is not None and sig.output_dtype == "float":
        return "regression"
    return "classification"


def get_reference(mv: ModelVersion, settings: Settings, *, dataset: str | None = None, task: str | None = None,
                  seed: int = 0) -> FittedReference:
    """The fitted reference of ``mv`` (fitting and storing it on first use).

    Raises:
        NotFoundError: the model version has no training dataset and none is configured, or the
            dataset version is gone before a reference was stored.
    """
    from loopml.data import get_data
    from loopml.monitoring.drift import Reference, fit_reference
    from loopml.registry import get_registry
    from loopml.storage import get_backend

    uri = dataset or training_dataset(mv)
    if uri is None:
        raise NotFoundError(
            f"{mv.uri} has no reference data: its run logged no datasets:/ version. Log the training data with "
            f"run.log_dataset('datasets:/NAME/VERSION'), or set reference = \"datasets:/...\" under "
            f"[monitoring.deployments.<name>] in loopml.toml", model=mv.uri)
    data = get_data(settings)
    dv = data.resolve(uri)
    pinned = f"datasets:/{dv.name}/{dv.version}"
    key_id = hashlib.sha256(f"{mv.name}/{mv.version}/{pinned}/{task}".encode()).hexdigest()[:16]
    base = f"monitoring/references/{mv.name}/v{mv.version}-{key_id}"
    cache_key = f"{settings.metadata_url}|{settings.artifact_root}|{base}"  # two projects may share names
    with _lock:
        hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    blobs = get_backend(settings).blobs
    if blobs.exists(f"{base}/meta.json"):
        meta = json.loads(blobs.get_bytes(f"{base}/meta.json"))
        outputs = Reference.from_bytes(blobs.get_bytes(f"{base}/outputs.bin")) if meta["outputs"] else None
        fitted = FittedReference(meta["dataset"], Reference.from_bytes(blobs.get_bytes(f"{base}/inputs.bin")),
                                 outputs, tuple(meta["categorical"]), meta["task"])
    else:
        columns = mv.signature.columns if mv.signature is not None else None
        table = data.load_table(dv, columns=columns)
        categorical = tuple(c.name for c in (mv.signature.inputs if mv.signature else [])
                            if c.dtype in ("string", "category", "boolean", "object"))
        inputs = fit_reference(table, categorical=categorical, seed=seed)
        resolved_task = task or _task_of(mv)
        outputs = None
        try:
            import pyarrow as pa

            sample = table.slice(0, _SAMPLE_ROWS_FOR_OUTPUTS).to_pandas()
            preds = get_registry(settings).load(mv).predict(sample)
            out_table = pa.table({"prediction": pa.array(_plain(preds))})
            outputs = fit_reference(out_table, categorical=("prediction",) if resolved_task == "classification"
                                    else (), seed=seed)
        except Exception as e:  # the output reference is optional: output drift is then not measured
            logger.warning("no output reference for %s: %s: %s", mv.uri, type(e).__name__, e)
            outputs = None
        fitted = FittedReference(pinned, inputs, outputs, categorical, resolved_task)
        blobs.put_bytes(f"{base}/inputs.bin", inputs.to_bytes())
        if outputs is not None:
            blobs.put_bytes(f"{base}/outputs.bin", outputs.to_bytes())
        blobs.put_bytes(f"{base}/meta.json", json.dumps({
            "dataset": pinned, "categorical": list(categorical), "task": resolved_task,
            "outputs": outputs is not None, "model": mv.uri}).encode())
    with _lock:
        _cache[cache_key] = fitted
    return fitted


def _plain(values: Any) -> Any:
    import numpy as np

    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError("multi-output predictions have no output reference")
    return arr.astype(str) if arr.dtype.kind in "biuO" else arr.astype(float)
