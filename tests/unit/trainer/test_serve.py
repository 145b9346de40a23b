"""The model server over real HTTP, loading models from a real S3 server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from devstack import procs
from freshet_contract.run import RunEstimator
from freshet_trainer.artifact import sha256_hex
from freshet_trainer.estimators import build_estimator
from freshet_trainer.serve import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_ROWS,
    STATE,
    ModelSource,
    ServeConfig,
    ServeConfigError,
    create_app,
)
from freshet_trainer.store import ObjectStore
from freshet_trainer.train import fit_model

from .synthetic import classification_frame

MODEL_KEY = "freshet/ml/demo/models/v1/model.joblib"
ROWS = [{"x1": 0.5, "x2": -1.0, "color": "red"}, {"x1": -2.0, "x2": 1.0, "color": "violet"}]


def publish_model(store: ObjectStore) -> str:
    """Fit a small classifier, upload it like a training run does, return its sha256."""
    spec = RunEstimator.model_validate({"class": "sklearn.linear_model.LogisticRegression"})
    data = fit_model(build_estimator(spec, 0), classification_frame(200, seed=1), "y").dumps()
    store.put_bytes(MODEL_KEY, data)
    return sha256_hex(data)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


@asynccontextmanager
async def serving(
    store: ObjectStore | None,
    sha256: str | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> AsyncIterator[TestClient[Any, Any]]:
    model = ModelSource("v1", MODEL_KEY, sha256) if sha256 else None
    config = ServeConfig(model=model, max_body_bytes=max_body_bytes, max_rows=max_rows)
    app = create_app(config, store)
    async with TestClient(TestServer(app)) as client:
        yield client


async def settled(client: TestClient[Any, Any]) -> tuple[int, dict[str, Any]]:
    """/readyz once the model has finished loading (or failed to)."""
    for _ in range(200):
        response = await client.get("/readyz")
        body = await response.json()
        if body["model"] != "loading":
            return response.status, body
        await asyncio.sleep(0.02)
    raise AssertionError("model still loading after 4 s")


def test_predicts_with_probabilities_and_counts_it(store: ObjectStore) -> None:
    sha256 = publish_model(store)

    async def scenario() -> None:
        async with serving(store, sha256) as client:
            assert await settled(client) == (
                200,
                {"ready": True, "model": "loaded", "version": "v1"},
            )
            response = await client.post("/predict", json={"rows": ROWS})
            body = await response.json()
            assert response.status == 200, body
            assert body["version"] == "v1" and body["classes"] == [0, 1]
            assert len(body["predictions"]) == 2
            assert all(abs(sum(p) - 1) < 1e-9 for p in body["probabilities"])

            metrics = await (await client.get("/metrics")).text()
            info = f'freshet_server_model_info{{sha256="{sha256}",version="v1"}} 1.0'
            assert info in metrics
            assert 'freshet_server_requests_total{code="200",path="/predict"} 1.0' in metrics
            assert "freshet_server_request_duration_seconds_bucket" in metrics
            predicted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("freshet_server_predictions_total{")
            )
            assert predicted == 2

    run(scenario)


def test_checksum_mismatch_keeps_the_server_unready(store: ObjectStore) -> None:
    publish_model(store)

    async def scenario() -> None:
        async with serving(store, "0" * 64) as client:
            status, body = await settled(client)
            assert (status, body["ready"], body["model"]) == (503, False, "failed")
            assert "sha256 is" in body["error"]
            assert (await client.post("/predict", json={"rows": ROWS})).status == 503
            assert (await client.get("/healthz")).status == 200

    run(scenario)


def test_no_model_configured_is_ready_but_cannot_predict() -> None:
    async def scenario() -> None:
        async with serving(None, None) as client:
            assert await settled(client) == (200, {"ready": True, "model": "none", "version": None})
            assert (await client.post("/predict", json={"rows": ROWS})).status == 503

    run(scenario)


def test_bad_requests_are_refused_without_harm(store: ObjectStore) -> None:
    sha256 = publish_model(store)

    async def scenario() -> None:
        async with serving(store, sha256, max_body_bytes=4096, max_rows=5) as client:
            await settled(client)

            async def post(body: bytes) -> int:
                response = await client.post(
                    "/predict", data=body, headers={"Content-Type": "application/json"}
                )
                assert "error" in await response.json()
                return response.status

            huge = json.dumps({"rows": [{"x1": 1.0, "pad": "x" * 5000}]}).encode()
            assert await post(huge) == 413
            assert await post(json.dumps({"rows": ROWS * 3}).encode()) == 400  # 6 > 5 rows
            assert await post(b'{"rows": [') == 400
            assert await post(b"\xff\xfe") == 400
            assert await post(b'{"rows": []}') == 400
            assert await post(b'{"rows": [[1, 2]]}') == 400
            assert await post(b'{"rows": [{"x1": {"nested": 1}}]}') == 400
            assert await post(b'{"rows": [{"x1": "not a number"}]}') == 400
            assert (await client.post("/predict", json={"rows": ROWS})).status == 200

    run(scenario)


def wait_ready(url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                body: dict[str, Any] = json.load(response)
                return body
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"{url} not ready in {timeout} s")


def test_console_script_serves_from_env_and_stops_on_sigterm(
    store: ObjectStore, s3_env: dict[str, str], tmp_path: Path
) -> None:
    sha256 = publish_model(store)
    port = procs.free_port()
    env = {
        **os.environ,
        **s3_env,
        "PORT": str(port),
        "FRESHET_BIND": "127.0.0.1",
        "FRESHET_MODEL_VERSION": "v1",
        "FRESHET_MODEL_KEY": MODEL_KEY,
        "FRESHET_MODEL_SHA256": sha256,
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "freshet-serve")],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=30)["model"] == "loaded"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=json.dumps({"rows": ROWS}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert len(json.load(response)["predictions"]) == 2

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    logged = [json.loads(line) for line in server.stderr.read().splitlines() if line]  # type: ignore[union-attr]
    assert {"model loaded", "stopped"} <= {line["msg"] for line in logged}
    assert all(line.get("version") == "v1" for line in logged)


def malformed_bodies() -> list[bytes]:
    """Hand-written bad requests plus seeded random corruptions of a good one."""
    good = json.dumps({"rows": ROWS}).encode()
    bodies = [
        b"",
        b"null",
        b"[]",
        b'"rows"',
        b"{}",
        b'{"rows": null}',
        b'{"rows": {"x1": 1}}',
        b'{"rows": [null]}',
        b'{"rows": [1, 2]}',
        b'{"rows": [{"x1": NaN, "x2": 1, "color": "red"}]}',
        b'{"rows": [{"x1": Infinity, "x2": 1, "color": "red"}]}',
        b'{"rows": [{"x1": 1e999, "x2": 1, "color": "red"}]}',
        b'{"rows": [{"x1": 1' + b"0" * 400 + b', "x2": 1, "color": "red"}]}',
        b'{"rows": [{"x1": [1], "x2": 1, "color": "red"}]}',
        b'{"rows": [{"x1": true, "x2": "1", "color": 3}]}',
        b'{"rows": [{"x1": 1, "x2": 1, "color": "red", "colour": "red"}]}',
        b'{"rows": [{"x1": 1, "x2": 1}]}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"rows": [' + b'{"a":' * 20_000 + b"1" + b"}" * 20_000 + b"]}",
        '{"rows": [{"x1": 1, "x2": 1, "color": "\u2603"}]}'.encode("utf-16"),
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
        good[: len(good) // 2],
        good.replace(b":", b"="),
    ]
    rng = np.random.default_rng(0)
    for _ in range(30):
        corrupted = bytearray(good)
        for position in rng.integers(0, len(corrupted), size=3):
            corrupted[position] = int(rng.integers(0, 256))
        bodies.append(bytes(corrupted))
    return bodies


def test_fuzzed_bodies_get_a_client_error_never_a_crash(store: ObjectStore) -> None:
    sha256 = publish_model(store)

    async def scenario() -> None:
        async with serving(store, sha256, max_body_bytes=256 * 1024) as client:
            await settled(client)
            for body in malformed_bodies():
                response = await client.post("/predict", data=body)
                answer = await response.json()
                assert response.status in {200, 400, 413}, (body[:80], answer)
                assert response.status == 200 or answer["error"]
            assert (await client.post("/predict", json={"rows": ROWS})).status == 200
            metrics = await (await client.get("/metrics")).text()
            assert 'code="500"' not in metrics

    run(scenario)


def test_wrong_columns_are_named_in_the_answer(store: ObjectStore) -> None:
    sha256 = publish_model(store)

    async def scenario() -> None:
        async with serving(store, sha256) as client:
            await settled(client)
            typo = {"x1": 1.0, "x2": 2.0, "colour": "red"}
            response = await client.post("/predict", json={"rows": [ROWS[0], typo]})
            assert response.status == 400
            assert (await response.json())["error"] == (
                "row 1: columns unknown ['colour']; missing ['color']; the model's features"
                " are ['color', 'x1', 'x2'] (send null for a missing value)"
            )
            labeled = {**ROWS[0], "y": 1, "color": None}  # label ignored, null imputed
            assert (await client.post("/predict", json={"rows": [labeled]})).status == 200

    run(scenario)


def test_metrics_show_the_distribution_of_predicted_probabilities(store: ObjectStore) -> None:
    sha256 = publish_model(store)

    async def scenario() -> None:
        async with serving(store, sha256) as client:
            await settled(client)
            body = await (await client.post("/predict", json={"rows": ROWS * 5})).json()
            metrics = await (await client.get("/metrics")).text()
            count = 'freshet_server_prediction_value_count{version="v1"} 10.0'
            assert count in metrics
            positive = sum(p[1] for p in body["probabilities"])
            line = next(
                line
                for line in metrics.splitlines()
                if line.startswith("freshet_server_prediction_value_sum")
            )
            assert abs(float(line.split()[-1]) - positive) < 1e-9

    run(scenario)


def test_segment_models_answer_their_segment_and_the_global_model_the_rest(
    store: ObjectStore,
) -> None:
    """FRESHET_SEGMENT_MODELS (a TrainingPolicySet's): ?segment= picks the segment's
    model; an unknown segment, or one whose model fails its checksum, gets the global."""
    sha256 = publish_model(store)
    flipped = classification_frame(200, seed=1)
    flipped["y"] = 1 - flipped["y"]
    spec = RunEstimator.model_validate({"class": "sklearn.linear_model.LogisticRegression"})
    data = fit_model(build_estimator(spec, 0), flipped, "y").dumps()
    store.put_bytes("freshet/ml/demo-alice/models/v3/model.joblib", data)
    env = {
        "FRESHET_MODEL_VERSION": "v1",
        "FRESHET_MODEL_KEY": MODEL_KEY,
        "FRESHET_MODEL_SHA256": sha256,
        "FRESHET_SEGMENT_MODELS": json.dumps(
            {
                "alice": {
                    "version": "v3",
                    "key": "freshet/ml/demo-alice/models/v3/model.joblib",
                    "sha256": sha256_hex(data),
                },
                "bob": {"version": "v2", "key": MODEL_KEY, "sha256": "0" * 64},
            }
        ),
    }
    config = ServeConfig.from_env(env)
    assert set(config.segments) == {"alice", "bob"}

    async def scenario() -> None:
        async with TestClient(TestServer(create_app(config, store))) as client:
            await settled(client)
            for _ in range(200):  # segment models load after the global one
                if "alice" in client.app[STATE].segments:
                    break
                await asyncio.sleep(0.02)
            answers = {}
            for segment in ("alice", "bob", "zed"):
                r = await client.post(f"/predict?segment={segment}", json={"rows": ROWS})
                answers[segment] = await r.json()
            plain = await (await client.post("/predict", json={"rows": ROWS})).json()
            assert (answers["alice"]["segment"], answers["alice"]["version"]) == ("alice", "v3")
            for fallback in ("bob", "zed"):  # bob's model failed its checksum
                assert answers[fallback]["segment"] is None
                assert answers[fallback]["version"] == "v1"
                assert answers[fallback]["predictions"] == plain["predictions"]
            assert "segment" not in plain
            assert answers["alice"]["predictions"] != plain["predictions"]  # the flipped model

    run(scenario)
    try:
        ServeConfig.from_env({**env, "FRESHET_SEGMENT_MODELS": "[1, 2]"})
    except ServeConfigError as error:
        assert "FRESHET_SEGMENT_MODELS" in str(error)
    else:
        raise AssertionError("a malformed FRESHET_SEGMENT_MODELS was accepted")


async def _raw(server: TestServer, head: str, body: bytes = b"", close: bool = False) -> bytes:
    """Send raw bytes as a hostile client would; what the server answered (b"" if closed)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(head.encode() + body)
    await writer.drain()
    if close:
        writer.close()
        await writer.wait_closed()
        return b""
    try:
        return await asyncio.wait_for(reader.read(4096), timeout=5)
    finally:
        writer.close()


def _post_head(length: int, *extra: str) -> str:
    lines = [
        "POST /predict HTTP/1.1",
        "Host: x",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *extra,
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


def test_hostile_clients_get_quick_clear_answers_and_are_not_server_errors(
    store: ObjectStore,
) -> None:
    sha256 = publish_model(store)
    config = ServeConfig(model=ModelSource("v1", MODEL_KEY, sha256), body_timeout=1.0)

    async def scenario() -> None:
        server = TestServer(create_app(config, store))
        async with TestClient(server) as client:
            await settled(client)
            # A declared length over the limit: 413 at once, nothing read.
            started = time.monotonic()
            answer = await _raw(server, _post_head(99_999_999_999))
            assert answer.startswith(b"HTTP/1.1 413"), answer
            assert time.monotonic() - started < 2
            # Expect: 100-continue with a body over the limit: 413, never "100 Continue".
            answer = await _raw(server, _post_head(50_000_000, "Expect: 100-continue"))
            assert answer.startswith(b"HTTP/1.1 413") and b"100 Continue" not in answer, answer
            answer = await _raw(server, _post_head(10, "Expect: something-else"))
            assert answer.startswith(b"HTTP/1.1 417"), answer
            ok = await _raw(server, _post_head(2, "Expect: 100-continue"))
            assert ok.startswith(b"HTTP/1.1 100 Continue"), ok
            # Half a body, then silence: 408 after the body timeout, not a held connection.
            started = time.monotonic()
            answer = await _raw(server, _post_head(100), b'{"rows": [')
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert 0.9 < time.monotonic() - started < 4
            # Half a body, then gone: counted as the client's doing (499), never a 500.
            await _raw(server, _post_head(100), b'{"rows": [', close=True)
            await asyncio.sleep(0.3)
            metrics = await (await client.get("/metrics")).text()
            assert 'code="500"' not in metrics, metrics
            # (the 100-continue client above that never sent its body is one of them)
            assert 'freshet_server_requests_total{code="499",path="/predict"} 2.0' in metrics

    run(scenario)
