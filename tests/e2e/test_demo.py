"""`make demo`'s story (devstack.demo.Story), step by step on the suite's stack, each
step's outcome checked: what the demo says happened is what happened.

Its own namespace and bucket (the fixtures'), a shorter stream than the demo's
(six windows, changing at the fourth), no timing asserted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from devstack import demo
from devstack.stack import Stack
from kubernetes import client


def test_the_demo_story_shows_what_it_says(
    stack: Stack,
    freshet_operator: Stack,
    kube_api: client.ApiClient,
    namespace: str,
    bucket: str,
    s3: Any,
    tmp_path: Path,
) -> None:
    story = demo.Story(stack, kube_api, namespace, bucket, out=tmp_path, windows=6, rows=600)
    story.setup()
    apps = client.AppsV1Api(kube_api)
    assert {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items} == set(
        demo.SERVERS.values()
    )

    # Physics versus fashion: Static stays on v1 and goes stale; Dynamic follows.
    stream = story.physics_versus_fashion()
    assert stream.change_at == 3
    assert [w.index for w in stream.windows] == [1, 2, 3, 4, 5]
    assert [w.changed for w in stream.windows] == [False, False, True, True, True]
    assert stream.static_versions == {"v1"}
    assert {w.static_version for w in stream.windows} == {"v1"}
    assert story.serving(demo.STATIC) == "v1"
    assert len(stream.dynamic_versions) >= 3, stream.dynamic_versions
    assert story.serving(demo.DYNAMIC) == stream.dynamic_versions[-1] != "v1"
    assert any("stream/window-03.csv" in m for m in stream.drift_events), stream.drift_events
    settled = [w for w in stream.windows if w.index > stream.change_at]  # after one retrain
    for w in settled:
        assert w.dynamic > w.static + 0.2, w
        assert w.oracle > w.static + 0.2, w
    before = [w for w in stream.windows if not w.changed]
    for w in before:
        assert abs(w.dynamic - w.static) < 0.1, w
    assert all(w.outcome.split()[0] in ("Promoted", "Rejected") for w in stream.windows)
    assert story.status(demo.DYNAMIC)["data"]["quarantined"] == 0  # change is not a fault

    # The malformed batch: quarantined with its reason, never trained on.
    q = story.malformed_batch()
    assert q.reason == "MissingColumns" and "x2" in q.message, q
    assert (q.last_run["phase"], q.last_run["reason"]) == ("Skipped", "NoNewData")
    assert q.quarantined == 1
    keys = {o.object_name for o in s3.list_objects(bucket, recursive=True)}
    assert q.key not in keys
    root = story.status(demo.DYNAMIC)["stateRoot"]
    assert f"{root}quarantine/{q.key}" in keys
    assert story.serving(demo.DYNAMIC) == stream.dynamic_versions[-1]

    # The injected regression: promoted, measured on the next batch, rolled back.
    rb = story.regression()
    assert (rb.bad_version, rb.from_version, rb.to_version) == ("v2", "v2", "v1")
    assert rb.reason == "AnalysisFailed"
    assert "> maxRegression 0.1" in rb.message
    assert rb.serving == "v1" and rb.deployment_version == "v1"
    assert story.status(demo.SPAM)["rejectedVersions"] == ["v2"]

    # The worse candidate: refused by the gate, the restored model keeps serving.
    refusal = story.worse_candidate()
    assert (refusal.phase, refusal.reason) == ("Rejected", "Regressed"), refusal
    assert refusal.candidate is not None and refusal.serving is not None
    assert refusal.candidate < refusal.serving - 0.02
    assert refusal.serving_version == "v1"
    assert story.deployed(demo.SERVERS[demo.SPAM]) == "v1"

    # Late labels: matured by event time, the changed days backfilled once.
    bf = story.late_labels()
    assert (bf.first["trigger"], bf.first["phase"]) == ("NewData", "Promoted")
    assert 300 < bf.matured <= 600 and bf.matured + bf.immature == 1200  # days 0-1 of 0-3
    assert bf.backfill["trigger"] == "Backfill"
    assert bf.relabelled == ["ads/impressions/day-00.csv", "ads/impressions/day-01.csv"]
    assert bf.labeled_after > bf.labeled

    # The table has every window and every event; the plot is a PNG.
    report = story.report()
    for w in stream.windows:
        assert f"| {w.index} | {'changed' if w.changed else 'before'} |" in report.table
    assert "| mean | before |" in report.table and "| mean | changed |" in report.table
    assert report.events["quarantined"] == 1
    assert report.events["refused by the gate"] >= 1
    assert report.events["rolled back"] == 1
    assert report.events["backfilled"] == 1
    assert not re.search(r"\d\.\d{4,}", report.table), report.table  # numbers for people
    assert report.plot == tmp_path / "metric.png"
    png = report.plot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in png[-12:]
