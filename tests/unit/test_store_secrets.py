"""StoreSecrets: a store Secret is read once per max age and once for many readers at
once; a failed step's `forget`, a missing Secret and an unusable one are read again."""

from __future__ import annotations

import asyncio
import base64
import threading

import pytest
from freshet.failures import Failure
from freshet.kube import ApiError
from freshet.store_secrets import StoreSecrets


def _data(bucket: str = "b") -> dict[str, str]:
    values = {"endpoint": "s3:9000", "bucket": bucket, "accessKeyID": "a", "secretAccessKey": "s"}
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


class Secrets:
    """Kube.secret_data over a dict, counting reads; `gate` holds every read."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, str]] = {("ns", "store"): _data()}
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()
        self.error: ApiError | None = None

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        self.reads += 1
        self.gate.wait(5)
        if self.error is not None:
            raise self.error
        return self.data.get((namespace, name))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _secrets() -> tuple[StoreSecrets, Secrets, Clock]:
    kube, clock = Secrets(), Clock()
    return StoreSecrets(kube, max_age=30.0, clock=clock), kube, clock  # type: ignore[arg-type]


def test_a_secret_is_read_once_per_max_age() -> None:
    async def scenario() -> None:
        secrets, kube, clock = _secrets()
        assert (await secrets.config("ns", "store", "f")).bucket == "b"
        kube.data[("ns", "store")] = _data("changed")
        clock.now += 29.0
        assert (await secrets.config("ns", "store", "f")).bucket == "b"
        assert kube.reads == 1
        clock.now += 1.0
        assert (await secrets.config("ns", "store", "f")).bucket == "changed"
        assert kube.reads == 2

    asyncio.run(scenario())


def test_forget_reads_the_secret_again_on_the_next_call() -> None:
    async def scenario() -> None:
        secrets, kube, _ = _secrets()
        await secrets.config("ns", "store", "f")
        kube.data[("ns", "store")] = _data("rotated")
        secrets.forget("ns", "store")
        assert (await secrets.config("ns", "store", "f")).bucket == "rotated"
        assert kube.reads == 2

    asyncio.run(scenario())


def test_readers_at_once_share_one_read_and_one_cancelled_does_not_cancel_it() -> None:
    async def scenario() -> None:
        secrets, kube, _ = _secrets()
        kube.gate.clear()
        readers = [asyncio.create_task(secrets.config("ns", "store", "f")) for _ in range(50)]
        await asyncio.sleep(0.1)
        readers[0].cancel()
        kube.gate.set()
        done = await asyncio.gather(*readers[1:])
        assert {c.bucket for c in done} == {"b"}
        assert kube.reads == 1

    asyncio.run(scenario())


def test_a_missing_secret_names_the_callers_field_and_is_read_again() -> None:
    async def scenario() -> None:
        secrets, kube, _ = _secrets()
        for field in ("spec.data.storeRef", "template.spec.data.storeRef"):
            with pytest.raises(Failure) as failed:
                await secrets.config("ns", "absent", field)
            assert failed.value.reason == "StoreSecretNotFound"
            assert failed.value.message == f"Secret 'absent' ({field}) not found"
        assert kube.reads == 2
        kube.data[("ns", "absent")] = _data("late")
        assert (await secrets.config("ns", "absent", "f")).bucket == "late"

    asyncio.run(scenario())


def test_an_unusable_secret_or_an_api_error_is_a_failure_and_not_kept() -> None:
    async def scenario() -> None:
        secrets, kube, _ = _secrets()
        kube.data[("ns", "store")] = {"bucket": _data()["bucket"]}
        with pytest.raises(Failure) as failed:
            await secrets.config("ns", "store", "f")
        assert failed.value.reason == "StoreSecretInvalid"
        assert "lacks key(s): endpoint, accessKeyID, secretAccessKey" in failed.value.message

        kube.data[("ns", "store")] = _data()
        kube.error = ApiError(503, "Service Unavailable")
        with pytest.raises(Failure) as failed:
            await secrets.config("ns", "store", "f")
        assert failed.value.reason == "APIUnavailable"

        kube.error = None
        assert (await secrets.config("ns", "store", "f")).bucket == "b"
        assert kube.reads == 3

    asyncio.run(scenario())


def test_secrets_nobody_reads_any_more_are_dropped() -> None:
    async def scenario() -> None:
        secrets, kube, clock = _secrets()
        kube.data[("gone", "store")] = _data()
        await secrets.config("gone", "store", "f")
        clock.now += 31.0
        await secrets.config("ns", "store", "f")
        assert set(secrets._kept) == {("ns", "store")}

    asyncio.run(scenario())
