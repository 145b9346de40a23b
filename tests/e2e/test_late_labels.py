"""Late labels on the real stack: a conversion-like stream whose labels arrive days later.

Time here is event time: the stream's clock is the newest impression the
policy has seen, so days pass by writing the files of later days, never by
waiting. The test knows every impression's event time and conversion time,
and checks what the trainer reports against counts it computes itself.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import scenario as sc
from devstack import release
from devstack.stack import Stack
from devstack.synthetic import ConversionDay, conversion_day
from kubernetes import client

START = datetime(2026, 11, 1, tzinfo=UTC)
DELAY = timedelta(days=2)
ROWS = 300


class Stream:
    """The impressions written so far and the conversions their label files report."""

    def __init__(self, s3: Any, bucket: str, root: str = "") -> None:
        self.s3, self.bucket, self.root = s3, bucket, root
        self.days: dict[int, ConversionDay] = {}
        self.labelled: dict[int, set[str]] = {}

    def day(self, day: int) -> ConversionDay:
        if day not in self.days:
            self.days[day] = conversion_day(
                day, ROWS, seed=100 + day, start=START, max_delay=timedelta(days=4)
            )
            self.labelled[day] = set()
        return self.days[day]

    def features(self, day: int) -> None:
        sc.put(self.s3, self.bucket, f"{self.root}events/day-{day:02d}.csv", self.day(day).features)

    def labels(self, day: int, after: datetime | None, until: datetime) -> int:
        """Write the conversions of `day` observed in (after, until]; return how many."""
        source = self.day(day)
        body = source.observed(after, until)
        ids = {line.split(",")[0] for line in body.decode().splitlines()[1:]}
        name = f"{self.root}labels/day-{day:02d}/until-{until:%Y%m%dT%H%M%S}.csv"
        sc.put(self.s3, self.bucket, name, body)
        self.labelled[day] |= ids
        return len(ids)

    def newest(self) -> datetime:
        return max(t for d in self.days.values() for t in d.event_times.values())

    def matured(self, cutoff: datetime, after: datetime | None = None) -> list[str]:
        return [
            event_id
            for d in self.days.values()
            for event_id, t in d.event_times.items()
            if t <= cutoff and (after is None or t > after)
        ]

    def labelled_ids(self) -> set[str]:
        return set().union(*self.labelled.values())


def _policy(name: str = "conversions", root: str = "", **overrides: Any) -> dict[str, Any]:
    """A conversion policy; the prequential monitoring is only for the main scenario."""
    return sc.policy(
        name,
        prefix=f"{root}events/",
        data__label="converted",
        data__labels={
            "prefix": f"{root}labels/",
            "idColumn": "event_id",
            "eventTimeColumn": "event_time",
            "delaySeconds": int(DELAY.total_seconds()),
            "negativeValue": "0",
        },
        **{
            "validation__labelValues": ["0", "1"],
            "trigger__onArrival": {"minBatches": 1, "quietSeconds": 2},
            "trigger__backfill": {"quietSeconds": 1, "minIntervalSeconds": 0},
            "gate": {"metric": "roc_auc", "maxRegression": "0.05"},
        }
        | overrides,
    )


def _book(s3: Any, bucket: str, policy: dict[str, Any]) -> dict[str, Any]:
    root = policy["status"]["stateRoot"]
    book: dict[str, Any] = json.loads(s3.get_object(bucket, f"{root}ledger.json").read())
    return book


def _run_doc(s3: Any, bucket: str, policy: dict[str, Any], run_id: str, doc: str) -> Any:
    root = policy["status"]["stateRoot"]
    return json.loads(s3.get_object(bucket, f"{root}runs/{run_id}/{doc}.json").read())


def _finished_runs(
    api: client.ApiClient, ns: str, s3: Any, bucket: str, name: str = "conversions"
) -> list[dict[str, Any]]:
    """The ledger's finished runs, oldest first (empty until the policy has a status)."""
    return list(reversed(_book_of(api, ns, s3, bucket, name).get("runs", [])))


def _book_of(api: client.ApiClient, ns: str, s3: Any, bucket: str, name: str) -> dict[str, Any]:
    """The policy's ledger, or {} before it has one."""
    p = sc.get_policy(api, ns, name)
    if not (p.get("status") or {}).get("stateRoot"):
        return {}
    try:
        return _book(s3, bucket, p)
    except Exception:  # no ledger yet
        return {}


def _wait_runs(
    api: client.ApiClient, ns: str, s3: Any, bucket: str, count: int, name: str = "conversions"
) -> list[Any]:
    return list(
        sc.wait_for(
            f"{count} finished run(s) of {name}",
            lambda: len(runs := _finished_runs(api, ns, s3, bucket, name)) >= count and runs,
            timeout=180,
        )
    )


