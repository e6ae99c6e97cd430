"""Registry use cases: register, resolve, load, and move aliases."""

from __future__ import annotations

import logging
import re
from typing import Any

from loopml.core import now_ms
from loopml.errors import InvalidInputError, LoopmlError
from loopml.registry._sql import SqlRegistryRepository
from loopml.registry.flavors import Flavor, detect_flavor, get_flavor
from loopml.registry.models import AliasChange, ModelVersion, RegisteredModel
from loopml.registry.signature import Signature, infer_signature, to_frame
from loopml.registry.uri import parse_model_uri
from loopml.storage.base import Backend

logger = logging.getLogger(__name__)

__all__ = ["LoadedModel", "RegistryService"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")
_RESERVED_ALIASES = {"latest"}


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"model name {name!r} is invalid: use 1-256 letters, digits, '_', '-' or '.', starting with a letter or digit",
            name=repr(name),
        )
    return name


def _check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias in _RESERVED_ALIASES:
        raise InvalidInputError(
            f"alias {alias!r} is invalid: use letters, digits, '_' or '-', starting with a letter or '_' "
            f"(and not {', '.join(sorted(_RESERVED_ALIASES))})",
            alias=repr(alias),
        )
    return alias


def _check_version(version: Any) -> int:
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(f"model version {version!r} must be a positive integer")
    return version


class LoadedModel:
    """A registry model ready to predict.

    ``predict`` accepts a DataFrame (or records, a dict, a 2-D array), checks
    it against the stored signature (every mismatch reported at once), puts
    the columns in the trained order and calls the model.
    """

    def __init__(self, version: ModelVersion, flavor: Flavor, model: Any) -> None:
        self.version = version
        self.flavor = flavor
        self.model = model

    @property
    def signature(self) -> Signature | None:
        return self.version.signature

    def predict(self, data: Any, *, validate: bool = True) -> Any:
        """Predictions for ``data``.

        Raises:
            SignatureMismatchError: ``data`` misses columns or has wrong types.
            InvalidInputError: ``data`` cannot be read as a table.
        """
        df = to_frame(data)
        if validate and self.signature is not None:
            df = self.signature.check(df, model=self.version.uri)
        return self.flavor.predict(self.model, df)

    def __repr__(self) -> str:
        return f"LoadedModel({self.version.uri!r}, flavor={self.flavor.name!r})"


