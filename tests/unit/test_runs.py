"""Run ids, model versions and the training window."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from freshet.batches import Batch
from freshet.decisions.runs import RunPhase, run_id, select_window

UID = "6f1c2d4e-0000-4000-8000-000000000001"
T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def batch(key: str, minute: int, etag: str | None = None) -> Batch:
    return Batch(key, etag or f"etag-{key}", 10, T0 + timedelta(minutes=minute))


A, B, C = batch("a.csv", 0), batch("b.csv", 1), batch("c.csv", 2)


def test_run_id_follows_the_contract_formula() -> None:
    digest = hashlib.sha256(f"{UID}\na.csv:etag-a.csv\nb.csv:etag-b.csv\nv3".encode()).hexdigest()
    assert run_id("spam-filter", UID, [B, A], "v3") == f"spam-filter-{digest[:10]}"


def test_a_retry_adds_its_attempt_to_the_hash() -> None:
    """A failed run gives its version back: the attempt keeps the retry's Job apart."""
    lines = f"{UID}\na.csv:etag-a.csv\nb.csv:etag-b.csv\nv3\n2"
    digest = hashlib.sha256(lines.encode()).hexdigest()
    assert run_id("spam-filter", UID, [B, A], "v3", 2) == f"spam-filter-{digest[:10]}"


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(("p", UID, [A], "v1", 0), ("p", UID, [A], "v1"), True,
                     id="attempt 0 is the formula without it"),
        pytest.param(("p", UID, [A], "v1", 1), ("p", UID, [A], "v1", 0), False,
                     id="a retry over the same batches and version is another run"),
        pytest.param(("p", UID, [A], "v1", 1), ("p", UID, [A], "v1", 2), False,
                     id="every retry is another run"),
        pytest.param(("p", UID, [A], "v1", 1), ("p", UID, [A], "v2"), False,
                     id="a retry is not a later version"),
    ],
)  # fmt: skip
def test_run_id_of_retries(
    left: tuple[str, str, list[Batch], str, int],
    right: tuple[str, str, list[Batch], str] | tuple[str, str, list[Batch], str, int],
    same: bool,
) -> None:
    assert (run_id(*left) == run_id(*right)) is same


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(("p", UID, [A, B], "v1"), ("p", UID, [B, A], "v1"), True,
                     id="order-independent"),
        pytest.param(("p", UID, [A, B], "v1"), ("p", "other-uid", [A, B], "v1"), False,
                     id="uid matters"),
        pytest.param(("p", UID, [A], "v1"), ("p", UID, [batch("a.csv", 0, "new")], "v1"), False,
                     id="etag matters"),
        pytest.param(("p", UID, [A], "v1"), ("p", UID, [A, B], "v1"), False, id="set matters"),
        pytest.param(("p", UID, [A], "v1"), ("p", UID, [A], "v2"), False,
                     id="a later run over the same batches is another run"),
        pytest.param(("p", UID, [A], "v1"),
                     ("p", UID, [Batch("a.csv", '"etag-a.csv"', 1, T0)], "v1"),
                     True, id="quoted etag is the same content"),
    ],
)  # fmt: skip
def test_run_id_identity(
    left: tuple[str, str, list[Batch], str], right: tuple[str, str, list[Batch], str], same: bool
) -> None:
    assert (run_id(*left) == run_id(*right)) is same


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("spam-filter", "spam-filter"),
        ("a" * 60, "a" * 40),
        ("models.team-a.spam", "models-team-a-spam"),
        ("x" * 39 + "-tail", "x" * 39),  # no '-' left dangling before the hash
        ("x" * 39 + ".tail", "x" * 39),
    ],
)
def test_run_id_is_a_dns_label_and_job_name(name: str, prefix: str) -> None:
    rid = run_id(name, UID, [A], "v1")
    assert rid.startswith(prefix + "-")
    assert DNS_LABEL.fullmatch(rid)
    assert len(rid) <= 51


D, E = batch("d.csv", 3), batch("e.csv", 4)


@pytest.mark.parametrize(
    ("consumed", "new", "max_batches", "expected"),
    [
        pytest.param([A, B], [C], None, [A, B, C], id="all history"),
        pytest.param([A, B, C], [D, E], 3, [C, D, E], id="most recent maxBatches"),
        pytest.param([], [E, D, C], None, [C, D, E], id="oldest first"),
        pytest.param([A, B], [C, D, E], 2, [D, E], id="window smaller than the burst"),
        pytest.param([A, B], [batch("a.csv", 5, "v2")], None,
                     [B, batch("a.csv", 5, "v2")], id="overwritten key counted once, as new"),
        pytest.param([batch("y", 0), batch("x", 0)], [], None, [batch("x", 0), batch("y", 0)],
                     id="same time ordered by key"),
        pytest.param([], [], 5, [], id="nothing"),
    ],
)  # fmt: skip
def test_select_window(
    consumed: list[Batch], new: list[Batch], max_batches: int | None, expected: list[Batch]
) -> None:
    assert select_window(consumed, new, max_batches) == tuple(expected)


@pytest.mark.parametrize(
    ("phase", "finished"),
    [
        (RunPhase.PENDING, False),
        (RunPhase.RUNNING, False),
        (RunPhase.PROMOTED, True),
        (RunPhase.REJECTED, True),
        (RunPhase.FAILED, True),
    ],
)
def test_run_phase_finished(phase: RunPhase, finished: bool) -> None:
    assert phase.finished is finished
