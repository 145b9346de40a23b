"""`freshet-quarantine`: list and release, idempotent, against the real S3 server."""

from __future__ import annotations

import pytest
from freshet_trainer.quarantine import Quarantine, main
from freshet_trainer.store import ObjectStore

ROOT = "freshet/ml/demo/"
KEY = "in/2026/bad.csv"
DATA = b"x1,y\n1,0\n"


def quarantined(store: ObjectStore) -> Quarantine:
    """The layout the operator leaves: the batch and its reason under quarantine/."""
    store.put_bytes(f"{ROOT}quarantine/{KEY}", DATA)
    store.put_json(
        f"{ROOT}quarantine/{KEY}.reason.json",
        {"key": KEY, "etag": "e", "reason": "LabelMissing", "message": "no column 'y'"},
    )
    return Quarantine.for_policy(store, "ml", "demo")


def settled(store: ObjectStore) -> bool:
    """Back under the original key, with the same bytes, and nothing left in quarantine/."""
    return store.get_bytes(KEY) == DATA and not list(store.list_keys(f"{ROOT}quarantine/"))


def test_list_and_release(
    store: ObjectStore, capsys: pytest.CaptureFixture[str], s3_env: dict[str, str]
) -> None:
    quarantined(store)

    assert main(["--policy", "ml/demo", "list"]) == 0
    assert capsys.readouterr().out == f"{KEY}\tLabelMissing: no column 'y'\n"

    assert main(["--policy", "ml/demo", "release", KEY]) == 0
    assert capsys.readouterr().out == f"released {KEY}\n"
    assert settled(store)

    assert main(["--policy", "ml/demo", "release", f"{ROOT}quarantine/{KEY}"]) == 0
    assert capsys.readouterr().out == f"{KEY} was already released\n"
    assert settled(store)


@pytest.mark.parametrize("crash_after", ["copy", "remove"])
def test_release_finishes_after_a_crash_between_steps(store: ObjectStore, crash_after: str) -> None:
    quarantine = quarantined(store)
    store.copy(f"{ROOT}quarantine/{KEY}", KEY)  # the first step of a release that then died
    if crash_after == "remove":
        store.remove(f"{ROOT}quarantine/{KEY}")

    assert quarantine.release(KEY) is (crash_after == "copy")
    assert settled(store)


def test_releasing_what_was_never_quarantined_fails(
    store: ObjectStore, capsys: pytest.CaptureFixture[str], s3_env: dict[str, str]
) -> None:
    assert main(["--policy", "ml/demo", "release", "in/nothing.csv"]) == 2
    assert "neither in freshet/ml/demo/quarantine/" in capsys.readouterr().err


def test_a_missing_reason_document_is_listed_anyway(store: ObjectStore) -> None:
    store.put_bytes(f"{ROOT}quarantine/{KEY}", DATA)

    assert Quarantine.for_policy(store, "ml", "demo").held() == [(KEY, "(no reason document)")]
