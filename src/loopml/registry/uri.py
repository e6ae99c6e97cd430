"""Model URIs: ``models:/name/3``, ``models:/name@champion``, ``models:/name/latest``, ``models:/name``."""

from __future__ import annotations

from loopml.core.uri import VersionRef, parse_versioned_uri

__all__ = ["ModelRef", "parse_model_uri"]

ModelRef = VersionRef


def parse_model_uri(uri: str) -> ModelRef:
    """Parse a model URI.

    Raises:
        InvalidUriError: the URI is not of a form above.
    """
    return parse_versioned_uri(uri, "models")
