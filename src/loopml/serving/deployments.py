"""Deployments: named endpoints that serve registry model versions with a strategy.

A deployment's configuration lives in the metadata store, so every server
replica (and the CLI, on any machine) sees the same one. Each change is
validated, written as the next *revision* together with a history entry in
one transaction, and announced as a :data:`DEPLOYMENT_CHANGED` event. Servers
poll :meth:`DeploymentService.revision` (one primary-key lookup) and reload
when it moves.

Strategies and their variants::

    single      primary (live, 100%)
    canary      primary (live, 100 - w%)  canary (live, w%)      [sticky by a request header]
    shadow      primary (live, 100%)      shadow (gets a copy of each request, answers discarded)
    blue-green  blue / green: one live at 100%, the other standby (loaded, no traffic) once staged

Model URIs (``models:/name/3``, ``models:/name@champion``, ``models:/name``)
are resolved when the deployment is changed and stored as pinned versions,
so moving an alias later does not change what a deployment serves.
"""

from __future__ import annotations

import getpass
import logging
import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loopml.config import Settings
from loopml.errors import ConflictError, InvalidInputError
from loopml.registry import get_registry
from loopml.serving._deploy_sql import DeploymentRow, SqlDeploymentRepository
from loopml.storage import get_service
from loopml.storage.base import Backend
from loopml.storage.events import emit

logger = logging.getLogger(__name__)

__all__ = [
    "DEPLOYMENT_CHANGED",
    "ROLES",
    "STRATEGIES",
    "Deployment",
    "DeploymentService",
    "Variant",
    "get_deployments",
]

#: Deployment strategies.
STRATEGIES = ("single", "canary", "shadow", "blue-green")
#: What a variant does with requests: answers its share (live), gets copies (shadow), waits loaded (standby).
ROLES = ("live", "shadow", "standby")
#: Event kind emitted after every change (subject: the deployment name; payload: revision, action).
DEPLOYMENT_CHANGED = "deployment.changed"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")  # an HTTP header name (RFC 9110 token)
_WEIGHT_DIGITS = 4  # weights are kept to 1/10,000 of a percent so that 100 - w is exact enough to display
_COLORS = ("blue", "green")


