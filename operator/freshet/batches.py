"""A batch: one object under a policy's prefix, the unit freshet trains on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Batch:
    """One data file as the store lists it.

    ``etag`` identifies the content: a key overwritten with new content is a new
    batch. ``rows`` is known only when the producer says so (object metadata);
    the operator never opens data to count it.
    """

    key: str
    etag: str
    size: int
    last_modified: datetime
    rows: int | None = None

    def __post_init__(self) -> None:
        # S3 returns ETags quoted ("abc"); some clients strip the quotes. Compare
        # and hash them unquoted so both spellings name the same content.
        object.__setattr__(self, "etag", self.etag.strip('"'))