def _status_labels(policy: dict[str, Any]) -> dict[str, Any]:
    return dict(((policy.get("status") or {}).get("data") or {}).get("labels") or {})


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_late_labels_are_matured_by_event_time_and_backfilled_once_per_change(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any, stack: Stack
) -> None:
    stream = Stream(s3, bucket)
    monitoring = {"source": "Prequential", "minRows": 10, "maxRegression": "0.5"}
    sc.create_policy(kube_api, ns, _policy(monitoring=monitoring))

    # Day 0-3 impressions, with the conversions observed by the end of day 3.
    # Labels first, so the first run joins them.
    for day in range(4):
        stream.day(day)
    t1 = stream.newest()
    for day in range(4):
        stream.labels(day, None, t1)
    for day in range(4):
        stream.features(day)

    (first,) = _wait_runs(kube_api, ns, s3, bucket, 1)
    p = sc.get_policy(kube_api, ns, "conversions")
    result = _run_doc(s3, bucket, p, first["runId"], "result")
    cutoff1 = t1 - DELAY
    matured = stream.matured(cutoff1)
    labels = result["labels"]
    assert _time(labels["watermark"]) == t1
    assert _time(labels["cutoff"]) == cutoff1
    assert labels["rows"]["matured"] == len(matured)
    assert ROWS < len(matured) <= 2 * ROWS  # days 0 and 1, give or take the last minutes
    assert labels["rows"]["immature"] == 4 * ROWS - len(matured)
    converted = stream.labelled_ids() & set(matured)
    assert labels["rows"]["labeled"] == len(converted)
    assert labels["rows"]["defaulted"] == len(matured) - len(converted)
    # The gate saw matured labels only: the train and holdout rows are exactly those.
    assert result["rows"]["train"] + result["rows"]["holdout"] == len(matured)
    assert result["rows"]["holdout"] > 0
    assert first["trigger"] == "NewData"
    # The ledger records the run a moment before the step writes status.
    status_labels = sc.wait_for(
        "status to show the cutoff",
        lambda: (
            (labelled := _status_labels(sc.get_policy(kube_api, ns, "conversions")))
            and "cutoff" in labelled
            and labelled
        ),
        timeout=30,
    )
    assert abs(_time(status_labels["cutoff"]) - cutoff1) < timedelta(seconds=1)

    # A day later: conversions of days 0 and 1 (matured, some of them counted as
    # "no conversion" so far) and of day 3 (not matured) arrive. One backfill
    # retrains days 0 and 1; day 3's labels wait until day 3 matures.
    t2 = t1 + timedelta(days=1)
    late = {day: stream.labels(day, t1, t2) for day in (0, 1, 3)}
    assert late[0] > 0 and late[1] > 0 and late[3] > 0
    runs = _wait_runs(kube_api, ns, s3, bucket, 2)
    backfill = runs[1]
    assert backfill["trigger"] == "Backfill"
    assert backfill["relabelled"] == ["events/day-00.csv", "events/day-01.csv"]
    p = sc.get_policy(kube_api, ns, "conversions")
    spec = _run_doc(s3, bucket, p, backfill["runId"], "spec")
    assert spec["data"]["newBatches"] == []
    joined = {f["key"] for f in spec["data"]["labels"]["files"]}
    assert "labels/day-00/until-" + f"{t2:%Y%m%dT%H%M%S}.csv" in joined
    result = _run_doc(s3, bucket, p, backfill["runId"], "result")
    converted = stream.labelled_ids() & set(matured)
    assert result["labels"]["rows"]["labeled"] == len(converted)
    assert result["labels"]["rows"]["matured"] == len(matured)
    # Once per change: with nothing new, no second backfill follows.
    time.sleep(5)
    assert len(_finished_runs(kube_api, ns, s3, bucket)) == 2
    p = sc.get_policy(kube_api, ns, "conversions")
    assert p["status"]["data"]["labels"]["awaitingBackfill"] == 0
    assert p["status"]["lastRun"]["trigger"] == "Backfill"

    # Labels that arrive while the operator is down are caught up when it starts.
    release.scale(stack, 0)
    t3 = t2 + timedelta(days=1)
    assert stream.labels(1, t2, t3) > 0
    release.scale(stack, 1)
    runs = _wait_runs(kube_api, ns, s3, bucket, 3)
    assert runs[2]["trigger"] == "Backfill"
    assert runs[2]["relabelled"] == ["events/day-01.csv"]

    # Days 4 and 5 arrive: the watermark moves, days 2 and 3 mature, with every
    # label file written so far. Monitoring scores the serving model on exactly
    # the rows that matured since the last run (test, then train).
    for day in (4, 5):
        stream.day(day)
    t4 = stream.newest()
    for day in (4, 5):
        stream.labels(day, None, t4)
        stream.features(day)
    runs = _wait_runs(kube_api, ns, s3, bucket, 4)
    assert runs[3]["trigger"] == "NewData"
    p = sc.get_policy(kube_api, ns, "conversions")
    result = _run_doc(s3, bucket, p, runs[3]["runId"], "result")
    cutoff4 = t4 - DELAY
    matured = stream.matured(cutoff4)
    assert result["labels"]["rows"]["matured"] == len(matured)
    assert 3 * ROWS < len(matured) <= 4 * ROWS
    assert result["labels"]["rows"]["labeled"] == len(stream.labelled_ids() & set(matured))
    assert result["rows"]["train"] + result["rows"]["holdout"] == len(matured)
    newly = stream.matured(cutoff4, after=cutoff1)
    assert result["monitoring"]["rows"] == len(newly)
    assert ROWS < len(newly) <= 3 * ROWS
    assert [r["trigger"] for r in _finished_runs(kube_api, ns, s3, bucket)] == [
        "NewData",
        "Backfill",
        "Backfill",
        "NewData",
    ]
    events = client.CoreV1Api(kube_api).list_namespaced_event(ns).items
    triggered = [e.message for e in events if e.reason == "Triggered"]
    assert any("labels of 2 batch(es) changed" in m for m in triggered)


