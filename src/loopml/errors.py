"""Errors raised by loopml.

Every error loopml raises on purpose derives from :class:`LoopmlError` and
carries a stable ``code`` that the HTTP layer maps to a status in one table
(:data:`HTTP_STATUS`). Messages name the object that was wrong, where it was
looked for, and what would be right.

Hierarchy::

    LoopmlError
    ├── ConfigError
    ├── NotFoundError
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   ├── ModelNotFoundError
    │   ├── ModelVersionNotFoundError
    │   ├── AliasNotFoundError
    │   ├── DatasetNotFoundError
    │   └── ArtifactNotFoundError
    ├── AlreadyExistsError
    ├── InvalidInputError
    │   ├── InvalidParamError
    │   ├── InvalidMetricError
    │   ├── FilterSyntaxError
    │   ├── InvalidUriError
    │   └── UnsupportedModelError
    ├── ConflictError
    │   ├── RunNotActiveError
    │   └── ParamConflictError
    ├── AuthenticationError
    ├── PermissionDeniedError
    ├── SignatureMismatchError
    ├── ArtifactCorruptedError
    └── StoreError
        └── SchemaVersionError
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "HTTP_STATUS",
    "AlreadyExistsError",
    "AliasNotFoundError",
    "ArtifactCorruptedError",
    "ArtifactNotFoundError",
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "DatasetNotFoundError",
    "ExperimentNotFoundError",
    "FilterSyntaxError",
    "InvalidInputError",
    "InvalidMetricError",
    "InvalidParamError",
    "InvalidUriError",
    "LoopmlError",
    "ModelNotFoundError",
    "ModelVersionNotFoundError",
    "NotFoundError",
    "ParamConflictError",
    "PermissionDeniedError",
    "RunNotActiveError",
    "RunNotFoundError",
    "SchemaVersionError",
    "SignatureMismatchError",
    "StoreError",
    "UnsupportedModelError",
]


class LoopmlError(Exception):
    """Root of every error loopml raises on purpose.

    Attributes:
        code: stable machine-readable code (see :data:`HTTP_STATUS`).
        details: structured context (the offending field, value, ...).
    """

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error_code": self.code, "message": self.message, "details": self.details}


class ConfigError(LoopmlError):
    code = "INVALID_CONFIG"


class NotFoundError(LoopmlError):
    code = "NOT_FOUND"


class ExperimentNotFoundError(NotFoundError):
    code = "EXPERIMENT_NOT_FOUND"


class RunNotFoundError(NotFoundError):
    code = "RUN_NOT_FOUND"


class ModelNotFoundError(NotFoundError):
    code = "MODEL_NOT_FOUND"


class ModelVersionNotFoundError(NotFoundError):
    code = "MODEL_VERSION_NOT_FOUND"


class AliasNotFoundError(NotFoundError):
    code = "ALIAS_NOT_FOUND"


class DatasetNotFoundError(NotFoundError):
    code = "DATASET_NOT_FOUND"


class ArtifactNotFoundError(NotFoundError):
    code = "ARTIFACT_NOT_FOUND"


class AlreadyExistsError(LoopmlError):
    code = "ALREADY_EXISTS"


class InvalidInputError(LoopmlError):
    code = "INVALID_INPUT"


class InvalidParamError(InvalidInputError):
    code = "INVALID_PARAM"


class InvalidMetricError(InvalidInputError):
    code = "INVALID_METRIC"


class FilterSyntaxError(InvalidInputError):
    code = "INVALID_FILTER"


class InvalidUriError(InvalidInputError):
    code = "INVALID_URI"


class UnsupportedModelError(InvalidInputError):
    code = "UNSUPPORTED_MODEL"


class ConflictError(LoopmlError):
    code = "CONFLICT"


class RunNotActiveError(ConflictError):
    code = "RUN_NOT_ACTIVE"


class ParamConflictError(ConflictError):
    code = "PARAM_CONFLICT"


class AuthenticationError(LoopmlError):
    """The request carries no credentials, or credentials that are not valid (HTTP 401)."""

    code = "UNAUTHENTICATED"


class PermissionDeniedError(LoopmlError):
    """The credentials are valid but lack the role the operation needs (HTTP 403)."""

    code = "FORBIDDEN"


class SignatureMismatchError(LoopmlError):
    """Input data does not match a model's signature; ``problems`` lists every mismatch."""

    code = "SIGNATURE_MISMATCH"

    def __init__(self, message: str, problems: list[str], **details: Any) -> None:
        super().__init__(message, problems=problems, **details)
        self.problems = problems


class ArtifactCorruptedError(LoopmlError):
    code = "ARTIFACT_CORRUPTED"


class StoreError(LoopmlError):
    code = "STORE_ERROR"


class SchemaVersionError(StoreError):
    code = "SCHEMA_VERSION"


#: One table from error code to HTTP status; unknown codes map to 500.
HTTP_STATUS: dict[str, int] = {
    "INVALID_CONFIG": 500,
    "NOT_FOUND": 404,
    "EXPERIMENT_NOT_FOUND": 404,
    "RUN_NOT_FOUND": 404,
    "MODEL_NOT_FOUND": 404,
    "MODEL_VERSION_NOT_FOUND": 404,
    "ALIAS_NOT_FOUND": 404,
    "DATASET_NOT_FOUND": 404,
    "ARTIFACT_NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "INVALID_INPUT": 400,
    "INVALID_PARAM": 400,
    "INVALID_METRIC": 400,
    "INVALID_FILTER": 400,
    "INVALID_URI": 400,
    "UNSUPPORTED_MODEL": 400,
    "CONFLICT": 409,
    "RUN_NOT_ACTIVE": 409,
    "PARAM_CONFLICT": 409,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "SIGNATURE_MISMATCH": 422,
    "ARTIFACT_CORRUPTED": 500,
    "STORE_ERROR": 503,
    "SCHEMA_VERSION": 503,
}