class RegistryService:
    """The model registry over one :class:`~loopml.storage.Backend`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.repo = SqlRegistryRepository(backend.metadata)

    def _user(self) -> str | None:
        from loopml.tracking._env import user_name

        return user_name(self.backend.settings.user)

    # -- models ----------------------------------------------------------------

    def create_model(self, name: str, *, description: str | None = None, tags: dict[str, Any] | None = None,
                     exist_ok: bool = False) -> RegisteredModel:
        _check_name(name)
        self.repo.create_model(name, description, {k: str(v) for k, v in (tags or {}).items()}, exist_ok=exist_ok)
        return self.repo.get_model(name)

    def get_model(self, name: str) -> RegisteredModel:
        return self.repo.get_model(name)

    def list_models(self) -> list[RegisteredModel]:
        return self.repo.list_models()

    def update_model(self, name: str, *, description: str | None = None, tags: dict[str, Any] | None = None) -> RegisteredModel:
        self.repo.update_model(name, description=description, tags={k: str(v) for k, v in (tags or {}).items()})
        return self.repo.get_model(name)

    # -- versions --------------------------------------------------------------

    def register(
        self,
        model: Any,
        name: str,
        *,
        input_example: Any = None,
        signature: Signature | None = None,
        run_id: str | None = None,
        datasets: list[dict[str, Any]] | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        flavor: str | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` (the model is created if new).

        Args:
            model: a fitted model (scikit-learn, torch.nn.Module, or any object with ``predict``).
            name: registered model name.
            input_example: a few input rows; the signature is inferred from them and the model's output.
            signature: an explicit signature (overrides inference).
            run_id: the run that produced the model; its dataset references become the version's.
            datasets: extra dataset references (dicts with name, digest, path).
            description: free text.
            tags: key/value tags on the version.
            flavor: force a flavor (``sklearn``, ``torch``, ``python``) instead of detecting it.

        Raises:
            UnsupportedModelError: no flavor can store the model.
            RunNotFoundError: ``run_id`` does not exist.
            InvalidInputError: a bad name or input example.
        """
        _check_name(name)
        fl = get_flavor(flavor) if flavor else detect_flavor(model)
        if not fl.matches(model):
            raise InvalidInputError(f"model of type {type(model).__name__} is not a {fl.name} model")
        if signature is None and input_example is not None:
            example = to_frame(input_example)
            try:
                output = fl.predict(model, example)
            except Exception as e:
                raise InvalidInputError(
                    f"the model failed to predict on its input example ({type(e).__name__}: {e}); "
                    "pass an input example the model accepts, or an explicit signature"
                ) from e
            signature = infer_signature(example, output)
        refs = list(datasets or [])
        if run_id is not None:
            from loopml.tracking import get_tracking

            run = get_tracking(self.backend.settings).get_run(run_id)
            refs = [
                {"name": d.name, "digest": d.digest, "path": d.path, "context": d.context, "num_rows": d.num_rows}
                for d in run.datasets
            ] + refs
        try:
            data = fl.dump(model)
        except Exception as e:
            raise InvalidInputError(f"model of type {type(model).__name__} cannot be serialised: {e}") from e
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        self.repo.create_model(name, None, {}, exist_ok=True)
        key = f"models/{name}/{digest}/{fl.file_name}"
        if not self.backend.blobs.exists(key):
            self.backend.blobs.put_bytes(key, data)
        row = {
            "name": name, "flavor": fl.name, "artifact_key": key, "sha256": digest, "size": len(data),
            "run_id": run_id, "signature": signature.to_dict() if signature else None,
            "requirements": fl.requirements(), "datasets": refs, "description": description,
            "created_at": now_ms(), "created_by": self._user(),
        }
        version = self.repo.create_version(row, {k: str(v) for k, v in (tags or {}).items()})
        logger.info("registered %s version %d", name, version, extra={"model": name, "version": version})
        return self.repo.get_version(name, version)

    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        """Version ``version`` of ``name`` (default: the latest)."""
        return self.repo.get_version(name, None if version is None else _check_version(version))

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.repo.list_versions(name)

    def update_version(self, name: str, version: int, *, description: str | None = None,
                       tags: dict[str, Any] | None = None) -> ModelVersion:
        """Change a version's description or tags (its model file and metadata stay immutable)."""
        self.repo.update_version(name, _check_version(version), description=description,
                                 tags={k: str(v) for k, v in (tags or {}).items()})
        return self.repo.get_version(name, version)

    def resolve(self, uri: str) -> ModelVersion:
        """The version a ``models:/`` URI names.

        Raises:
            InvalidUriError, ModelNotFoundError, ModelVersionNotFoundError, AliasNotFoundError.
        """
        ref = parse_model_uri(uri)
        if ref.alias is not None:
            return self.repo.get_version(ref.name, self.repo.resolve_alias(ref.name, ref.alias))
        return self.repo.get_version(ref.name, ref.version)

    def load(self, uri_or_version: str | ModelVersion) -> LoadedModel:
        """Load a model by URI, verifying the stored file's sha256.

        Raises:
            ArtifactCorruptedError: the stored file does not match its hash.
            ArtifactNotFoundError: the stored file is gone.
        """
        mv = uri_or_version if isinstance(uri_or_version, ModelVersion) else self.resolve(uri_or_version)
        fl = get_flavor(mv.flavor)
        data = self.backend.blobs.get_bytes(mv.artifact_key, sha256=mv.sha256)
        try:
            model = fl.load(data)
        except LoopmlError:
            raise
        except Exception as e:
            raise InvalidInputError(
                f"{mv.uri} could not be loaded by the {fl.name} flavor ({type(e).__name__}: {e}); "
                f"it needs {mv.requirements}"
            ) from e
        return LoadedModel(mv, fl, model)

    # -- aliases -----------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version`` atomically; returns the version it pointed at before."""
        old, _ = self.repo.move_alias(name, _check_alias(alias), _check_version(version), action="set", user=self._user())
        return old

    def delete_alias(self, name: str, alias: str) -> None:
        self.repo.move_alias(name, _check_alias(alias), None, action="delete", user=self._user())

    def rollback_alias(self, name: str, alias: str) -> int:
        """Move ``alias`` back to the version it had before its current one; returns that version.

        Raises:
            ConflictError: there is no earlier version in the alias history.
        """
        _, new = self.repo.move_alias(name, _check_alias(alias), None, action="rollback", user=self._user(), rollback=True)
        assert new is not None
        return new

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        return self.repo.alias_history(name, alias)
