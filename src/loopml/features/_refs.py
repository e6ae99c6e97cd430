"""Feature references: ``"view:feature"``, ``"view:*"``, ``"view@3:feature"`` and on-demand names,
resolved against stored definitions into what a read needs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import InvalidInputError, NotFoundError

__all__ = ["KIND_LABEL", "Definitions", "Plan", "Ref", "ViewPart", "not_found", "plan_features"]

#: latest definitions by (kind, name): the stored rows (kind, name, version, digest, spec, ...)
Definitions = dict[tuple[str, str], dict[str, Any]]
KIND_LABEL = {"entity": "entity", "view": "feature view", "on_demand": "on-demand feature"}


def not_found(kind: str, name: str, defs: Definitions) -> NotFoundError:
    known = sorted(n for k, n in defs if k == kind)
    return NotFoundError(
        f"{KIND_LABEL[kind]} {name!r} is not defined; known: {', '.join(known) or 'none'} "
        "(see `loopml features list`; define it and run `loopml features apply`)",
        kind=kind, name=name,
    )


@dataclass(frozen=True)
class Ref:
    """One requested feature: a view's column or an on-demand feature."""

    ref: str
    view: str | None  # None for on-demand
    feature: str
    out: str


@dataclass
class ViewPart:
    name: str
    version: int
    spec: dict[str, Any]
    features: list[str] = field(default_factory=list)  # feature names to read (requested or needed)

    def out_name(self, feature: str, full_names: bool) -> str:
        return f"{self.name}__{feature}" if full_names else feature


@dataclass
class Plan:
    """What a feature list needs: views with their features, on-demand specs, output columns in order."""

    views: dict[str, ViewPart]
    on_demand: list[dict[str, Any]]
    outputs: list[Ref]
    full_names: bool
    built_at: float = 0.0
    #: per view: a function from the entity rows' key columns to online-store keys (filled by online reads)
    encoders: dict[str, Callable[[list[Sequence[Any]]], list[str | None]]] = field(default_factory=dict)


def plan_features(features: Sequence[str], full_names: bool, defs: Definitions,
                  pinned: Callable[[str, str], dict[str, Any]]) -> Plan:
    """What ``features`` need: the views (with the features to read), on-demand specs, output columns.

    Args:
        features: the requested references.
        full_names: name output columns ``view__feature``.
        defs: latest definitions by (kind, name).
        pinned: returns the stored row of ``(kind, "name@version")``.

    Raises:
        NotFoundError: an unknown view, feature or on-demand feature.
        InvalidInputError: a malformed reference or clashing output names.
    """
    if isinstance(features, str):
        features = [features]
    if not features:
        raise InvalidInputError("no features requested; pass references such as 'driver_stats:trips_today'")
    views: dict[str, ViewPart] = {}
    on_demand: list[dict[str, Any]] = []
    outputs: list[Ref] = []
    seen: set[str] = set()

    def view_part(ref: str, view: str) -> ViewPart:
        name, _, ver = view.partition("@")
        part = views.get(name)
        if part is None:
            if ver:
                row = pinned("view", view)
            else:
                found = defs.get(("view", name))
                if found is None:
                    raise not_found("view", name, defs)
                row = found
            part = views[name] = ViewPart(name, int(row["version"]), row["spec"])
        elif ver and int(ver) != part.version:
            raise InvalidInputError(f"{ref!r}: view {name!r} is requested in two versions ({part.version} and {ver})")
        return part

    def add_feature(part: ViewPart, ref: str, feature: str) -> None:
        names = [f["name"] for f in part.spec["features"]]
        if feature not in names:
            raise NotFoundError(
                f"feature {feature!r} is not in view {part.name!r} (version {part.version}); "
                f"its features: {', '.join(names)}",
                view=part.name, feature=feature,
            )
        if feature not in part.features:
            part.features.append(feature)

    for ref in features:
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidInputError(f"feature reference {ref!r} must be 'view:feature', 'view:*' or an on-demand name")
        ref = ref.strip()
        if ref in seen:
            continue
        seen.add(ref)
        view, sep, feat = ref.partition(":")
        if sep:
            part = view_part(ref, view)
            wanted = [f["name"] for f in part.spec["features"]] if feat == "*" else [feat]
            for f in wanted:
                add_feature(part, ref, f)
                outputs.append(Ref(f"{part.name}:{f}", part.name, f, part.out_name(f, full_names)))
            continue
        row = defs.get(("on_demand", ref))
        if row is None:
            known = sorted(n for k, n in defs if k == "on_demand")
            raise NotFoundError(
                f"feature reference {ref!r} is neither 'view:feature' nor a known on-demand feature "
                f"(on-demand features: {', '.join(known) or 'none'})",
                feature=ref,
            )
        spec = row["spec"]
        on_demand.append(spec)
        outputs.append(Ref(ref, None, ref, ref))
        for inp in spec["inputs"]:
            view, sep, feat = inp.partition(":")
            if sep:
                add_feature(view_part(inp, view), inp, feat)
    names = [o.out for o in outputs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInputError(
            f"feature column(s) {dupes} would appear twice (the same feature name in two views); "
            "pass full_names=True to name columns view__feature",
            columns=dupes,
        )
    return Plan(views, on_demand, outputs, full_names, time.monotonic())