# -- entities --------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One model version inside a deployment.

    Attributes:
        name: ``primary``, ``canary``, ``shadow``, ``blue`` or ``green``.
        model: registered model name.
        version: the pinned model version.
        weight: percent of live traffic, 0..100 (0 for shadow and standby variants).
        role: ``live``, ``shadow`` or ``standby``.
    """

    name: str
    model: str
    version: int
    weight: float
    role: str

    @property
    def uri(self) -> str:
        """``models:/name/version``."""
        return f"models:/{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "version": self.version, "weight": self.weight,
                "role": self.role, "uri": self.uri}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Variant:
        return cls(str(d["name"]), str(d["model"]), int(d["version"]), float(d["weight"]), str(d["role"]))

    def _config(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "version": self.version, "weight": self.weight,
                "role": self.role}

    def describe(self) -> str:
        """``canary=iris/3 10%``, ``shadow=iris/3 (shadow)``, ``green=iris/4 (standby)``."""
        where = f"{_fmt_weight(self.weight)}%" if self.role == "live" else f"({self.role})"
        return f"{self.name}={self.model}/{self.version} {where}"


@dataclass(frozen=True)
class Deployment:
    """A deployment at one revision.

    Attributes:
        name: deployment name.
        revision: bumped by every change, starting at 1.
        strategy: one of :data:`STRATEGIES`.
        variants: the model versions it serves, primary (or blue) first.
        sticky_header: canary only: requests carrying the same value of this header always
            get the same variant.
        updated_at: time of the last change, ms since the epoch.
    """

    name: str
    revision: int
    strategy: str
    variants: tuple[Variant, ...]
    sticky_header: str | None
    updated_at: int
    features: tuple[str, ...] = ()  # "view:feature" refs fetched from the online store for requests

    def live(self) -> list[Variant]:
        """Variants that answer requests; their weights sum to 100."""
        return [v for v in self.variants if v.role == "live"]

    def shadows(self) -> list[Variant]:
        """Variants that get a copy of every request; their answers are never returned."""
        return [v for v in self.variants if v.role == "shadow"]

    def standby(self) -> list[Variant]:
        """Variants loaded and ready but getting no traffic (the idle blue-green color)."""
        return [v for v in self.variants if v.role == "standby"]

    def variant(self, name: str) -> Variant | None:
        """The variant called ``name`` (``primary``, ``canary``, ...), if there is one."""
        return next((v for v in self.variants if v.name == name), None)

    def summary(self) -> str:
        """One line: ``canary: primary=iris/1 90%, canary=iris/2 10%``."""
        return f"{self.strategy}: " + ", ".join(v.describe() for v in self.variants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "strategy": self.strategy,
            "variants": [v.to_dict() for v in self.variants],
            "sticky_header": self.sticky_header,
            "updated_at": self.updated_at,
            "features": list(self.features),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Deployment:
        """The inverse of :meth:`to_dict`."""
        return cls(str(d["name"]), int(d["revision"]), str(d["strategy"]),
                   tuple(Variant.from_dict(v) for v in d["variants"]), d.get("sticky_header"),
                   int(d["updated_at"]), tuple(d.get("features") or ()))


def _fmt_weight(w: float) -> str:
    return f"{w:g}"


def _config(strategy: str, variants: list[Variant], sticky_header: str | None = None) -> dict[str, Any]:
    return {"strategy": strategy, "variants": [v._config() for v in variants], "sticky_header": sticky_header}


def _from_config(name: str, revision: int, config: dict[str, Any], updated_at: int) -> Deployment:
    return Deployment(name, revision, str(config["strategy"]),
                      tuple(Variant.from_dict(v) for v in config["variants"]), config.get("sticky_header"),
                      updated_at, tuple(config.get("features") or ()))


def _from_row(row: DeploymentRow) -> Deployment:
    return _from_config(row.name, row.revision, row.config, row.updated_at)


# -- validation ------------------------------------------------------------------


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"deployment name {name!r} is invalid: use 1-64 letters, digits, '-' or '_', starting with a letter "
            "or digit (e.g. iris-api)",
            name=repr(name),
        )
    return name


def _check_strategy(strategy: Any) -> str:
    if strategy not in STRATEGIES:
        raise InvalidInputError(
            f"strategy {strategy!r} is unknown; use one of {', '.join(STRATEGIES)}", strategy=repr(strategy)
        )
    if strategy in ("canary", "shadow"):
        raise InvalidInputError(
            f"a deployment starts with one model, so it cannot be created as {strategy!r}: create it with "
            f"strategy 'single', then add the challenger with `loopml deploy {strategy} NAME MODEL_URI`",
            strategy=strategy,
        )
    return str(strategy)


def _check_weight(weight: Any) -> float:
    ok = isinstance(weight, numbers.Real) and not isinstance(weight, bool) and math.isfinite(float(weight))
    w = round(float(weight), _WEIGHT_DIGITS) if ok else math.nan
    if not 0 < w < 100:
        raise InvalidInputError(
            f"canary weight {weight!r} is invalid: give the percent of traffic for the canary, strictly between "
            "0 and 100 (e.g. 10); to send it all traffic use `promote`, to stop it use `remove-challenger`",
            weight=repr(weight),
        )
    return w


def _check_header(header: Any) -> str | None:
    if header is None:
        return None
    if not isinstance(header, str) or not _HEADER.match(header):
        raise InvalidInputError(
            f"sticky header {header!r} is not a valid HTTP header name (letters, digits and '-', e.g. X-User-Id)",
            sticky_header=repr(header),
        )
    return header


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"rollback steps {steps!r} must be a positive integer", steps=repr(steps))
    return steps


# -- the service -----------------------------------------------------------------


class DeploymentService:
    """Deployments of one project, over its :class:`~loopml.storage.Backend`.

    Every change is atomic and totally ordered per deployment: concurrent
    writers (threads, processes, machines) queue on the deployment's row, each
    gets its own revision and none is lost. A change that would leave the
    configuration as it is records nothing and returns the deployment as is.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.repo = SqlDeploymentRepository(backend.metadata)

    def _user(self) -> str | None:
        if self.backend.settings.user:
            return self.backend.settings.user
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return None

    def _resolve(self, model_uri: str) -> tuple[str, int]:
        """(model name, version) that ``model_uri`` names now.

        Raises:
            InvalidUriError, ModelNotFoundError, ModelVersionNotFoundError, AliasNotFoundError.
        """
        mv = get_registry(self.backend.settings).resolve(model_uri)
        return mv.name, mv.version

    def _announce(self, dep: Deployment, action: str, **extra: Any) -> None:
        emit(self.backend.metadata, DEPLOYMENT_CHANGED, subject=dep.name,
             payload={"revision": dep.revision, "action": action, **extra})
        logger.info("deployment %s revision %d: %s (%s)", dep.name, dep.revision, action, dep.summary(),
                    extra={"deployment": dep.name, "revision": dep.revision, "action": action})

    def _change(self, name: str, action: str, compute: Callable[[Deployment], dict[str, Any]]) -> Deployment:
        _check_name(name)
        def keep_features(cur: DeploymentRow) -> dict[str, Any]:
            dep = _from_row(cur)
            config = compute(dep)
            if dep.features:  # a change of models keeps the feature list
                config.setdefault("features", list(dep.features))
            return config

        row, changed = self.repo.change(name, action, self._user(), keep_features)
        dep = _from_row(row)
        if changed:
            self._announce(dep, action)
        return dep

    # -- changes -------------------------------------------------------------------

    def create(self, name: str, model_uri: str, *, strategy: str = "single") -> Deployment:
        """Create deployment ``name`` serving ``model_uri`` (revision 1).

        Args:
            name: 1-64 letters, digits, '-' or '_'.
            model_uri: the model to serve; resolved and pinned now.
            strategy: ``single`` (the model is the primary) or ``blue-green`` (the model
                becomes the live ``blue`` color). Canary and shadow deployments start as
                ``single`` and get their challenger with :meth:`canary` or :meth:`shadow`.

        Raises:
            InvalidInputError: a bad name or strategy, or a malformed URI.
            NotFoundError: the model, version or alias does not exist.
            ConflictError: a deployment called ``name`` exists.
        """
        _check_name(name)
        strategy = _check_strategy(strategy)
        model, version = self._resolve(model_uri)
        first = Variant("blue" if strategy == "blue-green" else "primary", model, version, 100.0, "live")
        dep = _from_row(self.repo.create(name, _config(strategy, [first]), user=self._user()))
        self._announce(dep, "create")
        return dep

    def update(self, name: str, model_uri: str) -> Deployment:
        """Serve ``model_uri`` in place of the primary (or, blue-green, of the live color's model).

        A canary, shadow or staged model stays as it is.

        Raises:
            NotFoundError: the deployment or the model does not exist.
            ConflictError: the model is the deployment's challenger (promote it instead).
        """
        _check_name(name)
        model, version = self._resolve(model_uri)

        def compute(d: Deployment) -> dict[str, Any]:
            target = d.live()[0] if d.strategy == "blue-green" else d.variant("primary")
            assert target is not None
            other = next((v for v in d.variants if v is not target and (v.model, v.version) == (model, version)), None)
            if other is not None:
                raise ConflictError(
                    f"models:/{model}/{version} is already the {other.name} of deployment {name!r}; "
                    f"to make it serve all traffic use `loopml deploy {'switch' if other.role == 'standby' else 'promote'} {name}`",
                    deployment=name,
                )
            new = Variant(target.name, model, version, target.weight, target.role)
            return _config(d.strategy, [new if v is target else v for v in d.variants], d.sticky_header)

        return self._change(name, "update", compute)

    def canary(self, name: str, model_uri: str, *, weight: float, sticky_header: str | None = None) -> Deployment:
        """Send ``weight`` percent of live traffic to ``model_uri``; the primary keeps the rest.

        Adds the canary, or replaces the current canary or shadow (a deployment has at most
        one challenger).

        Args:
            weight: percent of traffic for the canary, strictly between 0 and 100.
            sticky_header: requests with the same value of this header always get the same
                variant (e.g. ``X-User-Id``); None splits request by request.

        Raises:
            InvalidInputError: a weight outside (0, 100) or NaN, or a bad header name.
            NotFoundError: the deployment or the model does not exist.
            ConflictError: the deployment is blue-green, or the model is its primary.
        """
        _check_name(name)
        w = _check_weight(weight)
        header = _check_header(sticky_header)
        model, version = self._resolve(model_uri)

        def compute(d: Deployment) -> dict[str, Any]:
            primary = self._primary(d, "canary", model, version)
            return _config("canary", [
                Variant("primary", primary.model, primary.version, round(100.0 - w, _WEIGHT_DIGITS), "live"),
                Variant("canary", model, version, w, "live"),
            ], header)

        return self._change(name, "canary", compute)

    def set_weight(self, name: str, weight: float) -> Deployment:
        """Give the canary ``weight`` percent of live traffic (the primary gets the rest).

        Raises:
            InvalidInputError: a weight outside (0, 100) or NaN.
            ConflictError: the deployment has no canary.
        """
        w = _check_weight(weight)

        def compute(d: Deployment) -> dict[str, Any]:
            primary, canary = d.variant("primary"), d.variant("canary")
            if d.strategy != "canary" or primary is None or canary is None:
                raise ConflictError(
                    f"deployment {name!r} ({d.strategy}) has no canary whose weight could change; "
                    f"add one with `loopml deploy canary {name} MODEL_URI --weight {_fmt_weight(w)}`",
                    deployment=name, strategy=d.strategy,
                )
            return _config("canary", [
                Variant("primary", primary.model, primary.version, round(100.0 - w, _WEIGHT_DIGITS), "live"),
                Variant("canary", canary.model, canary.version, w, "live"),
            ], d.sticky_header)

        return self._change(name, "weight", compute)

    def shadow(self, name: str, model_uri: str) -> Deployment:
        """Give ``model_uri`` a copy of every request; its answers are logged, never returned.

        Adds the shadow, or replaces the current shadow or canary (whose traffic goes back to
        the primary).

        Raises:
            NotFoundError: the deployment or the model does not exist.
            ConflictError: the deployment is blue-green, or the model is its primary.
        """
        _check_name(name)
        model, version = self._resolve(model_uri)

        def compute(d: Deployment) -> dict[str, Any]:
            primary = self._primary(d, "shadow", model, version)
            return _config("shadow", [
                Variant("primary", primary.model, primary.version, 100.0, "live"),
                Variant("shadow", model, version, 0.0, "shadow"),
            ])

        return self._change(name, "shadow", compute)

    def _primary(self, d: Deployment, op: str, model: str, version: int) -> Variant:
        """The primary of a deployment that is getting a canary or shadow ``model``/``version``."""
        if d.strategy == "blue-green":
            raise ConflictError(
                f"deployment {d.name!r} is blue-green, which has no {op}: load the new model in the idle color "
                f"with `loopml deploy stage {d.name} MODEL_URI`, then move traffic with `loopml deploy switch {d.name}`",
                deployment=d.name, strategy=d.strategy,
            )
        primary = d.variant("primary")
        assert primary is not None
        if (primary.model, primary.version) == (model, version):
            raise ConflictError(
                f"models:/{model}/{version} is already the primary of deployment {d.name!r}; "
                f"a {op} needs another model version",
                deployment=d.name,
            )
        return primary

    def promote(self, name: str) -> Deployment:
        """Make the challenger the only model, at 100% of traffic.

        Canary and shadow deployments become ``single`` with the challenger as primary; a
        blue-green deployment makes its staged color live and drops the other one (unlike
        :meth:`switch`, which keeps it loaded for switching back).

        Raises:
            ConflictError: there is no challenger to promote.
        """
        def compute(d: Deployment) -> dict[str, Any]:
            challenger = d.variant("canary") or d.variant("shadow")
            if d.strategy in ("canary", "shadow") and challenger is not None:
                return _config("single", [Variant("primary", challenger.model, challenger.version, 100.0, "live")])
            if d.strategy == "blue-green" and d.standby():
                s = d.standby()[0]
                return _config("blue-green", [Variant(s.name, s.model, s.version, 100.0, "live")])
            how = (f"stage one with `loopml deploy stage {name} MODEL_URI`" if d.strategy == "blue-green"
                   else f"add a canary or shadow first (`loopml deploy canary {name} MODEL_URI --weight 10`)")
            raise ConflictError(
                f"deployment {name!r} ({d.strategy}) has no challenger to promote; {how}",
                deployment=name, strategy=d.strategy,
            )

        return self._change(name, "promote", compute)

    def stage(self, name: str, model_uri: str) -> Deployment:
        """Blue-green: load ``model_uri`` in the idle color as standby (no traffic yet).

        Replaces a model staged before.

        Raises:
            NotFoundError: the deployment or the model does not exist.
            ConflictError: the deployment is not blue-green, or the model is the live one.
        """
        _check_name(name)
        model, version = self._resolve(model_uri)

        def compute(d: Deployment) -> dict[str, Any]:
            self._require_blue_green(d, "stage")
            live = d.live()[0]
            if (live.model, live.version) == (model, version):
                raise ConflictError(
                    f"models:/{model}/{version} is already live in the {live.name} color of deployment {name!r}; "
                    "stage another model version",
                    deployment=name,
                )
            idle = _COLORS[1 - _COLORS.index(live.name)]
            both = {live.name: live, idle: Variant(idle, model, version, 0.0, "standby")}
            return _config("blue-green", [both[c] for c in _COLORS])

        return self._change(name, "stage", compute)

    def switch(self, name: str) -> Deployment:
        """Blue-green: send all traffic to the standby color at once; the live one becomes standby.

        Switching again goes back.

        Raises:
            ConflictError: the deployment is not blue-green, or nothing is staged.
        """
        def compute(d: Deployment) -> dict[str, Any]:
            self._require_blue_green(d, "switch")
            if not d.standby():
                raise ConflictError(
                    f"deployment {name!r} has nothing staged to switch to (only {d.live()[0].name} is loaded); "
                    f"stage a model first with `loopml deploy stage {name} MODEL_URI`",
                    deployment=name,
                )
            return _config("blue-green", [
                Variant(v.name, v.model, v.version, 0.0 if v.role == "live" else 100.0,
                        "standby" if v.role == "live" else "live")
                for v in d.variants
            ])

        return self._change(name, "switch", compute)

    @staticmethod
    def _require_blue_green(d: Deployment, op: str) -> None:
        if d.strategy != "blue-green":
            raise ConflictError(
                f"deployment {d.name!r} uses the {d.strategy} strategy; {op} works on blue-green deployments only. "
                f"Replace its model with `loopml deploy update {d.name} MODEL_URI`, try a new model with "
                f"`loopml deploy canary`, or create a blue-green deployment with `--strategy blue-green`",
                deployment=d.name, strategy=d.strategy,
            )

    def remove_challenger(self, name: str) -> Deployment:
        """Drop the canary or shadow (back to ``single``), or a blue-green deployment's standby color.

        Raises:
            ConflictError: there is no challenger.
        """
        def compute(d: Deployment) -> dict[str, Any]:
            if d.strategy in ("canary", "shadow"):
                primary = d.variant("primary")
                assert primary is not None
                return _config("single", [Variant("primary", primary.model, primary.version, 100.0, "live")])
            if d.strategy == "blue-green" and d.standby():
                return _config("blue-green", d.live())
            raise ConflictError(
                f"deployment {name!r} ({d.strategy}) has no canary, shadow or staged model to remove",
                deployment=name, strategy=d.strategy,
            )

        return self._change(name, "remove-challenger", compute)

    def set_features(self, name: str, features: Sequence[str]) -> Deployment:
        """Declare the online features (``"view:feature"`` or ``"view:*"``) this deployment's requests are
        enriched with: a request then carries the entity keys, and the server fetches the rest.

        Raises:
            InvalidInputError: a reference that is not ``view:feature``.
        """
        refs = list(features)
        for ref in refs:
            if not isinstance(ref, str) or ref.count(":") > 1 or not all(ref.split(":")):
                raise InvalidInputError(f"feature {ref!r} must be written view:feature, view:* or the name of an "
                                        "on-demand feature", feature=ref)
        if len(set(refs)) != len(refs):
            raise InvalidInputError(f"features repeat: {sorted({r for r in refs if refs.count(r) > 1})}")

        def compute(d: Deployment) -> dict[str, Any]:
            return {**_config(d.strategy, list(d.variants), d.sticky_header), "features": refs}

        return self._change(name, "features", compute)

    def rollback(self, name: str, steps: int = 1) -> Deployment:
        """Bring back the configuration before the current one, as a new revision.

        Repeated rollbacks walk further back: rolling back twice undoes the last two changes
        (a rollback is not undone by the next rollback). ``steps=n`` does n rollbacks in one
        revision.

        Raises:
            InvalidInputError: ``steps`` is not a positive integer.
            ConflictError: the history does not reach that far back.
        """
        _check_name(name)
        steps = _check_steps(steps)
        row, restored = self.repo.rollback(name, steps, self._user())
        dep = _from_row(row)
        self._announce(dep, "rollback", restored=restored)
        return dep

    def delete(self, name: str) -> None:
        """Delete deployment ``name`` and its history. Servers following it stop finding it.

        Raises:
            NotFoundError: no deployment is called ``name``.
        """
        _check_name(name)
        last = self.repo.delete(name)
        emit(self.backend.metadata, DEPLOYMENT_CHANGED, subject=name, payload={"revision": last, "action": "delete"})
        logger.info("deleted deployment %s", name, extra={"deployment": name})

    # -- reads ---------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        """The current configuration of ``name``.

        Raises:
            NotFoundError: no deployment is called ``name`` (the message lists those that exist).
        """
        return _from_row(self.repo.get(_check_name(name)))

    def revision(self, name: str) -> int:
        """The current revision of ``name``: one primary-key lookup, cheap enough to poll often.

        Raises:
            NotFoundError: no deployment is called ``name``.
        """
        return self.repo.revision(_check_name(name))

    def history(self, name: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Every revision of ``name``, oldest first (with ``limit``: the newest ``limit``).

        Each entry has ``revision``, ``previous`` (the revision a rollback of it returns to),
        ``action``, ``user``, ``changed_at`` (ms), ``strategy``, ``summary`` (one line),
        ``variants`` (dicts as in :meth:`Variant.to_dict`) and ``sticky_header``.
        """
        _check_name(name)
        out = []
        for h in self.repo.history(name, limit=limit):
            dep = _from_config(name, h.revision, h.config, h.changed_at)
            out.append({
                "revision": h.revision, "previous": h.previous, "action": h.action, "user": h.user,
                "changed_at": h.changed_at, "strategy": dep.strategy, "summary": dep.summary(),
                "variants": [v.to_dict() for v in dep.variants], "sticky_header": dep.sticky_header,
            })
        return out

    def list(self) -> list[Deployment]:
        """Every deployment, by name."""
        return [_from_row(r) for r in self.repo.list_all()]


def get_deployments(settings: Settings | None = None) -> DeploymentService:
    """The process-wide :class:`DeploymentService` for ``settings`` (default: the project's)."""
    return get_service("deployments", DeploymentService, settings)
