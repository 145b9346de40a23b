"""Everything a page shows, read from the API server and the policy's store.

Each function is called only after the viewer was allowed to see the policy
(`app` checks first); reads go through `Viewer.reader`, changes and pod logs
through `Viewer.actor`, the person's own credentials. Store problems do not fail
a page: they come back as a message the page shows in place of what it could
not read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from freshet_contract.result import RunResult
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from minio.error import S3Error
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from freshet import names
from freshet.dashboard.access import Access, User
from freshet.failures import api_message
from freshet.ledger import Ledger
from freshet.objectstore import ObjectStore
from freshet.policy_store import StoreUnavailable, open_store
from freshet.quarantine import Held, Quarantine

LOG_LINES = 200


@dataclass
class Viewer:
    """One request's person: who they are, what they may do, and the clients acting for them."""

    user: User
    access: Access
    actor: client.ApiClient
    """Their own credentials: every change, and pod logs."""
    reader: client.ApiClient
    """Reads after authorization (in the cluster the dashboard's ServiceAccount)."""
    requester: str
    """Who their CSRF tokens are bound to (sessions.Csrf)."""
    home_namespace: str = "default"
    """Where to look when they may not list policies cluster-wide (local mode)."""


@dataclass(frozen=True)
class Scope:
    namespaces: tuple[str, ...] = ()
    """Only these namespaces (the chart's `namespaces`); empty: all."""
    store_endpoint: str | None = None
    """Reach stores here instead of their Secrets' endpoint (local mode)."""


class StoreError(Exception):
    """The store could not be read; the message says what and why, for the page."""


def _custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def policies(viewer: Viewer, scope: Scope) -> list[dict[str, Any]]:
    """The policies the viewer may list, in namespace/name order."""
    custom = _custom(viewer.reader)
    found: list[dict[str, Any]] = []
    if scope.namespaces:
        for ns in scope.namespaces:
            listed: Any = custom.list_namespaced_custom_object(
                names.GROUP, names.VERSION, ns, names.PLURAL
            )
            found.extend(listed["items"])
    else:
        try:
            listed = custom.list_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL)
        except ApiException as e:
            if e.status != 403:
                raise
            listed = custom.list_namespaced_custom_object(
                names.GROUP, names.VERSION, viewer.home_namespace, names.PLURAL
            )
        found.extend(listed["items"])
    visible = [p for p in found if viewer.access.may("list", p["metadata"]["namespace"])]
    return sorted(visible, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))


def policy(viewer: Viewer, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = _custom(viewer.reader).get_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.PLURAL, name
    )  # type: ignore[assignment]  # the client types custom objects as `object`
    return found


def patch(viewer: Viewer, namespace: str, name: str, body: dict[str, Any]) -> None:
    """A change, as the viewer: the API server's RBAC and audit see them, not the dashboard."""
    _custom(viewer.actor).patch_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.PLURAL, name, body
    )


def store(viewer: Viewer, scope: Scope, p: dict[str, Any]) -> Quarantine:
    """The policy's store and layout (a Quarantine holds both), with its own Secret."""
    try:
        objects, layout = open_store(viewer.reader, p, scope.store_endpoint)
    except ApiException as e:
        raise StoreError(f"the policy's store Secret: {api_message(e)}") from e
    except StoreUnavailable as e:
        raise StoreError(str(e)) from e
    return Quarantine(objects, layout)


def _read_json(objects: ObjectStore, key: str) -> Any:
    try:
        return objects.get_json(key)
    except S3Error as e:
        raise StoreError(f"cannot read {key}: {e.code}: {e.message}") from e
    except (HTTPError, OSError) as e:
        raise StoreError(f"cannot reach the store for {key}: {e}") from e
    except json.JSONDecodeError as e:
        raise StoreError(f"{key} is not JSON: {e}") from e


