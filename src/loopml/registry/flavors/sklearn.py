"""The scikit-learn flavor: estimators and pipelines, stored with cloudpickle."""

from __future__ import annotations

from typing import Any

from loopml.registry.flavors import base_requirements
from loopml.registry.flavors.python import PythonFlavor

__all__ = ["FLAVOR", "SklearnFlavor"]


class SklearnFlavor(PythonFlavor):
    """Stored and called like the generic Python flavor; recorded with scikit-learn's requirements."""

    name = "sklearn"

    def matches(self, model: Any) -> bool:
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator) and callable(getattr(model, "predict", None))

    def requirements(self) -> dict[str, str]:
        return base_requirements("scikit-learn", "scipy")


FLAVOR = SklearnFlavor()
