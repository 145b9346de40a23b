"""`freshet-serve`: the model server of a serving Deployment.

The operator promotes a model by setting FRESHET_MODEL_VERSION, FRESHET_MODEL_KEY
and FRESHET_MODEL_SHA256 in the pod template; the server downloads the artifact
and unpickles it only if its bytes match that checksum (which lives in
Kubernetes, not in the bucket). Readiness follows the model:

- no model configured yet: ready, reporting `model: none`, so a Deployment can
  become Available before the first model exists;
- configured and loaded: ready;
- configured and still loading, or failed to load: not ready (a rolling update
  then keeps the previous pods serving); the reason is logged and shown by /readyz.

Transient store errors are retried with backoff; a checksum mismatch or an
unreadable artifact is final for this pod.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import urllib3
from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from freshet_contract import env as variables
from freshet_contract import logs
from minio.error import MinioException
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from freshet_trainer import oip
from freshet_trainer.artifact import ArtifactUnreadable, ChecksumMismatch, ModelArtifact
from freshet_trainer.predict import Columns, Predictor, columns_of
from freshet_trainer.store import ObjectNotFound, ObjectStore, StoreConfig, StoreConfigError

log = logging.getLogger("freshet.server")

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_ROWS = 1000
DEFAULT_BODY_TIMEOUT_SECONDS = 30
CLIENT_CLOSED = 499
"""Counted for a request whose client went away before the answer (nginx's code)."""
_RETRY_FIRST_SECONDS = 1.0
_RETRY_MAX_SECONDS = 30.0
_SHUTDOWN_GRACE_SECONDS = 10.0

ModelState = Literal["none", "loading", "loaded", "failed"]


class ServeConfigError(ValueError):
    """The environment does not describe a server that can start."""


@dataclass(frozen=True)
class ModelSource:
    """The model the operator promoted: version, object key and trusted checksum."""

    version: str
    key: str
    sha256: str


@dataclass(frozen=True)
class ServeConfig:
    model: ModelSource | None
    bind: str = "0.0.0.0"  # a pod's own network namespace; FRESHET_BIND narrows it
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    model_name: str = "model"  # its name in the Open Inference Protocol's paths
    body_timeout: float = DEFAULT_BODY_TIMEOUT_SECONDS
    """A request body not complete this long after the headers gets 408: a client that
    sends half a body and waits must not hold a connection (and memory) open."""
    segments: Mapping[str, ModelSource] = field(default_factory=dict)
    """Per-segment models (FRESHET_SEGMENT_MODELS, set by a TrainingPolicySet): a
    request naming a segment (`?segment=`) gets its model; an unknown segment, or
    one without a model yet, gets `model` (the global one)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServeConfig:
        """Read the model and listener settings; a partial model configuration is an error."""
        model = None
        version = env.get(variables.MODEL_VERSION, "").strip()
        if version:
            key = env.get(variables.MODEL_KEY, "").strip()
            sha256 = env.get(variables.MODEL_SHA256, "").strip().lower()
            if not key or not sha256:
                raise ServeConfigError(
                    "FRESHET_MODEL_VERSION is set: FRESHET_MODEL_KEY and FRESHET_MODEL_SHA256 "
                    "are required too"
                )
            model = ModelSource(version=version, key=key, sha256=sha256)
        return cls(
            model=model,
            bind=env.get("FRESHET_BIND") or cls.bind,
            port=_int_env(env, "PORT", cls.port),
            max_body_bytes=_int_env(env, "FRESHET_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            max_rows=_int_env(env, "FRESHET_MAX_ROWS", DEFAULT_MAX_ROWS),
            model_name=env.get("FRESHET_MODEL_NAME", "").strip() or cls.model_name,
            body_timeout=float(
                _int_env(env, "FRESHET_BODY_TIMEOUT_SECONDS", DEFAULT_BODY_TIMEOUT_SECONDS)
            ),
            segments=_segments(env.get(variables.SEGMENT_MODELS, "")),
        )


def _segments(raw: str) -> dict[str, ModelSource]:
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
        return {
            str(name): ModelSource(
                version=str(m["version"]), key=str(m["key"]), sha256=str(m["sha256"]).lower()
            )
            for name, m in doc.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ServeConfigError(
            f"{variables.SEGMENT_MODELS} must be a JSON object of"
            f' {{segment: {{"version", "key", "sha256"}}}}: {error}'
        ) from error


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ServeConfigError(f"{name} must be an integer, got {raw!r}") from error
    if value <= 0:
        raise ServeConfigError(f"{name} must be positive, got {value}")
    return value


class ServerMetrics:
    """The server's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "freshet_server_requests",
            "HTTP requests by route and status code.",
            ["path", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "freshet_server_request_duration_seconds",
            "HTTP request latency by route.",
            ["path"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.predictions = Counter(
            "freshet_server_predictions",
            "Rows predicted, by model version and predicted class (empty for regressors).",
            ["version", "class"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "freshet_server_model_info",
            "The configured model version and checksum (value 1).",
            ["version", "sha256"],
            registry=self.registry,
        )
        self.values: Histogram | None = None
        self.model_loaded = Gauge(
            "freshet_server_model_loaded",
            "1 when the configured model is loaded and serving.",
            registry=self.registry,
        )

    def watch_values(self, artifact: ModelArtifact) -> None:
        """Add the histogram of predicted values for the loaded model, if it has one.

        Regressors: the predicted value, bucketed at the training target's
        quantiles. Binary classifiers: the positive-class probability. Either way
        a shift of the live distribution shows without knowing any label.
        """
        if artifact.classification:
            binary = len(artifact.classes or ()) == 2
            if not binary or not hasattr(artifact.pipeline, "predict_proba"):
                return
            buckets: tuple[float, ...] = tuple(i / 10 for i in range(1, 10))
            what = f"Probability of class {artifact.classes[1]!r}"  # type: ignore[index]
        else:
            buckets = artifact.value_buckets or (-1.0, 0.0, 1.0)
            what = "Predicted value"
        self.values = Histogram(
            "freshet_server_prediction_value",
            f"{what} per predicted row, by model version.",
            ["version"],
            buckets=buckets,
            registry=self.registry,
        )


@dataclass(frozen=True)
class LoadedModel:
    version: str
    artifact: ModelArtifact
    predictor: Predictor


def _load_verified(data: bytes, sha256: str) -> tuple[ModelArtifact, Predictor]:
    """The artifact if its bytes match the checksum, and its request path."""
    model = ModelArtifact.loads_verified(data, sha256)
    return model, Predictor(model)


@dataclass
class ServerState:
    """What the server is serving; changed only by the loader task."""

    config: ServeConfig
    store: ObjectStore | None
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    state: ModelState = "none"
    model: LoadedModel | None = None
    error: str = ""
    segments: dict[str, LoadedModel] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.state in {"none", "loaded"}


STATE = web.AppKey("state", ServerState)


class BadRequest(ValueError):
    """The request body is not a valid prediction request."""


def create_app(config: ServeConfig, store: ObjectStore | None) -> web.Application:
    """The server application; `store` may be None only when no model is configured."""
    if config.model is not None and store is None:
        raise ServeConfigError("a configured model needs an object store")
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_observe])
    server = ServerState(config=config, store=store)
    app[STATE] = server
    if config.model is not None:
        server.state = "loading"
        server.metrics.model_info.labels(config.model.version, config.model.sha256).set(1)
    app.cleanup_ctx.append(_model_loader)
    app.add_routes(
        [
            web.post("/predict", _predict, expect_handler=_expect),
            web.get("/healthz", _healthz),
            web.get("/readyz", _readyz),
            web.get("/metrics", _metrics),
            # The Open Inference Protocol (oip.py).
            web.get("/v2", _v2_server),
            web.get("/v2/health/live", _healthz),
            web.get("/v2/health/ready", _v2_ready),
            web.get("/v2/models/{name}", _v2_model),
            web.get("/v2/models/{name}/ready", _v2_model_ready),
            web.post("/v2/models/{name}/infer", _v2_infer, expect_handler=_expect),
            web.get("/v2/models/{name}/versions/{version}", _v2_model),
            web.get("/v2/models/{name}/versions/{version}/ready", _v2_model_ready),
            web.post(
                "/v2/models/{name}/versions/{version}/infer", _v2_infer, expect_handler=_expect
            ),
        ]
    )
    return app


async def _model_loader(app: web.Application) -> AsyncIterator[None]:
    """Load the configured model in the background so probes answer meanwhile."""
    task = asyncio.create_task(_load_model(app[STATE]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _load_model(server: ServerState) -> None:
    source, store = server.config.model, server.store
    if source is None or store is None:
        log.info("no model configured; serving readiness without a model")
        return
    delay = _RETRY_FIRST_SECONDS
    while True:
        try:
            data = await asyncio.to_thread(store.get_bytes, source.key)
            model, predictor = await asyncio.to_thread(_load_verified, data, source.sha256)
        except (ChecksumMismatch, ArtifactUnreadable) as error:
            server.state, server.error = "failed", f"model {source.version} refused: {error}"
            log.error("model refused", extra={"key": source.key, "error": str(error)})
            return
        except (ObjectNotFound, MinioException, urllib3.exceptions.HTTPError, OSError) as error:
            server.error = f"cannot download model {source.version}: {error}"
            log.warning(
                "model download failed; retrying",
                extra={"key": source.key, "error": str(error), "retryIn": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_SECONDS)
            continue
        server.metrics.watch_values(model)
        # Every class gets its series at zero now: a ratio over classes must not
        # vanish (and read as "no traffic") just because a class is never predicted.
        for label in model.classes or ():
            server.metrics.predictions.labels(source.version, str(label))
        server.model = LoadedModel(source.version, model, predictor)
        server.state, server.error = "loaded", ""
        server.metrics.model_loaded.set(1)
        log.info("model loaded", extra={"key": source.key, "classes": model.classes})
        await _load_segments(server, store)
        return


async def _load_segments(server: ServerState, store: ObjectStore) -> None:
    """Each segment's model, checked against its checksum; one that cannot be loaded
    is left out (its requests get the global model) and logged."""
    for name, source in server.config.segments.items():
        try:
            data = await asyncio.to_thread(store.get_bytes, source.key)
            model, predictor = await asyncio.to_thread(_load_verified, data, source.sha256)
        except (
            ChecksumMismatch,
            ArtifactUnreadable,
            ObjectNotFound,
            MinioException,
            urllib3.exceptions.HTTPError,
            OSError,
        ) as error:
            log.error(
                "segment model refused; its requests get the global model",
                extra={"segment": name, "key": source.key, "error": str(error)},
            )
            continue
        server.segments[name] = LoadedModel(source.version, model, predictor)
        log.info("segment model loaded", extra={"segment": name, "version": source.version})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route and status, and time it."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else "unmatched"
    metrics = request.app[STATE].metrics
    started = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as error:
        code = error.status
        raise
    except (ConnectionError, asyncio.CancelledError):
        code = CLIENT_CLOSED  # the client went away: not the server's error
        raise
    finally:
        metrics.requests.labels(path, str(code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _too_large(config: ServeConfig) -> web.Response:
    return _error(413, f"request body exceeds {config.max_body_bytes} bytes")


async def _expect(request: web.Request) -> web.Response | None:
    """`Expect: 100-continue`: refuse a body that is too large before the client sends
    it (413), refuse expectations other than 100-continue (417), else invite it."""
    config = request.app[STATE].config
    if request.version != HttpVersion11:
        return None
    expect = request.headers.get(hdrs.EXPECT, "")
    if expect.lower() != "100-continue":
        return _error(417, f"unknown Expect: {expect}")
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return _too_large(config)
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0
    return None


async def _read_body(request: web.Request, config: ServeConfig) -> bytes | web.Response:
    """The whole body, or the error: 413 at once for a declared length over the limit
    (nothing is read), 413 when it grows past it, 408 when it does not arrive in time."""
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return _too_large(config)
    try:
        return await asyncio.wait_for(request.read(), timeout=config.body_timeout)
    except web.HTTPRequestEntityTooLarge:
        return _too_large(config)
    except TimeoutError:
        return _error(408, f"the request body did not arrive within {config.body_timeout:.0f}s")


async def _predict(request: web.Request) -> web.Response:
    server = request.app[STATE]
    segment = request.query.get("segment")
    chosen = server.segments.get(segment) if segment else None
    loaded = chosen or server.model
    if loaded is None:
        return _error(503, f"no model loaded (state: {server.state})")
    body = await _read_body(request, server.config)
    if isinstance(body, web.Response):
        return body
    try:
        rows = _parse_rows(body, server.config.max_rows)
        _check_columns(loaded.artifact, rows)
    except BadRequest as error:
        return _error(400, str(error))
    answer = await _answer(server, loaded, columns_of(loaded.artifact, rows), len(rows))
    if isinstance(answer, web.Response):
        return answer
    # Which model answered: the segment's, or (None) the global one it fell back to.
    served = {"segment": segment if chosen is not None else None} if segment else {}
    return web.json_response({"version": loaded.version, **served, **answer})


async def _answer(
    server: ServerState, loaded: LoadedModel, columns: Columns, rows: int
) -> dict[str, Any] | web.Response:
    """Predictions for ROWS checked rows given by feature column, counted; or the error
    response. Shared by both protocols, so they answer the same for the same rows."""
    try:
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(None, _predict_columns, loaded.predictor, columns, rows)
    except (ValueError, TypeError, OverflowError) as error:  # the model rejected the values
        return _error(400, f"cannot predict these rows: {error}")
    except Exception:  # a bug, not the client's fault: answer 500, keep serving
        log.exception("prediction failed", extra={"rows": rows})
        return _error(500, "internal error while predicting; see the server log")
    _count(server.metrics, loaded, answer)
    return answer


def _v2_model_of(request: web.Request) -> LoadedModel | web.Response:
    """The loaded model the path names, or the error (404 another name or version,
    503 not loaded yet)."""
    server = request.app[STATE]
    name, version = request.match_info["name"], request.match_info.get("version")
    if name != server.config.model_name:
        served = server.config.model_name
        return _error(404, f"model {name!r} not found; this server serves {served!r}")
    loaded = server.model
    if loaded is None:
        return _error(503, f"model {name!r} not loaded (state: {server.state})")
    if version is not None and version != loaded.version:
        return _error(404, f"version {version!r} not found; {loaded.version} is serving")
    return loaded


async def _v2_server(request: web.Request) -> web.Response:
    return web.json_response({"name": "freshet", "extensions": []})


async def _v2_ready(request: web.Request) -> web.Response:
    ready = request.app[STATE].model is not None
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def _v2_model_ready(request: web.Request) -> web.Response:
    loaded = _v2_model_of(request)
    ready = not isinstance(loaded, web.Response)
    body = {"name": request.match_info["name"], "ready": ready}
    return web.json_response(body, status=200 if ready else 503)


async def _v2_model(request: web.Request) -> web.Response:
    loaded = _v2_model_of(request)
    if isinstance(loaded, web.Response):
        return loaded
    a = loaded.artifact
    proba = a.classification and hasattr(a.pipeline[-1], "predict_proba")
    name = request.app[STATE].config.model_name
    return web.json_response(oip.metadata(name, loaded.version, a.numeric, a.categorical, proba))


async def _v2_infer(request: web.Request) -> web.Response:
    server = request.app[STATE]
    loaded = _v2_model_of(request)
    if isinstance(loaded, web.Response):
        return loaded
    raw = await _read_body(request, server.config)
    if isinstance(raw, web.Response):
        return raw
    try:
        body = json.loads(raw, parse_constant=_no_constant)
        columns, rows, wanted = oip.columns_of(
            body, set(loaded.artifact.numeric), server.config.max_rows
        )
        _check_names(loaded.artifact, set(columns), "")
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # InferError included
        return _error(400, str(error))
    answer = await _answer(server, loaded, columns, rows)
    if isinstance(answer, web.Response):
        return answer
    name = server.config.model_name
    return web.json_response(oip.response(name, loaded.version, body.get("id"), answer, wanted))


def _count(metrics: ServerMetrics, loaded: LoadedModel, answer: dict[str, Any]) -> None:
    """Count the predictions by class, and observe their values: one update per class
    and per histogram bucket, not per row."""
    predictions = answer["predictions"]
    if loaded.artifact.classification:
        for label, n in collections.Counter(predictions).items():
            metrics.predictions.labels(loaded.version, str(label)).inc(n)
    else:
        metrics.predictions.labels(loaded.version, "").inc(len(predictions))
    if metrics.values is not None:
        if loaded.artifact.classification:
            values = np.asarray(answer["probabilities"], dtype=np.float64)[:, 1]
        else:
            values = np.asarray(predictions, dtype=np.float64)
        _observe_all(metrics.values.labels(loaded.version), values)


def _observe_all(histogram: Histogram, values: npt.NDArray[np.float64]) -> None:
    """`histogram.observe` for each value, with one update per bucket."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or np.isnan(values).any():
        for value in values.tolist():
            histogram.observe(value)
        return
    # observe() puts a value in the first bucket whose upper bound is >= it.
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    total.inc(float(values.sum()))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))


def _check_columns(model: ModelArtifact, rows: list[dict[str, Any]]) -> None:
    """Every row names exactly the model's features (null for a missing value).

    A misspelled or absent column would otherwise be imputed silently and give
    a confident prediction from the wrong inputs. The label column is allowed
    and ignored, so labeled rows can be replayed as they are.
    """
    features = {*model.numeric, *model.categorical}
    labeled = features | {model.label}
    for index, row in enumerate(rows):
        names = row.keys()
        if names not in (features, labeled):
            _check_names(model, set(names), f"row {index}: ")


def _check_names(model: ModelArtifact, names: set[str], where: str) -> None:
    """BadRequest unless NAMES are the model's features (and perhaps its label)."""
    features = {*model.numeric, *model.categorical}
    unknown = sorted(names - features - {model.label})
    missing = sorted(features - names)
    if unknown or missing:
        problems = [
            f"unknown {unknown}" if unknown else "",
            f"missing {missing}" if missing else "",
        ]
        raise BadRequest(
            f"{where}columns {'; '.join(p for p in problems if p)}; the model's "
            f"features are {sorted(features)} (send null for a missing value)"
        )


_SCALARS = (str, int, float, bool, type(None))


def _parse_rows(body: bytes, max_rows: int) -> list[dict[str, Any]]:
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BadRequest(f"body is not JSON: {error}") from error
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise BadRequest('body must be {"rows": [{column: value, ...}, ...]} with at least one row')
    if len(rows) > max_rows:
        raise BadRequest(f"{len(rows)} rows exceed the limit of {max_rows} per request")
    scalars = _SCALARS
    for index, row in enumerate(rows):
        if type(row) is not dict:
            raise BadRequest(f"row {index} is not an object")
        for value in row.values():
            kind = type(value)
            # inf - inf is NaN, and NaN != 0: a finite float gives 0.
            if kind not in scalars or (kind is float and value - value != 0):
                _check_row(index, row)
    return rows


def _check_row(index: int, row: dict[str, Any]) -> None:
    """BadRequest naming the first value of ROW that is not a finite scalar."""
    for column, value in row.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise BadRequest(f"row {index}, column {column!r}: values must be scalars")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"row {index}, column {column!r}: {value} is not a finite number")


def _no_constant(name: str) -> float:
    """JSON has no NaN or Infinity; Python's parser accepts them unless told not to."""
    raise ValueError(f"{name} is not JSON (send null for a missing value)")


def _predict_columns(predictor: Predictor, columns: Columns, rows: int) -> dict[str, Any]:
    made = predictor.columns(columns, rows)
    answer: dict[str, Any] = {"predictions": made.labels.tolist()}
    if made.probabilities is not None:
        answer["classes"] = made.classes
        answer["probabilities"] = made.probabilities.tolist()
    return answer


def _predict_rows(model: ModelArtifact, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the server answers for ROWS (checked rows) with MODEL."""
    return _predict_columns(Predictor(model), columns_of(model, rows), len(rows))


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    server = request.app[STATE]
    source = server.config.model
    body = {
        "ready": server.ready,
        "model": server.state,
        "version": source.version if source else None,
    }
    if server.error:
        body["error"] = server.error
    return web.json_response(body, status=200 if server.ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[STATE].metrics.registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def main() -> int:
    """Console script: serve until SIGTERM/SIGINT, then finish in-flight requests and exit 0."""
    formatter = logs.configure("server")
    try:
        config = ServeConfig.from_env(os.environ)
        store = ObjectStore(StoreConfig.from_env(os.environ)) if config.model else None
    except (ServeConfigError, StoreConfigError) as error:
        log.error("cannot start", extra={"error": str(error)})
        return 2
    if config.model is not None:
        formatter.context["version"] = config.model.version
    log.info("listening", extra={"bind": config.bind, "port": config.port})
    web.run_app(
        create_app(config, store),
        host=config.bind,
        port=config.port,
        access_log=None,
        print=None,
        shutdown_timeout=_SHUTDOWN_GRACE_SECONDS,
        handle_signals=True,
    )
    log.info("stopped")
    return 0
