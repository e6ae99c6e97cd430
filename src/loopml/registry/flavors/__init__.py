"""Model flavors: how a kind of model is saved, loaded and asked to predict.

A flavor turns a model object into bytes and back, and wraps its prediction
call so that every loaded model answers ``predict(DataFrame)``. Built in:
``sklearn`` (scikit-learn estimators and pipelines), ``torch`` (a
``torch.nn.Module``) and ``python`` (any object with ``predict(DataFrame)``).
Flavors are looked up lazily, so torch is imported only for torch models.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Protocol

from loopml.errors import InvalidInputError, UnsupportedModelError

__all__ = ["FLAVORS", "Flavor", "detect_flavor", "get_flavor"]


class Flavor(Protocol):
    name: str
    file_name: str

    def matches(self, model: Any) -> bool: ...

    def dump(self, model: Any) -> bytes: ...

    def load(self, data: bytes) -> Any: ...

    def predict(self, model: Any, df: Any) -> Any: ...

    def requirements(self) -> dict[str, str]: ...


#: flavor name -> module defining ``FLAVOR``; detection tries them in this order
FLAVORS: dict[str, str] = {
    "torch": "loopml.registry.flavors.torch",
    "sklearn": "loopml.registry.flavors.sklearn",
    "python": "loopml.registry.flavors.python",
}

#: a flavor is only tried if its library is already imported (a torch model implies torch is loaded)
_NEEDS_MODULE = {"torch": "torch", "sklearn": "sklearn"}


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``.

    Raises:
        UnsupportedModelError: no such flavor.
    """
    module = FLAVORS.get(name)
    if module is None:
        raise UnsupportedModelError(f"unknown model flavor {name!r}; known flavors: {', '.join(FLAVORS)}")
    return importlib.import_module(module).FLAVOR  # type: ignore[no-any-return]


def detect_flavor(model: Any) -> Flavor:
    """The first flavor that can store ``model``.

    Raises:
        UnsupportedModelError: no flavor fits (e.g. the object has no ``predict``).
    """
    if model is None:
        raise InvalidInputError("cannot register None as a model; pass a fitted model object")
    for name in FLAVORS:
        needed = _NEEDS_MODULE.get(name)
        if needed is not None and needed not in sys.modules:
            continue
        flavor = get_flavor(name)
        if flavor.matches(model):
            return flavor
    raise UnsupportedModelError(
        f"cannot register an object of type {type(model).__module__}.{type(model).__qualname__}: "
        "loopml stores scikit-learn estimators, torch.nn.Module models, and any object with a "
        "predict(DataFrame) method"
    )


def dist_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def base_requirements(*dists: str) -> dict[str, str]:
    import platform

    found = {"python": platform.python_version()}
    for d in ("cloudpickle", "numpy", "pandas", *dists):
        v = dist_version(d)
        if v is not None:
            found[d] = v
    return found
