"""Model URIs: ``models:/name/3``, ``models:/name@champion``, ``models:/name/latest``, ``models:/name``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import InvalidUriError

__all__ = ["ModelRef", "parse_model_uri"]

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))?/?$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None  # None with alias None: the latest version
    alias: str | None = None


def parse_model_uri(uri: str) -> ModelRef:
    """Parse a model URI.

    Raises:
        InvalidUriError: the URI is not of a form above.
    """
    if not isinstance(uri, str):
        raise InvalidUriError(f"model URI must be a string, got {type(uri).__name__}")
    m = _URI.match(uri.strip())
    if m is None:
        raise InvalidUriError(
            f"{uri!r} is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest"
        )
    version = m.group("version")
    if version is None or version == "latest":
        return ModelRef(m.group("name"), None, m.group("alias"))
    if not version.isdigit() or int(version) < 1:
        raise InvalidUriError(f"{uri!r}: version {version!r} must be a positive integer or 'latest'")
    return ModelRef(m.group("name"), int(version), None)
