"""Versioned-object URIs shared by the registry and the data layer:
``<scheme>:/name``, ``<scheme>:/name/3``, ``<scheme>:/name/latest`` and ``<scheme>:/name@alias``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import InvalidUriError

__all__ = ["VersionRef", "parse_versioned_uri"]

_URI = re.compile(r"^(?P<scheme>[a-z]+):/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))?/?$")


@dataclass(frozen=True)
class VersionRef:
    name: str
    version: int | None = None  # None with alias None: the latest version
    alias: str | None = None


def parse_versioned_uri(uri: object, scheme: str) -> VersionRef:
    """Parse ``<scheme>:/NAME[/VERSION|/latest|@ALIAS]``.

    Raises:
        InvalidUriError: not a string, another scheme, or a malformed version.
    """
    forms = f"{scheme}:/NAME/VERSION, {scheme}:/NAME@ALIAS or {scheme}:/NAME/latest"
    if not isinstance(uri, str):
        raise InvalidUriError(f"a {scheme} URI must be a string such as {scheme}:/NAME, got {type(uri).__name__}")
    m = _URI.match(uri.strip())
    if m is None or m.group("scheme") != scheme:
        raise InvalidUriError(f"{uri!r} is not a {scheme} URI; use {forms}")
    version = m.group("version")
    if version is None or version == "latest":
        return VersionRef(m.group("name"), None, m.group("alias"))
    if not version.isdigit() or int(version) < 1:
        raise InvalidUriError(f"{uri!r}: version {version!r} must be a positive integer or 'latest'")
    return VersionRef(m.group("name"), int(version), None)
