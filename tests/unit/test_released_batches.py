"""A batch released from quarantine (same key, same ETag) becomes pending again, and only then."""

from __future__ import annotations

from datetime import UTC, datetime

from freshet.batches import Batch
from freshet.ledger import Ledger
from freshet.snapshot import PolicyFacts, Slots, Snapshot, find_released
from freshet.spec import PolicySpec
from freshet_contract.layout import StateLayout
from policies import minimal_spec

SPEC = PolicySpec.model_validate(minimal_spec("Dynamic"))
WHEN = datetime(2026, 11, 27, tzinfo=UTC)
HELD = "freshet/ml/demo/quarantine/spam/incoming/bad.csv"


class Listing:
    def __init__(self, *objects: tuple[str, str]) -> None:
        self.listed = tuple(Batch(key, etag, 10, WHEN) for key, etag in objects)


class Store:
    def __init__(self, *keys: str) -> None:
        self.keys = set(keys)

    def etag(self, key: str) -> str | None:
        return "e" if key in self.keys else None


def pending_keys(listing: Listing, store: Store) -> list[str]:
    book = Ledger(quarantined={"spam/incoming/bad.csv": "e1"})
    layout = StateLayout.for_policy("ml", "demo")
    snap = Snapshot(
        now=WHEN,
        policy=PolicyFacts(
            namespace="ml",
            name="demo",
            uid="uid",
            generation=1,
            created=WHEN,
            retrain_request=None,
            rollback_request=None,
        ),
        spec=SPEC,
        ledger=book,
        bucket="b",
        batches=listing.listed,
        released=find_released(store.etag, layout, book.quarantined, listing.listed),
        slots=Slots(0, 0, 1, 1),
    )
    return [batch.key for batch in snap.pending()]


def test_a_quarantined_batch_still_held_is_not_pending() -> None:
    """E.g. the listing predates the move, or a move was interrupted after the copy."""
    listing = Listing(("spam/incoming/bad.csv", "e1"), ("spam/incoming/new.csv", "e2"))

    assert pending_keys(listing, Store(HELD)) == ["spam/incoming/new.csv"]


def test_a_released_batch_is_pending_again() -> None:
    listing = Listing(("spam/incoming/bad.csv", "e1"), ("spam/incoming/new.csv", "e2"))

    assert pending_keys(listing, Store()) == ["spam/incoming/bad.csv", "spam/incoming/new.csv"]


def test_a_batch_overwritten_with_new_content_is_pending_whatever_quarantine_holds() -> None:
    assert pending_keys(Listing(("spam/incoming/bad.csv", "e9")), Store(HELD)) == [
        "spam/incoming/bad.csv"
    ]


def test_a_released_batch_leaves_the_quarantine_record_once_a_run_used_it() -> None:
    book = Ledger(
        quarantined={
            "spam/incoming/bad.csv": "e1",  # released, then trained on
            "spam/incoming/again.csv": "e2",  # released, refused again by the run
            "spam/incoming/held.csv": "e3",  # still in quarantine
            "spam/incoming/rewritten.csv": "old",  # the run used new content
        }
    )
    used = {
        "spam/incoming/bad.csv": "e1",
        "spam/incoming/again.csv": "e2",
        "spam/incoming/rewritten.csv": "new",
        "spam/incoming/good.csv": "e4",
    }
    book.forget_released(used, requarantined={"spam/incoming/again.csv"})
    assert book.quarantined == {
        "spam/incoming/again.csv": "e2",
        "spam/incoming/held.csv": "e3",
        "spam/incoming/rewritten.csv": "old",
    }
