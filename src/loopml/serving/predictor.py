"""A registry model prepared for serving: checked input in, predictions out, batched.

Requests are checked once against the signature (:mod:`loopml.serving.payload`),
so the model is called without repeating that work: a scikit-learn model whose
inputs are all numeric gets one float64 array in its training column order
instead of a DataFrame (scikit-learn's own DataFrame checks cost several times
the prediction itself). A model that cannot take an array (a pipeline selecting
columns by name) is found out on its first request and gets DataFrames from then on.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import InvalidInputError, LoopmlError
from loopml.serving.payload import Input, InputSpec

if TYPE_CHECKING:
    from loopml.registry.service import LoadedModel

__all__ = ["ModelPredictError", "ServedModel"]

logger = logging.getLogger(__name__)
_FEATURE_NAMES_WARNING = "X does not have valid feature names"


class ModelPredictError(InvalidInputError):
    """The model raised on input that passed the signature check (HTTP 422)."""

    code = "MODEL_PREDICT_FAILED"


class ServedModel:
    """One model version, loaded, with its input spec and a fast predict path."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.name = loaded.version.name
        self.version = loaded.version.version
        self.uri = loaded.version.uri
        self.signature = loaded.signature
        self.spec = InputSpec.from_signature(loaded.signature)
        self._array_ok = (self.spec is not None and self.spec.numeric and loaded.flavor.name == "sklearn"
                          and callable(getattr(loaded.model, "predict", None)))
        self._lock = threading.Lock()  # models are not all thread-safe; batching keeps this uncontended
        self.proba = callable(getattr(loaded.model, "predict_proba", None))

    def _call(self, x: Input) -> Any:
        model = self.loaded.model
        if x.array is not None and self._array_ok:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=_FEATURE_NAMES_WARNING)
                    return model.predict(x.array)
            except Exception:  # e.g. a pipeline that selects columns by name: use DataFrames from now on
                out = self.loaded.flavor.predict(model, x.to_frame())
                self._array_ok = False
                logger.info("%s takes DataFrames, not arrays; serving it DataFrames", self.uri)
                return out
        return self.loaded.flavor.predict(model, x.to_frame())

    def predict(self, x: Input) -> np.ndarray:
        """Predictions for one checked input (one value, or one row of values, per input row).

        Raises:
            ModelPredictError: the model raised (its message is kept; no traceback reaches the client).
        """
        try:
            with self._lock:
                out = self._call(x)
        except LoopmlError:
            raise
        except Exception as e:
            raise ModelPredictError(f"{self.uri} could not predict on this input: {type(e).__name__}: {e}") from None
        arr = out if isinstance(out, np.ndarray) else np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out)
        if arr.ndim == 0 or len(arr) != x.n:
            raise ModelPredictError(f"{self.uri} returned {arr.shape} predictions for {x.n} rows")
        return arr

    def predict_many(self, parts: list[Input]) -> list[np.ndarray]:
        """One model call for several requests' inputs; returns each request's predictions."""
        if len(parts) == 1:
            return [self.predict(parts[0])]
        if all(p.array is not None for p in parts):
            merged = Input(n=sum(p.n for p in parts), array=np.concatenate([p.array for p in parts
                                                                           if p.array is not None]), columns=parts[0].columns)
        else:
            import pandas as pd

            merged = Input(n=sum(p.n for p in parts), frame=pd.concat([p.to_frame() for p in parts],
                                                                     ignore_index=True), columns=parts[0].columns)
        out = self.predict(merged)
        bounds = np.cumsum([p.n for p in parts])[:-1]
        return list(np.split(out, bounds))

    def __repr__(self) -> str:
        return f"ServedModel({self.uri!r})"
