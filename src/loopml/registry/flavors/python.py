"""The generic Python flavor: any object with ``predict(DataFrame)``, stored with cloudpickle."""

from __future__ import annotations

from typing import Any

import cloudpickle

from loopml.registry.flavors import base_requirements

__all__ = ["FLAVOR", "PythonFlavor"]


class PythonFlavor:
    name = "python"
    file_name = "model.pkl"

    def matches(self, model: Any) -> bool:
        return callable(getattr(model, "predict", None))

    def dump(self, model: Any) -> bytes:
        data: bytes = cloudpickle.dumps(model)
        return data

    def load(self, data: bytes) -> Any:
        return cloudpickle.loads(data)

    def predict(self, model: Any, df: Any) -> Any:
        return model.predict(df)

    def requirements(self) -> dict[str, str]:
        return base_requirements()


FLAVOR = PythonFlavor()
