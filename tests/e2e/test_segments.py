"""Segments on the real stack: a TrainingPolicySet whose segments are the folders
under users/. A folder appearing creates a child policy; a segment whose model is
worse than the global one on its own holdout is refused by the gate and its
requests fall back to the global model in the shared Deployment; a segment whose
model is better is promoted and answers its requests; a folder removed prunes
its child."""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import numpy as np
import pandas as pd
import scenario as sc
from kubernetes import client

ROWS = [{"x1": 1.5, "x2": -1.0, "cat": "a"}, {"x1": -2.0, "x2": 1.5, "cat": "b"}]


def noisy_csv(rows: int, seed: int, noise_columns: int) -> bytes:
    """The global concept, plus columns of pure noise: a model fitted on a few hundred
    rows of it overfits, and the global model does better on the segment's holdout."""
    frame = pd.read_csv(io.BytesIO(sc.batch_csv(rows, seed=seed)))
    rng = np.random.default_rng(seed)
    noise = pd.DataFrame(
        rng.normal(size=(rows, noise_columns)), columns=[f"n{i}" for i in range(noise_columns)]
    )
    return pd.concat([frame, noise], axis=1).to_csv(index=False).encode()


def policy_set(name: str) -> dict[str, Any]:
    template = sc.policy(
        "x",
        prefix="users/{{segment}}/",
        serving=None,
        gate={"metric": "accuracy", "maxRegression": "0"},
    )["spec"]
    return {
        "apiVersion": "freshet.dev/v1alpha1",
        "kind": "TrainingPolicySet",
        "metadata": {"name": name},
        "spec": {
            "template": {"metadata": {"labels": {"team": "voice"}}, "spec": template},
            "generators": [{"folders": {"prefix": "users/"}}],
            "global": {"policyRef": {"name": "speech-global"}},
            "serving": {"deploymentRef": {"name": "model-server"}},
        },
    }


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def child(api: client.ApiClient, ns: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = custom(api).get_namespaced_custom_object(
            "freshet.dev", "v1alpha1", ns, "trainingpolicies", name
        )  # type: ignore[assignment]
    except client.exceptions.ApiException as e:
        if e.status == 404:
            return None
        raise
    return found


def last_phase(api: client.ApiClient, ns: str, name: str) -> str | None:
    c = child(api, ns, name)
    return ((c or {}).get("status") or {}).get("lastRun", {}).get("phase")


def judged(api: client.ApiClient, ns: str, name: str) -> None:
    """Wait for the child's first run to be decided; on a timeout, say where it stands."""
    done = ("Promoted", "Rejected", "Failed", "Skipped")
    try:
        sc.wait_for(f"{name} judged", lambda: last_phase(api, ns, name) in done, timeout=180)
    except AssertionError as e:
        status = (child(api, ns, name) or {}).get("status")
        raise AssertionError(f"{e}: {json.dumps(status, indent=1)}") from e


def predict(url: str, segment: str) -> dict[str, Any]:
    body = json.dumps({"rows": ROWS}).encode()
    request = urllib.request.Request(
        f"{url}/predict?segment={segment}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        answer: dict[str, Any] = json.loads(r.read())
    return answer


def test_segments_from_folders_beat_the_global_model_or_fall_back_to_it(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    sc.create_policy(
        kube_api,
        ns,
        sc.policy(
            "speech-global", prefix="global/", gate={"metric": "accuracy", "maxRegression": "0.2"}
        ),
    )
    sc.put(s3, bucket, "global/b0.csv", sc.batch_csv(1200, seed=70))
    sc.wait_for(
        "the global v1",
        lambda: sc.serving_version(sc.get_policy(kube_api, ns, "speech-global")) == "v1",
    )
    custom(kube_api).create_namespaced_custom_object(
        "freshet.dev", "v1alpha1", ns, "trainingpolicysets", policy_set("speech")
    )

    # alice's world is the global one flipped: her own model beats the global one.
    sc.put(s3, bucket, "users/alice/b0.csv", sc.batch_csv(600, seed=71, flip=True))
    alice = sc.wait_for("the child for alice", lambda: child(kube_api, ns, "speech-alice"))
    assert alice["metadata"]["labels"]["team"] == "voice"
    assert alice["spec"]["data"]["prefix"] == "users/alice/"
    assert alice["spec"]["baselineFrom"] == {"policyRef": {"name": "speech-global"}}
    (owner,) = alice["metadata"]["ownerReferences"]
    assert owner["kind"] == "TrainingPolicySet" and owner["name"] == "speech"
    judged(kube_api, ns, "speech-alice")
    alice = child(kube_api, ns, "speech-alice")
    assert alice is not None and alice["status"]["lastRun"]["phase"] == "Promoted", alice

    # bob's data is the global concept drowned in noise columns: his model is worse.
    sc.put(s3, bucket, "users/bob/b0.csv", noisy_csv(300, seed=72, noise_columns=120))
    judged(kube_api, ns, "speech-bob")
    bob = child(kube_api, ns, "speech-bob")
    assert bob is not None
    last = bob["status"]["lastRun"]
    assert (last["phase"], last["reason"]) == ("Rejected", "Regressed"), last
    assert "serving" not in bob["status"]

    # One Deployment: alice's model for alice, the global model for bob and strangers.
    def routed() -> dict[str, Any] | None:
        urls = sc.server_urls(kube_api, ns)
        if len(urls) != 1:
            return None
        try:
            answers = {s: predict(urls[0], s) for s in ("alice", "bob", "zed")}
        except OSError:
            return None
        return answers if answers["alice"].get("segment") == "alice" else None

    answers = sc.wait_for("alice's model in the shared Deployment", routed, timeout=180)
    assert answers["alice"]["version"] == "v1"
    for fallback in ("bob", "zed"):
        assert answers[fallback]["segment"] is None and answers[fallback]["version"] == "v1"
    assert answers["alice"]["predictions"] != answers["zed"]["predictions"]  # flipped world
    st = sc.wait_for(
        "the set's status",
        lambda: (
            (
                s := custom(kube_api)
                .get_namespaced_custom_object(
                    "freshet.dev", "v1alpha1", ns, "trainingpolicysets", "speech"
                )
                .get("status")
                or {}
            )
            and s.get("serving") == 1
            and s.get("segments") == 2
            and s
        ),
    )
    assert st["conditions"][0]["status"] == "True", st

    # bob's folder goes: his child goes with it.
    for o in s3.list_objects(bucket, prefix="users/bob/", recursive=True):
        s3.remove_object(bucket, o.object_name)
    sc.wait_for("bob pruned", lambda: child(kube_api, ns, "speech-bob") is None)
    assert child(kube_api, ns, "speech-alice") is not None
    events = (
        client.CoreV1Api(kube_api)
        .list_namespaced_event(ns, field_selector="involvedObject.name=speech")
        .items
    )
    assert {"SegmentAdded", "SegmentPruned"} <= {e.reason for e in events}
