"""Requests that carry entity keys, enriched from the online feature store before prediction.

A deployment that declares features (``loopml deploy features NAME view:f1 view:f2``,
or ``loopml serve ... --features view:*``) accepts requests with the entity's join
keys (and any request fields the model takes directly); the server fetches the
declared features for all the request's rows in one online-store query per
view, adds them as columns, drops the join keys the model does not take, and
checks the result against the model's signature like any request. The
prediction log records the enriched inputs, so monitoring sees what the model saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInputError, SignatureMismatchError
from loopml.serving.payload import Input, InputSpec, to_input

if TYPE_CHECKING:
    from loopml.config import Settings
    from loopml.registry.signature import Signature

__all__ = ["FeatureEnricher"]


class FeatureEnricher:
    """Adds online features to request rows, for one list of feature references."""

    def __init__(self, settings: Settings, refs: Sequence[str]) -> None:
        from loopml.features import get_feature_store

        self.store = get_feature_store(settings)
        self.refs = tuple(refs)
        keys: list[str] = []
        views: list[str] = []
        for ref in self.refs:
            if ":" in ref:
                views.append(ref.split(":", 1)[0].split("@", 1)[0])
            else:  # an on-demand feature: the views it reads
                views += [i.split(":", 1)[0].split("@", 1)[0] for i in self.store.get_on_demand(ref).inputs if ":" in i]
        for name in dict.fromkeys(views):
            view = self.store.get_view(name)
            for entity in view.entities:
                for key in self.store.get_entity(entity).join_keys:
                    if key not in keys:
                        keys.append(key)
        self.join_keys = tuple(keys)

    def records(self, cols: list[str] | None, rows: list[Any]) -> list[dict[str, Any]]:
        if cols is not None:
            return [dict(zip(cols, r, strict=False)) if isinstance(r, list) else {} for r in rows]
        if all(isinstance(r, Mapping) for r in rows):
            return [dict(r) for r in rows]
        raise InvalidInputError("this deployment enriches requests from the feature store: send records "
                                f"(dataframe_records or dataframe_split with column names) holding the join keys "
                                f"{list(self.join_keys)}")

    def enrich(self, cols: list[str] | None, rows: list[Any], spec: InputSpec | None, signature: Signature | None,
               *, model: str, max_rows: int) -> Input:
        """The request rows with the declared features added, checked against the model's signature.

        Raises:
            InvalidInputError: a row without a join key.
            SignatureMismatchError: an entity the online store does not know (its features are missing),
                or the enriched rows do not fit the model.
        """
        if not rows:
            raise InvalidInputError("the request has no rows to predict (an empty batch)")
        records = self.records(cols, rows)
        missing = [k for k in self.join_keys if any(k not in r for r in records)]
        if missing:
            raise InvalidInputError(f"every row needs the join key(s) {missing} to fetch its features")
        values = self.store.get_online_features(records, list(self.refs))
        names = list(values)
        unknown = [i for i in range(len(records)) if all(values[n][i] is None for n in names)]
        if unknown:
            shown = ", ".join(str({k: records[i][k] for k in self.join_keys}) for i in unknown[:5])
            raise SignatureMismatchError(
                f"no online features for {len(unknown)} row(s): {shown} (an unknown entity, or features not "
                "materialized yet: `loopml features materialize`)", problems=[f"unknown entity in row {unknown[0]}"])
        wanted = set(spec.columns) if spec is not None else None
        enriched = []
        for i, r in enumerate(records):
            row = {**r, **{n: values[n][i] for n in names}}
            if wanted is not None:
                row = {k: v for k, v in row.items() if k in wanted or k not in self.join_keys}
            enriched.append(row)
        return to_input(spec, signature, None, enriched, model=model, max_rows=max_rows)
