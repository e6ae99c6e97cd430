"""``loopml.models``: the model registry under its everyday name (see :mod:`loopml.registry`)."""

from loopml.registry import *  # noqa: F403
from loopml.registry import __all__  # noqa: F401
