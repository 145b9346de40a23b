"""Where the store streams bucket notifications (MinIO), arrivals trigger without polling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import scenario as sc
from devstack import s3store
from devstack.stack import Stack
from kubernetes import client
from minio import Minio


@pytest.fixture
def minio_bucket(minio_store: s3store.S3Info) -> Iterator[tuple[Minio, str]]:
    s3 = s3store.client(minio_store)
    with s3store.temporary_bucket(s3) as name:
        yield s3, name


def test_a_notification_triggers_long_before_the_poll_interval(
    kube_api: client.ApiClient,
    namespace: str,
    stack: Stack,
    minio_store: s3store.S3Info,
    minio_bucket: tuple[Minio, str],
    freshet_operator: Stack,
) -> None:
    s3, bucket = minio_bucket
    ns = namespace
    sc.store_secret(kube_api, ns, stack, bucket, store=minio_store)
    # A ten-minute poll interval: only a notification can start a run within the test.
    sc.create_policy(
        kube_api,
        ns,
        sc.policy(
            "fast",
            serving=None,
            trigger__pollIntervalSeconds=600,
            trigger__onArrival={"minBatches": 1, "quietSeconds": 0},
        ),
    )
    sc.wait_for(
        "the notification stream to be active",
        lambda: (
            (sc.get_policy(kube_api, ns, "fast").get("status") or {})
            .get("data", {})
            .get("arrivals")
            == "Notifications"
        ),
        timeout=60,
    )
    sc.put(s3, bucket, "incoming/n0.csv", sc.batch_csv(300, seed=90))
    jobs = sc.wait_for(
        "a Job for the new batch", lambda: sc.jobs_of(kube_api, ns, "fast"), timeout=30
    )
    assert len(jobs) == 1