def ledger(q: Quarantine) -> Ledger:
    raw = _read_json(q.store, q.layout.ledger_key)
    try:
        return Ledger.model_validate(raw or {})
    except ValidationError as e:
        raise StoreError(f"{q.layout.ledger_key} is not a ledger: {e}") from e


def result(q: Quarantine, run_id: str) -> RunResult | None:
    """The run's result document; None while the run has not written one."""
    key = q.layout.run_result_key(run_id)
    raw = _read_json(q.store, key)
    if raw is None:
        return None
    try:
        return RunResult.model_validate(raw)
    except ValidationError as e:
        raise StoreError(f"{key} is not a run result: {e}") from e


def held(q: Quarantine) -> list[Held]:
    try:
        return q.held()
    except S3Error as e:
        raise StoreError(f"cannot list {q.layout.quarantine_prefix}: {e.code}: {e.message}") from e
    except (HTTPError, OSError) as e:
        raise StoreError(f"cannot reach the store: {e}") from e


def events(viewer: Viewer, p: dict[str, Any], limit: int = 20) -> list[dict[str, Any]]:
    """The policy's newest Events (the operator's Event per decision)."""
    meta = p["metadata"]
    listed: Any = client.CoreV1Api(viewer.reader).list_namespaced_event(
        meta["namespace"],
        field_selector=f"involvedObject.kind={names.KIND},involvedObject.name={meta['name']}",
    )
    found = [
        {
            "type": e.type or "",
            "reason": e.reason or "",
            "message": e.message or "",
            "count": e.count or 1,
            "time": e.last_timestamp or e.event_time or e.metadata.creation_timestamp,
        }
        for e in listed.items
    ]
    found.sort(key=lambda e: e["time"] or datetime.min, reverse=True)
    return found[:limit]


@dataclass
class Step:
    time: str
    level: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Progress:
    """A run's Job while it runs: its pods, and what the trainer's log says it did."""

    job: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    log_error: str = ""


def progress(viewer: Viewer, namespace: str, job_name: str) -> Progress:
    out = Progress()
    batch = client.BatchV1Api(viewer.reader)
    try:
        # The client's models type every field optional; these are set on a created Job.
        job: Any = batch.read_namespaced_job(job_name, namespace)
    except ApiException as e:
        if e.status == 404:
            return out
        raise
    status = job.status
    out.job = {
        "name": job_name,
        "active": status.active or 0,
        "succeeded": status.succeeded or 0,
        "failed": status.failed or 0,
        "start": status.start_time,
        "completion": status.completion_time,
    }
    core = client.CoreV1Api(viewer.reader)
    pods: list[Any] = core.list_namespaced_pod(
        namespace, label_selector=f"job-name={job_name}"
    ).items
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
        waiting = next(
            (
                c.state.waiting.reason
                for c in pod.status.container_statuses or []
                if c.state and c.state.waiting
            ),
            None,
        )
        out.pods.append(
            {"name": pod.metadata.name, "phase": pod.status.phase, "waiting": waiting or ""}
        )
    if out.pods:
        out.steps, out.log_error = _steps(viewer, namespace, out.pods[-1]["name"])
    return out


def _steps(viewer: Viewer, namespace: str, pod: str) -> tuple[list[Step], str]:
    """The trainer's JSON log lines as steps; as the viewer, so RBAC on pods/log applies."""
    try:
        text = client.CoreV1Api(viewer.actor).read_namespaced_pod_log(
            pod, namespace, tail_lines=LOG_LINES
        )
    except ApiException as e:
        if e.status == 400:  # the container has not started yet
            return [], ""
        if e.status == 403:
            return [], "you may not read this pod's log (pods/log)"
        return [], api_message(e)
    steps = []
    for line in str(text).splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or "msg" not in record:
            continue
        detail = {
            k: v
            for k, v in record.items()
            if k not in ("time", "level", "msg", "logger", "component")
        }
        steps.append(
            Step(str(record.get("time", "")), str(record.get("level", "")), record["msg"], detail)
        )
    return steps, ""
