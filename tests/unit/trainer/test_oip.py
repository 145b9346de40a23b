"""The model server's Open Inference Protocol (v2) endpoints over real HTTP, a real
model from a real S3 server: the same predictions as /predict, the protocol's
errors, and a v2 client library (tritonclient) talking to it."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient
from freshet_trainer.store import ObjectStore

from .test_serve import ROWS, publish_model, run, serving, settled

INFER = "/v2/models/model/infer"


def v2_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` as one tensor per column (x1, x2 numeric; color a string)."""
    return [
        {"name": "x1", "shape": [len(rows)], "datatype": "FP64", "data": [r["x1"] for r in rows]},
        {"name": "x2", "shape": [len(rows), 1], "datatype": "FP64",
         "data": [[r["x2"]] for r in rows]},
        {"name": "color", "shape": [len(rows)], "datatype": "BYTES",
         "data": [r["color"] for r in rows]},
    ]  # fmt: skip


async def post(client: TestClient[Any, Any], path: str, body: Any) -> tuple[int, Any]:
    response = await client.post(path, json=body)
    return response.status, await response.json()


def test_infer_answers_what_predict_answers(store: ObjectStore) -> None:
    sha256 = publish_model(store)

    async def scenario() -> None:
        async with serving(store, sha256) as client:
            await settled(client)
            _, plain = await post(client, "/predict", {"rows": ROWS})
            status, v2 = await post(client, INFER, {"id": "r-1", "inputs": v2_inputs(ROWS)})
            assert status == 200, v2
            assert (v2["model_name"], v2["model_version"], v2["id"]) == ("model", "v1", "r-1")
            predict, proba = v2["outputs"]
            assert predict == {
                "name": "predict", "shape": [2], "datatype": "INT64",
                "data": plain["predictions"],
            }  # fmt: skip
            assert proba["shape"] == [2, 2] and proba["datatype"] == "FP64"
            assert proba["parameters"] == {"classes": ["0", "1"]}
            assert np.allclose(np.reshape(proba["data"], (2, 2)), plain["probabilities"])

            # Only the outputs asked for; the versioned path too.
            only = {"inputs": v2_inputs(ROWS), "outputs": [{"name": "predict_proba"}]}
            status, v2 = await post(client, "/v2/models/model/versions/v1/infer", only)
            assert status == 200 and [o["name"] for o in v2["outputs"]] == ["predict_proba"]

    run(scenario)


def test_health_and_metadata(store: ObjectStore) -> None:
    sha256 = publish_model(store)

    async def scenario() -> None:
        async with serving(None, None) as client:  # no model yet
            assert (await client.get("/v2/health/live")).status == 200
            assert (await client.get("/v2/health/ready")).status == 503
            assert (await client.get("/v2/models/model/ready")).status == 503
        async with serving(store, sha256) as client:
            await settled(client)
            assert (await client.get("/v2/health/ready")).status == 200
            ready = await client.get("/v2/models/model/ready")
            assert (ready.status, await ready.json()) == (200, {"name": "model", "ready": True})
            meta = await (await client.get("/v2/models/model")).json()
            assert meta["versions"] == ["v1"] and meta["platform"] == "sklearn"
            assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
                "x1": "FP64",
                "x2": "FP64",
                "color": "BYTES",
            }
            assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
            assert (await client.get("/v2/models/other")).status == 404
            assert (await client.get("/v2/models/model/versions/v9")).status == 404

    run(scenario)


def test_bad_inference_requests_say_what_is_wrong(store: ObjectStore) -> None:
    sha256 = publish_model(store)
    good = v2_inputs(ROWS)

    async def scenario() -> None:
        async with serving(store, sha256) as client:
            await settled(client)
            cases: list[tuple[Any, str]] = [
                ({}, "body must be"),
                ({"inputs": good[:2]}, "missing ['color']"),
                ({"inputs": [{**good[0], "shape": [3]}, *good[1:]]}, "shape [3]"),
                ({"inputs": [{**good[0], "datatype": "BYTES"}, *good[1:]]}, "numeric feature"),
                ({"inputs": [{**good[0], "datatype": "FP8"}, *good[1:]]}, "not supported"),
                ({"inputs": good, "outputs": [{"name": "logits"}]}, "unknown outputs"),
                ({"inputs": [{**good[0], "data": ["a", "b"]}, *good[1:]]}, "cannot predict"),
            ]
            for body, says in cases:
                status, answer = await post(client, INFER, body)
                assert status == 400, (body, answer)
                assert says in answer["error"], (says, answer)
            status, answer = await post(client, "/v2/models/other/infer", {"inputs": good})
            assert status == 404 and "serves 'model'" in answer["error"]

    run(scenario)


def test_a_v2_client_library_gets_the_same_predictions(store: ObjectStore) -> None:
    """tritonclient's HTTP client (KServe v2), as users' tools would call it."""
    import tritonclient.http as v2

    sha256 = publish_model(store)

    def ask(url: str) -> tuple[list[Any], np.ndarray]:
        client = v2.InferenceServerClient(url=url)
        assert client.is_server_live() and client.is_model_ready("model")
        tensors = []
        for name, values, datatype in (
            ("x1", np.array([r["x1"] for r in ROWS]), "FP64"),
            ("x2", np.array([r["x2"] for r in ROWS]), "FP64"),
            ("color", np.array([r["color"] for r in ROWS], dtype=object), "BYTES"),
        ):
            tensor = v2.InferInput(name, [len(ROWS)], datatype)
            tensor.set_data_from_numpy(values, binary_data=False)
            tensors.append(tensor)
        outputs = [
            v2.InferRequestedOutput(name, binary_data=False)
            for name in ("predict", "predict_proba")
        ]
        result = client.infer("model", tensors, outputs=outputs)
        return result.as_numpy("predict").tolist(), result.as_numpy("predict_proba")

    async def scenario() -> None:
        async with serving(store, sha256) as client:
            await settled(client)
            _, plain = await post(client, "/predict", {"rows": ROWS})
            url = f"{client.server.host}:{client.server.port}"
            predictions, probabilities = await asyncio.to_thread(ask, url)
            assert predictions == plain["predictions"]
            assert np.allclose(np.reshape(probabilities, (2, 2)), plain["probabilities"])

    run(scenario)
