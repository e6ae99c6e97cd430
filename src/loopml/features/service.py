"""Feature store use cases: apply definitions, build training sets, materialize, read online, check skew."""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopml.config import Settings
from loopml.errors import ConflictError, InvalidInputError, NotFoundError
from loopml.features._apply import plan_apply
from loopml.features._keys import key_encoder, value_encoder
from loopml.features._materialize import Progress, materialize_view, us_to_iso
from loopml.features._offline import ViewJoin, point_in_time_join
from loopml.features._refs import KIND_LABEL, Plan, not_found, plan_features
from loopml.features._skew import compare_online_offline
from loopml.features._source import resolve_source
from loopml.features._sql import SqlFeatureRepository
from loopml.features.models import DTYPES, Entity, FeatureView, OnDemandFeature, view_from_spec
from loopml.features.online import OnlineStore, open_online_store
from loopml.storage.base import Backend

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["FeatureStore"]

#: seconds an online read trusts its cached definitions before looking for newer ones
DEFINITIONS_REFRESH_S = 5.0
_MAX_PLANS = 1024
_ARROW_TYPES: dict[str, pa.DataType] = {"float": pa.float64(), "int": pa.int64(), "string": pa.string(), "bool": pa.bool_()}


def _to_us(value: datetime | str, what: str) -> int:
    """Microseconds since the epoch of a datetime or ISO string (naive means UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(f"{what} {value!r} is not an ISO date/time such as 2024-05-01T12:00:00") from None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class FeatureStore:
    """Feature definitions, training sets and online features of one project.

    Args:
        backend: the project's :class:`~loopml.storage.Backend` (or its :class:`~loopml.config.Settings`).
        online: an online store to use instead of the one ``features_online_store`` names.
        settings: the settings to read ``features_online_store`` from (default: the backend's,
            or ``backend`` itself when it is a Settings).

    Thread safety: every method may be called from several threads; DuckDB
    work runs on a per-call cursor and SQLite online reads on per-thread connections.
    """

    def __init__(self, backend: Backend | Settings, *, online: OnlineStore | None = None,
                 settings: Settings | None = None) -> None:
        if isinstance(backend, Settings):
            from loopml.storage import get_backend

            settings = settings or backend
            backend = get_backend(backend)
        self.backend = backend
        # a cached backend may have been built from settings with another online store
        self.settings = settings or backend.settings
        self.repo = SqlFeatureRepository(backend.metadata)
        self._online = online
        self._db: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.RLock()
        self._defs: tuple[float, dict[tuple[str, str], dict[str, Any]]] | None = None
        self._plans: dict[tuple[tuple[str, ...], bool], Plan] = {}
        self._functions: dict[str, Callable[..., Any]] = {}

    # -- plumbing ------------------------------------------------------------------

    @property
    def online(self) -> OnlineStore:
        """The online store (opened on first use)."""
        if self._online is None:
            with self._lock:
                if self._online is None:
                    self._online = open_online_store(self.settings)
        return self._online

    def _con(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection for one call (a cursor on this store's in-memory database)."""
        import duckdb

        with self._lock:
            if self._db is None:
                self._db = duckdb.connect(":memory:")
            cur = self._db.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute(f"SET file_search_path = {_literal(str(self.settings.project_dir))}")
        return cur

    def _user(self) -> str | None:
        from loopml.tracking._env import user_name

        return user_name(self.settings.user)

    def close(self) -> None:
        with self._lock:
            if self._online is not None:
                self._online.close()
            if self._db is not None:
                self._db.close()
                self._db = None

    def _definitions(self, *, fresh: bool = False) -> dict[tuple[str, str], dict[str, Any]]:
        """Latest stored definitions by (kind, name); cached for :data:`DEFINITIONS_REFRESH_S` unless ``fresh``."""
        cached = self._defs
        now = time.monotonic()
        if not fresh and cached is not None and now - cached[0] < DEFINITIONS_REFRESH_S:
            return cached[1]
        defs = {(r["kind"], r["name"]): r for r in self.repo.latest()}
        with self._lock:
            if self._defs is None or defs != self._defs[1]:
                self._plans.clear()
            self._defs = (now, defs)
        return defs

    # -- definitions -----------------------------------------------------------------

    def apply(self, objects: Sequence[Entity | FeatureView | OnDemandFeature]) -> builtins.list[dict[str, Any]]:
        """Validate and store definitions; each changed one becomes a new version.

        Entities, views and on-demand features may reference each other within
        ``objects`` or definitions stored before. Applying an unchanged
        definition keeps its version. Sources are checked by schema only.

        Returns:
            One dict per object: kind, name, version, status (``created``, ``updated``, ``unchanged``).

        Raises:
            InvalidInputError: a definition is malformed (unknown entity, duplicate feature,
                missing column, wrong dtype, bad TTL, ...); the message lists every problem
                and nothing is stored.
        """
        if isinstance(objects, Entity | FeatureView | OnDemandFeature):
            objects = [objects]
        stored = self._definitions(fresh=True)
        con = self._con()
        try:
            planned = plan_apply(list(objects), stored, self.backend, self.settings.project_dir, con)
        finally:
            con.close()
        if planned.problems:
            n = len(planned.problems)
            text = planned.problems[0] if n == 1 else f"{n} problems in the feature definitions: " + "; ".join(
                f"({i}) {p}" for i, p in enumerate(planned.problems, 1))
            raise InvalidInputError(text + "; nothing was applied", problems=planned.problems)
        for key, data in planned.blobs.items():
            if not self.backend.blobs.exists(key):
                self.backend.blobs.put_bytes(key, data)
        self._functions.update(planned.functions)
        saved = self.repo.save(planned.items, self._user())
        out = []
        for (kind, name, _digest, _spec), (version, created) in zip(planned.items, saved, strict=True):
            status = "unchanged" if not created else ("created" if version == 1 else "updated")
            out.append({"kind": kind, "name": name, "version": version, "status": status})
            if created:
                logger.info("applied %s %s version %d", kind, name, version, extra={"feature_kind": kind, "name": name})
        self._definitions(fresh=True)
        return out

    def _row(self, kind: str, ref: str) -> dict[str, Any]:
        name, _, ver = ref.partition("@")
        version: int | None = None
        if ver:
            if not ver.isdigit() or int(ver) < 1:
                raise InvalidInputError(f"{ref!r}: the version after '@' must be a positive integer")
            version = int(ver)
        row = self.repo.get(kind, name, version)
        if row is None:
            if version is not None and self.repo.get(kind, name) is not None:
                raise NotFoundError(f"{KIND_LABEL[kind]} {name!r} has no version {version}; "
                                    f"see `loopml features show {name}`", kind=kind, name=name, version=version)
            raise not_found(kind, name, self._definitions(fresh=True))
        return row

    def get_view(self, name: str) -> FeatureView:
        """A feature view, latest version or ``name@version``.

        Raises:
            NotFoundError: no such view or version.
        """
        return view_from_spec(self._row("view", name)["spec"])

    def get_entity(self, name: str) -> Entity:
        spec = self._row("entity", name)["spec"]
        return Entity(spec["name"], tuple(spec["join_keys"]), spec.get("description") or "")

    def get_on_demand(self, name: str) -> OnDemandFeature:
        spec = self._row("on_demand", name)["spec"]
        return OnDemandFeature(spec["name"], tuple(spec["inputs"]), self._function(spec), spec["dtype"])

    def describe(self, name: str) -> dict[str, Any]:
        """Everything stored about one definition (a view, else an entity, else an on-demand feature):
        its latest spec, every version, and (views) materialization states."""
        defs = self._definitions(fresh=True)
        for kind in ("view", "entity", "on_demand"):
            if (kind, name.partition("@")[0]) in defs:
                row = self._row(kind, name)
                versions = self.repo.versions(kind, row["name"])
                out: dict[str, Any] = {
                    "kind": kind, "name": row["name"], "version": row["version"], "spec": row["spec"],
                    "created_at": row["created_at"], "created_by": row["created_by"],
                    "versions": [{"version": v["version"], "digest": v["digest"], "created_at": v["created_at"],
                                  "created_by": v["created_by"]} for v in versions],
                }
                if kind == "view":
                    out["materializations"] = [
                        {"store": s["store"], "view_version": s["view_version"], "watermark": us_to_iso(s["watermark_us"]),
                         "end": us_to_iso(s["end_us"]), "updated_at": s["updated_at"], "last": s["state"].get("last")}
                        for s in self.repo.states() if s["view"] == row["name"]
                    ]
                return out
        raise NotFoundError(
            f"no feature view, entity or on-demand feature is called {name!r}; see `loopml features list`", name=name
        )

    def _function(self, spec: dict[str, Any]) -> Callable[..., Any]:
        fn_spec = spec["fn"]
        sha = fn_spec["sha256"]
        fn = self._functions.get(sha)
        if fn is None:
            import cloudpickle

            data = self.backend.blobs.get_bytes(fn_spec["blob"], sha256=sha)
            try:
                fn = cloudpickle.loads(data)
            except Exception as e:
                raise InvalidInputError(
                    f"on-demand feature {spec['name']!r}: its function {fn_spec['name']} cannot be loaded here "
                    f"({type(e).__name__}: {e}); make the module that defines it importable, or apply it again"
                ) from e
            self._functions[sha] = fn
        return fn

    def _run_on_demand(self, spec: dict[str, Any], frame: pd.DataFrame) -> pa.Array:
        fn = self._function(spec)
        try:
            result = fn(frame)
        except Exception as e:
            raise InvalidInputError(
                f"on-demand feature {spec['name']!r} failed: {type(e).__name__}: {e}", feature=spec["name"]
            ) from e
        try:
            values = pa.array(result, from_pandas=True)
            values = values.cast(_ARROW_TYPES[spec["dtype"]])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError) as e:
            raise InvalidInputError(
                f"on-demand feature {spec['name']!r} returned values that are not {spec['dtype']}: {e}",
                feature=spec["name"],
            ) from None
        if len(values) != len(frame):
            raise InvalidInputError(
                f"on-demand feature {spec['name']!r} returned {len(values)} values for {len(frame)} rows",
                feature=spec["name"],
            )
        return values

    # -- offline: training sets ----------------------------------------------------------

    def get_training_set(
        self,
        entity_df: pd.DataFrame | pa.Table,
        features: Sequence[str],
        *,
        timestamp: str = "event_timestamp",
        register_as: str | None = None,
        full_names: bool = False,
    ) -> pa.Table:
        """Point-in-time correct features for each entity row.

        Each row gets, per view, the values of the view's latest source row with
        the same join keys and an event time at or before the row's ``timestamp``
        (null when there is none or it is older than the view's TTL). Every entity
        row is kept, in its original order, duplicates included. Equal event times
        in a source resolve to the last row in source order. On-demand features
        are computed after the join.

        Args:
            entity_df: the entity rows: join keys, the time column, anything else (labels).
            features: ``"view:feature"``, ``"view:*"``, ``"view@3:feature"`` (a pinned version)
                or on-demand feature names.
            timestamp: the entity rows' time column.
            register_as: also register the result as the next version of this dataset; the
                version's source and description name the views, versions and source data
                (the returned table's schema metadata holds its URI under ``loopml.dataset``).
            full_names: name feature columns ``view__feature`` instead of ``feature``.

        Returns:
            An Arrow table: the entity columns, then one column per requested feature.

        Raises:
            NotFoundError: an unknown view, feature or on-demand feature.
            InvalidInputError: missing entity columns, clashing column names, a failing on-demand function.
        """
        import pandas as pd

        if isinstance(entity_df, pd.DataFrame):
            try:
                entities = pa.Table.from_pandas(entity_df, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise InvalidInputError(f"the entity rows cannot be read as a table: {e}") from None
        elif isinstance(entity_df, pa.Table):
            entities = entity_df
        else:
            raise InvalidInputError(f"entity rows must be a pandas DataFrame or a pyarrow Table, got {type(entity_df).__name__}")
        plan = plan_features(features, full_names, self._definitions(fresh=True), self._row)
        cols = entities.column_names
        if timestamp not in cols:
            raise InvalidInputError(
                f"the entity rows have no time column {timestamp!r} (columns: {', '.join(cols)}); pass timestamp=",
                column=timestamp,
            )
        for part in plan.views.values():
            missing = [k for k in part.spec["join_keys"] if k not in cols]
            if missing:
                raise InvalidInputError(
                    f"the entity rows lack join key column(s) {missing} of view {part.name!r} (columns: {', '.join(cols)})",
                    view=part.name, columns=missing,
                )
            for k in part.spec["join_keys"]:
                have, want = entities.schema.field(k).type, part.spec.get("key_types", {}).get(k, "")
                if _is_text(have) != want.upper().startswith(("VARCHAR", "ENUM")) and not pa.types.is_null(have):
                    raise InvalidInputError(
                        f"entity column {k!r} holds {have} but view {part.name!r} keys it as {want}; "
                        f"convert the column first (e.g. df[{k!r}].astype(...))",
                        view=part.name, column=k,
                    )
        clash = sorted({o.out for o in plan.outputs} & set(cols))
        if clash:
            raise InvalidInputError(
                f"feature column(s) {clash} clash with entity columns of the same name; rename them or pass full_names=True",
                columns=clash,
            )
        for spec in plan.on_demand:
            for inp in spec["inputs"]:
                if ":" not in inp and inp not in cols:
                    raise InvalidInputError(
                        f"on-demand feature {spec['name']!r} needs request field {inp!r}, which the entity rows lack",
                        feature=spec["name"], field=inp,
                    )
        # view columns are read under internal names, so hidden inputs and renamed outputs cannot collide
        joins: list[ViewJoin] = []
        internal: dict[tuple[str, str], str] = {}
        lineage: list[str] = []
        for i, part in enumerate(plan.views.values()):
            source = resolve_source(part.spec["source"], self.backend, self.settings.project_dir)
            dtypes = {f["name"]: f["dtype"] for f in part.spec["features"]}
            feats = []
            for j, f in enumerate(part.features):
                internal[(part.name, f)] = f"__loopml_v{i}_f{j}"
                feats.append((f, internal[(part.name, f)], DTYPES[dtypes[f]]))
            joins.append(ViewJoin(source, tuple(part.spec["join_keys"]),
                                  (part.spec["timestamp"], part.spec["timestamp_type"]), tuple(feats),
                                  part.spec.get("ttl_us")))
            lineage.append(f"{part.name} v{part.version} ({source.lineage})")
        con = self._con()
        try:
            joined = point_in_time_join(con, entities, timestamp, joins)
        finally:
            con.close()
        computed: dict[str, pa.Array] = {}
        for spec in plan.on_demand:
            inputs: dict[str, Any] = {}
            for inp in spec["inputs"]:
                view, sep, feat = inp.partition(":")
                column = internal[(view.partition("@")[0], feat)] if sep else inp
                inputs[feat if sep else inp] = joined.column(column).to_pandas()
            computed[spec["name"]] = self._run_on_demand(spec, pd.DataFrame(inputs))
        arrays = [joined.column(c) for c in cols]
        names = list(cols)
        for o in plan.outputs:
            arrays.append(computed[o.feature] if o.view is None else joined.column(internal[(o.view, o.feature)]))
            names.append(o.out)
        result = pa.Table.from_arrays(arrays, names=names)
        if register_as is not None:
            result = self._register(result, register_as, plan, lineage)
        return result

    def _register(self, table: pa.Table, name: str, plan: Plan, lineage: builtins.list[str]) -> pa.Table:
        from loopml.data import get_data

        views = ", ".join(f"{p.name}@{p.version}" for p in plan.views.values())
        odf = [s["name"] for s in plan.on_demand]
        source = "loopml.features training set: " + "; ".join(lineage) + (f"; on-demand: {', '.join(odf)}" if odf else "")
        description = (f"point-in-time training set of {table.num_rows} entity rows; features "
                       f"{', '.join(o.ref for o in plan.outputs)} from views {views or '-'}")
        dv = get_data(self.settings).register(
            name, table, source=source, description=description,
            tags={"feature_views": views, "features": ",".join(o.ref for o in plan.outputs)},
        ).version
        logger.info("registered training set %s", dv.uri, extra={"dataset": name, "version": dv.version})
        meta = dict(table.schema.metadata or {})
        meta[b"loopml.dataset"] = dv.uri.encode()
        return table.replace_schema_metadata(meta)

    # -- materialization -------------------------------------------------------------------

    def materialize(self, *, end: datetime | None = None, views: Sequence[str] | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
        """Write each view's latest value per entity, as of ``end``, to the online store — incrementally.

        Only source rows after the view's watermark (the newest event time
        processed) are read, plus newly arrived parquet files in full; only
        entities whose row changed are written. See :mod:`loopml.features._materialize`
        for the exact rule on late-arriving data and full rebuilds.

        Args:
            end: the time to materialize as of (default: now, UTC; naive datetimes are UTC).
            views: view names (default: every view).
            progress: called with (view, rows written, rows to write) while writing.

        Returns:
            ``{"end": iso, "views": [per-view counts], "written": n, "deleted": n, "seconds": s}``;
            per view: mode (full/incremental) and why, rows_scanned, entities, written, deleted,
            unchanged, watermark.

        Raises:
            NotFoundError: an unknown view.
        """
        started = time.perf_counter()
        end_us = _to_us(end, "end") if end is not None else _to_us(datetime.now(UTC), "end")
        defs = self._definitions(fresh=True)
        names = sorted(n for k, n in defs if k == "view") if views is None else list(views)
        for n in names:
            if ("view", n) not in defs:
                raise not_found("view", n, defs)
        results = []
        con = self._con()
        try:
            for n in names:
                res = materialize_view(con=con, repo=self.repo, online=self.online, backend=self.backend,
                                       project_dir=self.settings.project_dir, row=defs[("view", n)], end_us=end_us, progress=progress)
                logger.info("materialized %s: %s, %d written, %d deleted", n, res["mode"], res["written"],
                            res["deleted"], extra={"view": n})
                results.append(res)
        finally:
            con.close()
        return {
            "end": us_to_iso(end_us), "store": self.online.identity, "views": results,
            "written": sum(r["written"] for r in results), "deleted": sum(r["deleted"] for r in results),
            "seconds": round(time.perf_counter() - started, 4),
        }

    # -- online ------------------------------------------------------------------------------

    def _online_plan(self, features: Sequence[str], full_names: bool) -> Plan:
        key = (tuple(features), full_names)
        plan = self._plans.get(key)
        now = time.monotonic()
        if plan is None or now - plan.built_at >= DEFINITIONS_REFRESH_S:
            plan = plan_features(features, full_names, self._definitions(), self._row)
            for part in plan.views.values():
                plan.encoders[part.name] = _batch_encoder(part.name, part.spec)
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()  # callers that build feature lists on the fly must not grow this forever
            self._plans[key] = plan
        return plan

    def get_online_features(
        self,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        features: Sequence[str],
        *,
        full_names: bool = False,
    ) -> dict[str, builtins.list[Any]]:
        """The materialized feature values of each entity, for serving.

        Args:
            entity_rows: one mapping per entity (join keys, and request fields for
                on-demand features), or a mapping of columns.
            features: as for :meth:`get_training_set`.
            full_names: key the result ``view__feature`` instead of ``feature``.

        Returns:
            One list per requested feature (the same names as training-set columns), one value per
            entity row, in order; None for unknown entities and missing values. One online-store
            query per view, whatever the number of entities.

        Raises:
            NotFoundError: an unknown view or feature.
            InvalidInputError: an entity row lacks a join key or request field.
        """
        if isinstance(features, str):
            features = [features]
        plan = self._online_plan(features, full_names)
        columns: Mapping[str, Sequence[Any]]
        if isinstance(entity_rows, Mapping):
            columns = entity_rows
            lengths = {len(v) for v in columns.values()}
            if len(lengths) > 1:
                raise InvalidInputError(f"entity columns have different lengths: {sorted(lengths)}")
            n = lengths.pop() if lengths else 0

            def column(name: str) -> Sequence[Any]:
                values = columns.get(name)
                if values is None:
                    raise InvalidInputError(f"the entity rows have no {name!r} (given: {', '.join(columns)})", field=name)
                return values
        else:
            rows = entity_rows
            n = len(rows)

            def column(name: str) -> Sequence[Any]:
                try:
                    return [r[name] for r in rows]
                except KeyError:
                    raise InvalidInputError(f"an entity row has no {name!r} (rows: {dict(next(r for r in rows if name not in r))})",
                                            field=name) from None
        fetched: dict[str, builtins.list[dict[str, Any] | None]] = {}
        online = self.online
        for part in plan.views.values():
            encoded = plan.encoders[part.name]([column(k) for k in part.spec["join_keys"]])
            present = [k for k in encoded if k is not None]
            found = online.read_rows(part.name, present) if present else []
            if len(present) == n:
                fetched[part.name] = found
            else:
                it = iter(found)
                fetched[part.name] = [None if k is None else next(it) for k in encoded]
        out: dict[str, builtins.list[Any]] = {}
        computed: dict[str, builtins.list[Any]] = {}
        for spec in plan.on_demand:
            import pandas as pd

            data: dict[str, Any] = {}
            for inp in spec["inputs"]:
                view, sep, feat = inp.partition(":")
                if sep:
                    got = fetched[view.partition("@")[0]]
                    data[feat] = pd.Series([None if r is None else r.get(feat) for r in got], dtype="object")
                else:
                    data[inp] = list(column(inp))
            frame = pd.DataFrame(data)
            frame = frame.infer_objects()
            computed[spec["name"]] = self._run_on_demand(spec, frame).to_pylist()
        for o in plan.outputs:
            if o.view is None:
                out[o.out] = computed[o.feature]
            else:
                f = o.feature
                out[o.out] = [None if r is None else r.get(f) for r in fetched[o.view]]
        return out

    # -- skew ---------------------------------------------------------------------------------

    def check_skew(self, view: str, *, sample: int = 1000, at: datetime | None = None,
                   tolerance: float = 1e-9) -> dict[str, Any]:
        """Compare online values with the offline (point-in-time) values of a sample of entities.

        Args:
            view: the view.
            sample: how many entities to compare (a random sample of those with rows at or before ``at``).
            at: the time to compare at (default: the end of the view's last materialization,
                which is what the online store holds).
            tolerance: relative tolerance for floats.

        Returns:
            view, version, at, entities, compared values, ``mismatched`` count, ``missing_online``
            (entities with offline values but no online row), and ``mismatches``: up to 100
            ``{entity, feature, offline, online}``.

        Raises:
            NotFoundError: an unknown view.
            ConflictError: the view was never materialized to this online store and no ``at`` was given.
        """
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise InvalidInputError(f"sample must be a positive integer, got {sample!r}")
        row = self._row("view", view)
        spec, name = row["spec"], row["spec"]["name"]
        if at is None:
            state = self.repo.get_state(name, self.online.identity)
            if state is None:
                raise ConflictError(
                    f"view {name!r} has not been materialized to {self.online.identity}; run "
                    f"`loopml features materialize --view {name}` first, or pass at=",
                    view=name,
                )
            at_us = int(state["end_us"])
        else:
            at_us = _to_us(at, "at")
        source = resolve_source(spec["source"], self.backend, self.settings.project_dir)
        con = self._con()
        try:
            return compare_online_offline(con=con, online=self.online, source=source, spec=spec,
                                          version=int(row["version"]), at_us=at_us, sample=sample, tolerance=tolerance)
        finally:
            con.close()

    # -- listing (kept last: the method name shadows the builtin in the class body) ----------------

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every definition's latest version: kind, name, version, versions, created_at, description, summary."""
        out = []
        states = {s["view"]: s for s in self.repo.states(self.online.identity)}
        for r in self._definitions(fresh=True).values():
            spec = r["spec"]
            item: dict[str, Any] = {"kind": r["kind"], "name": r["name"], "version": r["version"],
                                    "versions": r.get("versions", r["version"]), "created_at": r["created_at"],
                                    "description": spec.get("description", "")}
            if r["kind"] == "entity":
                item["join_keys"] = spec["join_keys"]
            elif r["kind"] == "view":
                item.update(entities=spec["entities"], join_keys=spec["join_keys"], source=spec["source"],
                            features=[f["name"] for f in spec["features"]], ttl_us=spec.get("ttl_us"))
                st = states.get(r["name"])
                item["materialized_until"] = us_to_iso(st["end_us"]) if st else None
            else:
                item.update(inputs=spec["inputs"], dtype=spec["dtype"])
            out.append(item)
        order = {"entity": 0, "view": 1, "on_demand": 2}
        return sorted(out, key=lambda i: (order[i["kind"]], i["name"]))


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _batch_encoder(view: str, spec: dict[str, Any]) -> Callable[[builtins.list[Sequence[Any]]], builtins.list[str | None]]:
    """Online-store keys for columns of join-key values (one column per join key)."""
    keys: builtins.list[str] = spec["join_keys"]
    types: dict[str, str] = spec.get("key_types", {})
    if len(keys) == 1:
        one = value_encoder(view, keys[0], types.get(keys[0], "VARCHAR"))
        return lambda cols: [one(v) for v in cols[0]]
    many = key_encoder(view, keys, types)
    return lambda cols: [many(values) for values in zip(*cols, strict=True)]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

