"""Starting or joining Ray, once per process, for every part that runs work on it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInputError

if TYPE_CHECKING:
    from loopml.config import Settings

__all__ = ["connect"]

_lock = threading.Lock()


def connect(settings: Settings) -> Any:
    """The ``ray`` module, initialised: a Ray the caller started is used as is; otherwise
    ``ray.init()`` joins ``settings.ray_address`` (``auto``, ``ray://head:10001``) or starts a
    local Ray on this machine.

    Raises:
        InvalidInputError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise InvalidInputError("running on Ray needs Ray; install it with: pip install 'loopml[ray]'") from None
    with _lock:
        if not ray.is_initialized():
            ray.init(address=settings.ray_address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    return ray
