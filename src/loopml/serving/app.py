"""The prediction server: an ASGI app serving one deployment (or one model URI).

Endpoints
---------
* ``POST /invocations`` — MLflow's scoring protocol (``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``, CSV).
* Open Inference Protocol (V2): ``GET /v2/health/live``, ``GET /v2/health/ready``,
  ``GET /v2``, ``GET /v2/models/{name}``, ``GET /v2/models/{name}/ready``,
  ``POST /v2/models/{name}/infer``.
* ``POST /feedback`` — ground-truth labels for earlier requests, by request id.
* ``GET /metrics`` — Prometheus.
* ``GET /admin/deployment``, ``POST /admin/deployment/{action}`` — read and change
  the deployment (``admin`` role).
* ``GET /ping``, ``GET /health`` — liveness, as MLflow's server has them.

Every request gets an id (the client's ``X-Request-ID`` if it sent one), returned
in the ``X-Request-ID`` header and recorded in the prediction log with its
inputs, outputs, model version and latency.

Live changes
------------
The server polls the deployment's revision (and, for a model URI with an
alias, what the alias points at) every ``poll_interval`` seconds. A change is
applied by loading any new model version in a worker thread, then swapping one
reference: requests in flight finish on the configuration they started with,
new requests get the new one. Nothing restarts and no request is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from loopml.config import Settings
from loopml.core import now_ms
from loopml.errors import HTTP_STATUS, InvalidInputError, LoopmlError, NotFoundError
from loopml.serving.batching import BatchConfig, MicroBatcher
from loopml.serving.enrich import FeatureEnricher
from loopml.serving.metrics import CONTENT_TYPE, ServingMetrics
from loopml.serving.payload import Input, encode, parse_invocation, parse_v2, prediction_list, read_rows
from loopml.serving.predictor import ServedModel

if TYPE_CHECKING:
    from loopml.data.schema import Schema
    from loopml.serving.auth import KeyService
    from loopml.serving.deployments import Deployment
    from loopml.serving.gate import SchemaGate
    from loopml.serving.predlog import PredictionLog

__all__ = ["ServeOptions", "ServingState", "create_app"]

logger = logging.getLogger(__name__)

_JSON = "application/json"
_MAX_DRAIN_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ServeOptions:
    """How the server behaves.

    Attributes:
        open_mode: no API key needed (local use); otherwise every call but health and metrics needs one.
        max_body_bytes: larger request bodies get 413.
        max_rows: more rows in one request get 400 (score files with ``loopml batch``).
        batch: micro-batching settings.
        log_predictions: write the prediction log.
        flush_interval: seconds between prediction-log flushes (the crash-loss window).
        poll_interval: seconds between checks for deployment changes.
        data_schema: also refuse requests whose values break this data schema (ranges,
            categories, nulls); see :mod:`loopml.serving.gate`.
        features: online features (``view:feature``) to add to requests that carry entity keys
            (a deployment declares its own with ``loopml deploy features``).
    """

    open_mode: bool = False
    max_body_bytes: int = 10 * 1024 * 1024
    max_rows: int = 100_000
    batch: BatchConfig = field(default_factory=BatchConfig)
    log_predictions: bool = True
    flush_interval: float = 1.0
    poll_interval: float = 0.25
    data_schema: Schema | None = None
    features: tuple[str, ...] = ()


class _Http(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Served:
    """A variant being served: its configuration, model and batcher."""

    name: str
    role: str
    weight: float
    model: ServedModel
    batcher: MicroBatcher


@dataclass(frozen=True)
class _Router:
    """One configuration of the deployment: who answers, who shadows. Never mutated; swapped whole."""

    name: str
    revision: int
    live: tuple[_Served, ...]
    cumulative: tuple[float, ...]
    shadows: tuple[_Served, ...]
    standby: tuple[_Served, ...]
    sticky_header: str | None
    source: str  # a deployment name, or the model URI served
    enricher: FeatureEnricher | None = None

    def pick(self, headers: Mapping[str, str], request_id: str) -> _Served:
        if len(self.live) == 1:
            return self.live[0]
        key = headers.get(self.sticky_header.lower()) if self.sticky_header else None
        seed = key if key is not None else request_id
        point = int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=8).digest(), "big") / 2**64 * 100.0
        for served, upper in zip(self.live, self.cumulative, strict=True):
            if point < upper:
                return served
        return self.live[-1]

    def find(self, name: str) -> _Served | None:
        for s in (*self.live, *self.shadows, *self.standby):
            if s.name == name or s.model.name == name:
                return s
        return None


class ServingState:
    """What the app needs: the project, the current router, the models, the log, the metrics, the keys."""

    def __init__(self, settings: Settings, *, deployment: str | None = None, model_uri: str | None = None,
                 options: ServeOptions | None = None) -> None:
        if (deployment is None) == (model_uri is None):
            raise InvalidInputError("serve either a deployment (--deployment NAME) or a model URI, not both")
        self.settings = settings
        self.deployment = deployment
        self.model_uri = model_uri
        self.options = options or ServeOptions()
        self.metrics = ServingMetrics()
        self.router: _Router | None = None
        self._models: dict[tuple[str, int], _Served] = {}
        self._in_flight = 0
        self.predlog: PredictionLog | None = None
        self.keys: KeyService | None = None
        self.gate: SchemaGate | None = None
        if self.options.data_schema is not None:
            from loopml.serving.gate import SchemaGate

            self.gate = SchemaGate(self.options.data_schema)
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.started_at = time.time()

    # -- building configurations --------------------------------------------------------

    def _served(self, variant_name: str, role: str, weight: float, model: str, version: int) -> _Served:
        from loopml.registry import get_registry

        cached = self._models.get((model, version))
        if cached is None:
            loaded = get_registry(self.settings).load(f"models:/{model}/{version}")
            sm = ServedModel(loaded)
            labels = {"model": model, "version": str(version)}
            m = self.metrics

            def on_batch(rows: int, requests: int, seconds: float, labels: dict[str, str] = labels) -> None:
                m.batch_rows.labels(**labels).observe(rows)
                m.batch_requests.labels(**labels).observe(requests)
                m.predict_seconds.labels(**labels).observe(seconds)

            batcher = MicroBatcher(sm, self.options.batch, on_batch=on_batch, in_flight=lambda: self._in_flight)
            cached = self._models[(model, version)] = _Served(variant_name, role, weight, sm, batcher)
        return _Served(variant_name, role, weight, cached.model, cached.batcher)

    def _router_for(self, name: str, revision: int, variants: list[tuple[str, str, float, str, int]],
                    sticky_header: str | None, source: str, features: Sequence[str] = ()) -> _Router:
        served = [self._served(*v) for v in variants]
        live = tuple(s for s in served if s.role == "live")
        if not live:
            raise InvalidInputError(f"deployment {name!r} has no live variant")
        total = sum(s.weight for s in live) or 1.0
        acc, cumulative = 0.0, []
        for s in live:
            acc += s.weight / total * 100.0
            cumulative.append(acc)
        cumulative[-1] = 100.0
        return _Router(name=name, revision=revision, live=live, cumulative=tuple(cumulative),
                       shadows=tuple(s for s in served if s.role == "shadow"),
                       standby=tuple(s for s in served if s.role == "standby"),
                       sticky_header=sticky_header, source=source,
                       enricher=FeatureEnricher(self.settings, features) if features else None)

    def _from_deployment(self, dep: Deployment) -> _Router:
        variants = [(v.name, v.role, float(v.weight), v.model, int(v.version)) for v in dep.variants]
        return self._router_for(dep.name, dep.revision, variants, dep.sticky_header, dep.name, dep.features)

    def _from_uri(self) -> _Router:
        from loopml.registry import get_registry

        assert self.model_uri is not None
        mv = get_registry(self.settings).resolve(self.model_uri)
        return self._router_for(mv.name, mv.version, [("primary", "live", 100.0, mv.name, mv.version)], None,
                                self.model_uri, self.options.features)

    def load(self) -> _Router:
        """Build and install the router for the current configuration (loads models; blocking)."""
        router = self._build()
        self._install(router)
        return router

    def _install(self, router: _Router) -> None:
        old = self.router
        self.router = router
        m = self.metrics
        m.model_info.clear()
        for s in (*router.live, *router.shadows, *router.standby):
            m.model_info.labels(router.name, s.name, s.model.name, str(s.model.version), s.role,
                                f"{s.weight:g}").set(1)
        m.revision.labels(router.name).set(router.revision)
        if old is not None and old.revision != router.revision:
            logger.info("deployment %s: now serving revision %d (%s)", router.name, router.revision,
                        ", ".join(f"{s.name}={s.model.uri}@{s.weight:g}%" for s in router.live))
        keep = {(s.model.name, s.model.version) for s in (*router.live, *router.shadows, *router.standby)}
        for key in [k for k in self._models if k not in keep]:
            self._models.pop(key).batcher.close()  # requests in flight keep their references

    def _changed(self) -> bool:
        router = self.router
        if router is None:
            return True
        if self.deployment is not None:
            from loopml.serving.deployments import get_deployments

            return get_deployments(self.settings).revision(self.deployment) != router.revision
        from loopml.registry import get_registry

        assert self.model_uri is not None
        return get_registry(self.settings).resolve(self.model_uri).version != router.revision

    async def refresh(self) -> bool:
        """Apply a configuration change if there is one; True when the router changed."""
        if not await asyncio.to_thread(self._changed):
            return False
        router = await asyncio.to_thread(self._build)
        self._install(router)
        return True

    def _build(self) -> _Router:
        """The router for the current configuration (a deployment's, or the model URI's)."""
        if self.deployment is not None:
            from loopml.serving.deployments import get_deployments

            return self._from_deployment(get_deployments(self.settings).get(self.deployment))
        return self._from_uri()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep serving the configuration we have
                logger.warning("deployment refresh failed, still serving revision %s: %s",
                               self.router.revision if self.router else "-", e)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        from loopml.storage import get_backend

        if self.router is None:
            await asyncio.to_thread(self.load)
        if not self.options.open_mode:
            from loopml.serving.auth import get_keys

            self.keys = get_keys(self.settings)
        if self.options.log_predictions and self.predlog is None:
            from loopml.serving.predlog import PredictionLog

            self.predlog = PredictionLog(get_backend(self.settings).blobs, flush_interval=self.options.flush_interval)
            self.predlog.start()
            self.metrics.watch_log(self.predlog)
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.predlog is not None:
            await asyncio.to_thread(self.predlog.close)
        for s in self._models.values():
            s.batcher.close()

    # -- per request -----------------------------------------------------------------------

    def authorize(self, request: Request, role: str) -> None:
        if self.keys is None:
            return
        from loopml.serving.auth import key_from_headers

        self.keys.verify(key_from_headers(request.headers), role)

    def current(self) -> _Router:
        router = self.router
        if router is None:
            raise _Http(503, "NOT_READY", "the model is still loading; retry in a moment")
        return router

    def track(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def shadow(self, router: _Router, body: bytes, content_type: str | None, request_id: str,
                     live: np.ndarray, parse: Callable[[ServedModel], Input]) -> None:
        """Send a copy of the request to every shadow variant; log and compare, never answer."""
        for s in router.shadows:
            started = time.perf_counter()
            try:
                x = parse(s.model)
                y = await s.batcher.predict(x)
            except Exception as e:
                self.metrics.shadow_rows.labels(router.name, s.name, "error").inc()
                logger.debug("shadow %s failed on request %s: %s", s.model.uri, request_id, e)
                continue
            latency = (time.perf_counter() - started) * 1000
            same = _agree(live, y)
            self.metrics.shadow_rows.labels(router.name, s.name, "agree").inc(int(same.sum()))
            self.metrics.shadow_rows.labels(router.name, s.name, "disagree").inc(int(len(same) - same.sum()))
            self.metrics.predictions.labels(router.name, s.name, s.model.name, str(s.model.version), "shadow").inc(x.n)
            if self.predlog is not None:
                self.predlog.log(deployment=router.name, variant=s.name, role="shadow", model=s.model.name,
                                 version=s.model.version, request_id=request_id, ts_ms=now_ms(), latency_ms=latency,
                                 x=x, y=y)


def _agree(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        return np.zeros(len(a), dtype=bool)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        same = np.asarray(np.isclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-9), dtype=bool)
    else:
        same = np.asarray(a == b, dtype=bool)
    return np.asarray(same.reshape(len(a), -1).all(axis=1), dtype=bool)


# -- the app -----------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, request_id: str | None = None,
           extra: Mapping[str, Any] | None = None) -> Response:
    headers = {"x-request-id": request_id} if request_id else None
    body: dict[str, Any] = {"error_code": code, "message": message}
    if extra:
        body.update(extra)
    return Response(encode(body), status_code=status, media_type=_JSON, headers=headers)


def _status_of(e: LoopmlError) -> int:
    status = HTTP_STATUS.get(e.code)
    if status is not None and status < 500:
        return status
    if e.code == "MODEL_PREDICT_FAILED" or e.code == "SIGNATURE_MISMATCH":
        return 422
    if isinstance(e, InvalidInputError):
        return 400
    if isinstance(e, NotFoundError):
        return 404
    return status or 500


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise _Http(400, "INVALID_INPUT", f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            drained = 0
            async for chunk in request.stream():  # read it, so the client gets the answer instead of a reset
                drained += len(chunk)
                if drained > _MAX_DRAIN_BYTES:
                    break
            raise _Http(413, "PAYLOAD_TOO_LARGE",
                        f"the request body is {size} bytes; the limit is {limit} bytes (--max-body-mb)")
        return await request.body()
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _Http(413, "PAYLOAD_TOO_LARGE", f"the request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_INVOCATION_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {
                "type": "object",
                "description": "One of dataframe_split, dataframe_records, instances or inputs.",
                "properties": {
                    "dataframe_split": {"type": "object", "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "items": {"type": "array", "items": {}}}}},
                    "dataframe_records": {"type": "array", "items": {"type": "object"}},
                    "instances": {"type": "array", "items": {}},
                    "inputs": {},
                },
            }},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
    "responses": {
        "200": {"description": "Predictions", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"predictions": {"type": "array", "items": {}}}}}}},
        "400": {"description": "Malformed request"},
        "401": {"description": "Missing or wrong API key"},
        "403": {"description": "The key lacks the predict role"},
        "413": {"description": "Body too large"},
        "422": {"description": "The input does not fit the model's signature"},
    },
}

_V2_SCHEMA = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype", "data"],
                                                  "properties": {"name": {"type": "string"},
                                                                 "shape": {"type": "array", "items": {"type": "integer"}},
                                                                 "datatype": {"type": "string"},
                                                                 "data": {"type": "array", "items": {}}}}},
        },
    }}}},
    "responses": {"200": {"description": "Outputs"}, "400": {"description": "Malformed request"},
                  "404": {"description": "Unknown model"}, "422": {"description": "Input does not fit"}},
}

_FEEDBACK_SCHEMA = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [
            {"$ref": "#/components/schemas/Feedback"},
            {"type": "array", "items": {"$ref": "#/components/schemas/Feedback"}},
        ],
    }}}},
    "responses": {"200": {"description": "Stored"}, "400": {"description": "Malformed"}},
}

_ADMIN_SCHEMA = {
    "requestBody": {"required": False, "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"model": {"type": "string"}, "weight": {"type": "number"},
                       "sticky_header": {"type": "string"}, "steps": {"type": "integer"}},
    }}}},
    "responses": {"200": {"description": "The deployment after the change"}, "400": {"description": "Bad change"},
                  "401": {"description": "Missing or wrong API key"}, "403": {"description": "Not an admin key"}},
}

#: endpoints whose failed requests go to the prediction log's error stream (the error rate)
_LOGGED_ERRORS = ("invocations", "v2_infer")


_ADMIN_ACTIONS = ("update", "canary", "weight", "shadow", "stage", "switch", "promote", "remove-challenger",
                  "rollback")


_Handler = Callable[[Request], Awaitable[Response]]


def create_app(state: ServingState) -> Starlette:
    """The ASGI app over ``state`` (its lifespan starts and stops the state).

    Plain Starlette routes (FastAPI's foundation) rather than FastAPI: the
    hot path parses its own bodies, so FastAPI's per-request dependency
    resolution and its pydantic import (a fifth of a second of cold start)
    would buy nothing. The OpenAPI document at ``/openapi.json`` is built from
    the route table below; ``/docs`` renders it with Swagger UI.
    """
    from loopml import __version__

    routes: list[Route] = []
    paths: dict[str, dict[str, Any]] = {}

    def route(method: str, path: str, tag: str, spec: Mapping[str, Any] | None = None) -> Callable[[_Handler], _Handler]:
        def register(handler: _Handler) -> _Handler:
            routes.append(Route(path, handler, methods=[method]))
            op: dict[str, Any] = {"tags": [tag], "operationId": handler.__name__,
                                  "summary": (handler.__doc__ or handler.__name__).strip().split("\n")[0],
                                  "responses": {"200": {"description": "OK"}}}
            op.update(spec or {})
            params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
            if params:
                op["parameters"] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                    for n in params]
            paths.setdefault(path, {})[method.lower()] = op
            return handler

        return register

    metrics = state.metrics
    opts = state.options

    async def guarded(endpoint: str, request: Request, role: str | None,
                      handler: Callable[[str], Awaitable[Response]]) -> Response:
        """Auth, request id, error mapping, metrics and the in-flight count around a handler."""
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        if len(request_id) > 128:
            request_id = uuid.uuid4().hex
        router = state.router
        deployment = router.name if router is not None else (state.deployment or "-")
        state._in_flight += 1
        metrics.in_flight.inc()
        error_code: str | None = None
        try:
            if role is not None:
                state.authorize(request, role)
            response = await handler(request_id)
        except _Http as e:
            error_code = e.code
            response = _error(e.status, e.code, e.message, request_id)
        except LoopmlError as e:
            extra = {"problems": e.details["problems"]} if isinstance(e.details.get("problems"), list) else None
            error_code = e.code
            response = _error(_status_of(e), e.code, e.message, request_id, extra)
        except Exception as e:  # a bug: say so without a traceback, log it with one
            logger.exception("request %s to %s failed", request_id, endpoint)
            error_code = "INTERNAL_ERROR"
            response = _error(500, error_code, f"internal error ({type(e).__name__}); request id {request_id}",
                              request_id)
        finally:
            state._in_flight -= 1
            metrics.in_flight.dec()
        elapsed = time.perf_counter() - started
        status = response.status_code
        metrics.requests.labels(deployment, endpoint, str(status)).inc()
        metrics.latency.labels(deployment, endpoint).observe(elapsed)
        if error_code is not None:
            metrics.errors.labels(deployment, endpoint, error_code).inc()
            if endpoint in _LOGGED_ERRORS and state.predlog is not None and status not in (401, 403):
                state.predlog.error(deployment=deployment, request_id=request_id, ts_ms=now_ms(), endpoint=endpoint,
                                    status=status, error_code=error_code, latency_ms=elapsed * 1000)
        return response

    async def predict(router: _Router, served: _Served, x: Input, request_id: str, started: float) -> np.ndarray:
        if state.gate is not None:
            state.gate.check(x, model=served.model.uri)
        y = await served.batcher.predict(x)
        latency = (time.perf_counter() - started) * 1000
        metrics.predictions.labels(router.name, served.name, served.model.name, str(served.model.version),
                                   "live").inc(x.n)
        if state.predlog is not None:
            state.predlog.log(deployment=router.name, variant=served.name, role="live", model=served.model.name,
                              version=served.model.version, request_id=request_id, ts_ms=now_ms(), latency_ms=latency,
                              x=x, y=y)
        return y

    def answer(payload: Mapping[str, Any], request_id: str, served: _Served) -> Response:
        return Response(encode(payload), media_type=_JSON,
                        headers={"x-request-id": request_id, "x-loopml-model": served.model.uri,
                                 "x-loopml-variant": served.name})

    @route("POST", "/invocations", "predict", _INVOCATION_SCHEMA)
    async def invocations(request: Request) -> Response:
        """Predict (MLflow scoring protocol)."""
        started = time.perf_counter()

        async def handle(request_id: str) -> Response:
            body = await _read_body(request, opts.max_body_bytes)
            router = state.current()
            served = router.pick(request.headers, request_id)
            ctype = request.headers.get("content-type")
            sm = served.model
            if router.enricher is not None:
                cols, rows = read_rows(body, ctype)
                x = router.enricher.enrich(cols, rows, sm.spec, sm.signature, model=sm.uri, max_rows=opts.max_rows)
            else:
                x = parse_invocation(body, ctype, sm.spec, sm.signature, model=sm.uri, max_rows=opts.max_rows)
            y = await predict(router, served, x, request_id, started)
            if router.shadows:
                def parse(m: ServedModel) -> Input:
                    if m.spec == sm.spec or router.enricher is not None:
                        return x
                    return parse_invocation(body, ctype, m.spec, m.signature, model=m.uri, max_rows=opts.max_rows)

                state.track(asyncio.get_running_loop().create_task(
                    state.shadow(router, body, ctype, request_id, y, parse)))
            return answer({"predictions": prediction_list(y)}, request_id, served)

        return await guarded("invocations", request, "predict", handle)

    # -- Open Inference Protocol (V2) ---------------------------------------------------------

    def _v2_model(router: _Router, name: str) -> _Served:
        if name in (router.name, router.source):
            return router.live[0]
        found = router.find(name)
        if found is None:
            known = sorted({router.name, *(s.name for s in router.live), *(s.model.name for s in router.live)})
            raise _Http(404, "MODEL_NOT_FOUND", f"this server has no model {name!r}; it serves {', '.join(known)}")
        return found

    def _v2_metadata(router: _Router, served: _Served, name: str) -> dict[str, Any]:
        spec = served.model.spec
        inputs = [{"name": c, "datatype": _V2_TYPES.get(k, "BYTES"), "shape": [-1]}
                  for c, k in zip(spec.columns, spec.kinds, strict=True)] if spec else []
        sig = served.model.signature
        out_type = _V2_TYPES.get(sig.output_dtype or "", "BYTES") if sig else "BYTES"
        return {"name": name, "versions": [str(served.model.version)], "platform": f"loopml-{served.model.loaded.flavor.name}",
                "inputs": inputs, "outputs": [{"name": "predict", "datatype": out_type, "shape": [-1]}],
                "parameters": {"model_uri": served.model.uri, "deployment": router.name,
                               "revision": router.revision}}

    @route("GET", "/v2/health/live", "health")
    async def v2_live(request: Request) -> Response:
        return Response(b'{"live":true}', media_type=_JSON)

    @route("GET", "/v2/health/ready", "health")
    async def v2_ready(request: Request) -> Response:
        if state.router is None:
            return Response(b'{"ready":false}', status_code=503, media_type=_JSON)
        return Response(b'{"ready":true}', media_type=_JSON)

    @route("GET", "/ping", "health")
    async def ping(request: Request) -> Response:
        return Response(b"\n", media_type=_JSON)

    @route("GET", "/health", "health")
    async def health(request: Request) -> Response:
        return await v2_ready(request)

    @route("GET", "/version", "health")
    async def version(request: Request) -> Response:
        return Response(encode({"loopml": __version__}), media_type=_JSON)

    @route("GET", "/v2", "v2")
    async def v2_server(request: Request) -> Response:
        async def handle(request_id: str) -> Response:
            return Response(encode({"name": "loopml", "version": __version__, "extensions": []}), media_type=_JSON)

        return await guarded("v2_metadata", request, "predict", handle)

    @route("GET", "/v2/models/{name}", "v2")
    async def v2_model(request: Request) -> Response:
        name = request.path_params["name"]

        async def handle(request_id: str) -> Response:
            router = state.current()
            return Response(encode(_v2_metadata(router, _v2_model(router, name), name)), media_type=_JSON)

        return await guarded("v2_metadata", request, "predict", handle)

    @route("GET", "/v2/models/{name}/ready", "v2")
    async def v2_model_ready(request: Request) -> Response:
        name = request.path_params["name"]

        async def handle(request_id: str) -> Response:
            _v2_model(state.current(), name)
            return Response(encode({"name": name, "ready": True}), media_type=_JSON)

        return await guarded("v2_ready", request, "predict", handle)

    @route("POST", "/v2/models/{name}/infer", "v2", _V2_SCHEMA)
    async def v2_infer(request: Request) -> Response:
        name = request.path_params["name"]
        started = time.perf_counter()

        async def handle(request_id: str) -> Response:
            body = await _read_body(request, opts.max_body_bytes)
            router = state.current()
            target = _v2_model(router, name)
            served = router.pick(request.headers, request_id) if name in (router.name, router.source) else target
            sm = served.model
            x, client_id = parse_v2(body, sm.spec, sm.signature, model=sm.uri, max_rows=opts.max_rows)
            y = await predict(router, served, x, request_id, started)
            if router.shadows and served.role == "live":
                state.track(asyncio.get_running_loop().create_task(state.shadow(
                    router, body, None, request_id, y,
                    lambda m: x if m.spec == sm.spec else parse_v2(body, m.spec, m.signature, model=m.uri,
                                                                    max_rows=opts.max_rows)[0])))
            out = prediction_list(y)
            shape = list(np.shape(y))
            payload = {"model_name": name, "model_version": str(sm.version), "id": client_id or request_id,
                       "outputs": [{"name": "predict", "shape": shape,
                                    "datatype": _V2_TYPES.get(_kind(y), "BYTES"),
                                    "data": np.ravel(out) if isinstance(out, np.ndarray) else _flat(out)}]}
            return answer(payload, request_id, served)

        return await guarded("v2_infer", request, "predict", handle)

    # -- feedback, metrics, admin -------------------------------------------------------------

    @route("POST", "/feedback", "predict", _FEEDBACK_SCHEMA)
    async def feedback(request: Request) -> Response:
        """Ground-truth labels for earlier requests: ``{"request_id": ..., "label": ...}`` (or ``labels`` for
        every row of a multi-row request), or a list of such objects."""

        async def handle(request_id: str) -> Response:
            import orjson

            body = await _read_body(request, opts.max_body_bytes)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise InvalidInputError(f"the feedback body is not valid JSON: {e}") from None
            items = payload if isinstance(payload, list) else [payload]
            if not items:
                raise InvalidInputError("the feedback body is an empty list")
            parsed: list[tuple[str, list[Any]]] = []
            for i, item in enumerate(items):
                where = f"feedback[{i}]" if isinstance(payload, list) else "feedback"
                if not isinstance(item, dict):
                    raise InvalidInputError(f"{where} must be an object with 'request_id' and 'label' or 'labels'")
                rid = item.get("request_id")
                if not isinstance(rid, str) or not rid or len(rid) > 128:
                    raise InvalidInputError(f"{where}.request_id must be the X-Request-ID of an earlier prediction")
                if ("label" in item) == ("labels" in item):
                    raise InvalidInputError(f"{where} needs exactly one of 'label' (one row) or 'labels' (a list, "
                                            "one per row of the request)")
                labels = [item["label"]] if "label" in item else item["labels"]
                if not isinstance(labels, list) or not labels:
                    raise InvalidInputError(f"{where}.labels must be a non-empty list")
                bad = next((v for v in labels if not (v is None or isinstance(v, str | int | float | bool))), None)
                if bad is not None:
                    raise InvalidInputError(f"{where}: a label must be a number, a string, a boolean or null, "
                                            f"got {type(bad).__name__}")
                parsed.append((rid, labels))
            router = state.current()
            if state.predlog is None:
                raise _Http(409, "CONFLICT", "this server runs without a prediction log (--no-log); "
                                             "feedback cannot be stored")
            ts = now_ms()
            for rid, labels in parsed:
                state.predlog.feedback(deployment=router.name, request_id=rid, labels=labels, ts_ms=ts)
            return Response(encode({"stored": sum(len(labels) for _, labels in parsed)}), media_type=_JSON,
                            headers={"x-request-id": request_id})

        return await guarded("feedback", request, "predict", handle)

    @route("GET", "/metrics", "health")
    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @route("GET", "/admin/deployment", "admin")
    async def admin_show(request: Request) -> Response:
        async def handle(request_id: str) -> Response:
            router = state.current()
            return Response(encode(_describe(router, state)), media_type=_JSON)

        return await guarded("admin", request, "admin", handle)

    @route("POST", "/admin/deployment/{action}", "admin", _ADMIN_SCHEMA)
    async def admin_change(request: Request) -> Response:
        action = request.path_params["action"]

        async def handle(request_id: str) -> Response:
            import orjson

            if action not in _ADMIN_ACTIONS and action != "reload":
                raise _Http(404, "NOT_FOUND", f"unknown action {action!r}; use one of {', '.join(_ADMIN_ACTIONS)}, reload")
            body = await _read_body(request, 1024 * 1024)
            try:
                params = orjson.loads(body) if body.strip() else {}
            except orjson.JSONDecodeError as e:
                raise InvalidInputError(f"the body is not valid JSON: {e}") from None
            if not isinstance(params, dict):
                raise InvalidInputError("the body must be a JSON object")
            if action != "reload":
                if state.deployment is None:
                    raise _Http(409, "CONFLICT", "this server serves a model URI, not a deployment; start it with "
                                                 "--deployment NAME to change it here")
                await asyncio.to_thread(_apply, state, action, params)
            await state.refresh()
            return Response(encode(_describe(state.current(), state)), media_type=_JSON)

        return await guarded("admin", request, "admin", handle)

    document = {
        "openapi": "3.0.3",
        "info": {"title": "loopml prediction service", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {"Feedback": {
                "type": "object", "required": ["request_id"],
                "properties": {"request_id": {"type": "string"}, "label": {},
                               "labels": {"type": "array", "items": {}}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }
    openapi_bytes = encode(document)

    async def openapi(request: Request) -> Response:
        return Response(openapi_bytes, media_type=_JSON)

    async def docs(request: Request) -> Response:
        from fastapi.openapi.docs import get_swagger_ui_html

        page = get_swagger_ui_html(openapi_url="/openapi.json", title="loopml prediction service")
        return HTMLResponse(bytes(page.body).decode())

    routes += [Route("/openapi.json", openapi, methods=["GET"]), Route("/docs", docs, methods=["GET"])]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    return Starlette(routes=routes, lifespan=lifespan)


_V2_TYPES = {"float": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES", "category": "BYTES",
             "datetime": "BYTES", "object": "BYTES"}


def _kind(y: np.ndarray) -> str:
    return {"f": "float", "i": "integer", "u": "integer", "b": "boolean"}.get(y.dtype.kind, "string")


def _flat(values: Any) -> list[Any]:
    if isinstance(values, list) and values and isinstance(values[0], list):
        return [v for row in values for v in row]
    return list(values) if isinstance(values, list) else [values]


def _describe(router: _Router, state: ServingState) -> dict[str, Any]:
    def one(s: _Served) -> dict[str, Any]:
        return {"variant": s.name, "role": s.role, "weight": s.weight, "model": s.model.uri}

    return {"deployment": router.name, "revision": router.revision, "source": router.source,
            "sticky_header": router.sticky_header,
            "variants": [one(s) for s in (*router.live, *router.shadows, *router.standby)],
            "prediction_log": None if state.predlog is None else {
                "buffered_rows": state.predlog.buffered_rows, "written_rows": state.predlog.rows_written,
                "dropped_rows": state.predlog.dropped, "last_error": state.predlog.last_error}}


def _apply(state: ServingState, action: str, params: dict[str, Any]) -> Deployment:
    from loopml.serving.deployments import get_deployments

    svc = get_deployments(state.settings)
    name = state.deployment
    assert name is not None

    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        value = params.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidInputError(f"action {action!r} needs {key!r} in the body")
        return value

    if action == "update":
        return svc.update(name, need("model", str))
    if action == "canary":
        header = params.get("sticky_header")
        return svc.canary(name, need("model", str), weight=float(need("weight", (int, float))),
                          sticky_header=header if isinstance(header, str) else None)
    if action == "weight":
        return svc.set_weight(name, float(need("weight", (int, float))))
    if action == "shadow":
        return svc.shadow(name, need("model", str))
    if action == "stage":
        return svc.stage(name, need("model", str))
    if action == "switch":
        return svc.switch(name)
    if action == "promote":
        return svc.promote(name)
    if action == "remove-challenger":
        return svc.remove_challenger(name)
    steps = params.get("steps", 1)
    if not isinstance(steps, int) or isinstance(steps, bool):
        raise InvalidInputError("rollback's 'steps' must be an integer")
    return svc.rollback(name, steps)
