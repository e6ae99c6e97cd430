"""The scikit-learn flavor: estimators and pipelines, stored with cloudpickle."""

from __future__ import annotations

from typing import Any

import cloudpickle

from loopml.registry.flavors import base_requirements

__all__ = ["FLAVOR", "SklearnFlavor"]


class SklearnFlavor:
    name = "sklearn"
    file_name = "model.pkl"

    def matches(self, model: Any) -> bool:
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator) and callable(getattr(model, "predict", None))

    def dump(self, model: Any) -> bytes:
        data: bytes = cloudpickle.dumps(model)
        return data

    def load(self, data: bytes) -> Any:
        return cloudpickle.loads(data)

    def predict(self, model: Any, df: Any) -> Any:
        return model.predict(df)

    def requirements(self) -> dict[str, str]:
        return base_requirements("scikit-learn", "scipy")


FLAVOR = SklearnFlavor()