def test_backfills_are_bounded_operator_wide_and_each_policy_is_caught_up(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any, stack: Stack
) -> None:
    """With the chart's maxConcurrentBackfills=1, two policies' backfills never overlap."""
    release.install(stack, {"maxConcurrentBackfills": "1"})
    try:
        policies = {"east": Stream(s3, bucket, "east/"), "west": Stream(s3, bucket, "west/")}
        for name, stream in policies.items():
            sc.create_policy(kube_api, ns, _policy(name, root=stream.root, serving=None))
            for day in range(3):
                stream.day(day)
            for day in range(3):
                stream.labels(day, None, stream.newest())
                stream.features(day)
        trained = {
            name: len(
                sc.wait_for(
                    f"{name} to have trained on its three days",
                    lambda n=name: (
                        _book_of(kube_api, ns, s3, bucket, n).get("intent") is None
                        and len(_book_of(kube_api, ns, s3, bucket, n).get("consumed", [])) == 3
                        and _finished_runs(kube_api, ns, s3, bucket, n)
                    ),
                    timeout=120,
                )
            )
            for name in policies
        }

        # Late conversions for a matured day of both policies, at once.
        for stream in policies.values():
            t1 = stream.newest()
            assert stream.labels(0, t1, t1 + timedelta(days=1)) > 0
        backfills = {
            name: _wait_runs(kube_api, ns, s3, bucket, trained[name] + 1, name)[trained[name]]
            for name in policies
        }
    finally:
        release.install(stack)  # the chart's defaults again
    for name, run in backfills.items():
        assert run["trigger"] == "Backfill", name
        assert run["relabelled"] == [f"{name}/events/day-00.csv"]
    first, second = sorted(backfills.values(), key=lambda r: r["startedTime"])
    assert _time(second["startedTime"]) >= _time(first["finishedTime"])


def test_a_backfill_held_back_by_its_interval_does_not_hold_back_new_data(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    """A pending label change waits out minIntervalSeconds; a new batch meanwhile
    still trains as soon as it settles, not at the next resync (30 s)."""
    stream = Stream(s3, bucket)
    sc.create_policy(
        kube_api,
        ns,
        _policy(
            serving=None,
            trigger__onArrival={"minBatches": 1, "quietSeconds": 3},
            trigger__backfill={"quietSeconds": 0, "minIntervalSeconds": 3600},
        ),
    )
    for day in range(3):
        stream.day(day)
    t1 = stream.newest()
    for day in range(3):
        stream.labels(day, None, t1)
        stream.features(day)
    _wait_runs(kube_api, ns, s3, bucket, 1)
    sc.wait_for(
        "all three days consumed",
        lambda: len(_book_of(kube_api, ns, s3, bucket, "conversions").get("consumed", [])) == 3,
    )
    done = len(_finished_runs(kube_api, ns, s3, bucket))
    assert stream.labels(0, t1, t1 + timedelta(days=1)) > 0
    backfill = _wait_runs(kube_api, ns, s3, bucket, done + 1)[done]
    assert backfill["trigger"] == "Backfill"

    # Another change to day 0 must now wait an hour for the next backfill.
    assert stream.labels(0, t1 + timedelta(days=1), t1 + timedelta(days=2)) > 0
    sc.wait_for(
        "the next backfill to wait for its interval",
        lambda: (
            sc.condition(sc.get_policy(kube_api, ns, "conversions"), "Training").get("reason")
            == "BackfillInterval"
        ),
        timeout=30,
    )
    stream.day(3)
    stream.labels(3, None, stream.newest())
    stream.features(3)
    # It settles after 3 s; without a wake-up then it would start at the next resync.
    sc.wait_for(
        "the new day's run to start",
        lambda: (
            (sc.get_policy(kube_api, ns, "conversions").get("status") or {})
            .get("lastRun", {})
            .get("trigger")
            == "NewData"
        ),
        timeout=20,
    )
