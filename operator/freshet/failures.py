"""What went wrong outside freshet, classified once: permanent or temporary, with a reason.

Every error a step meets from the API server or the object store becomes a
`Failure` here, so the loop never guesses: a permanent one (the API server
refused the Job: 422, 403) will fail the same way until the spec changes, so
the run is recorded as failed and no Job is tried again for that spec; a
temporary one (an outage, a missing ServiceAccount the user may still create)
is retried after `delay` and says so in status. Either way it is a condition
and an Event, never a traceback loop.
"""

from __future__ import annotations

import json
from typing import Protocol

from minio.error import S3Error
from urllib3.exceptions import HTTPError

MAX_DELAY_SECONDS = 300.0
RBAC_HINT = (
    "in cluster mode a namespace's admin lets freshet in with a RoleBinding to"
    " ClusterRole freshet-operator-tenant: docs/install.md"
)


class ApiErrorLike(Protocol):
    """An API server's error answer: freshet.kube.ApiError in the operator, the
    `kubernetes` client's ApiException in the dashboard and `kubectl freshet`."""

    @property
    def status(self) -> int | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def body(self) -> str | None: ...


class Failure(Exception):
    """A classified failure: `reason` is the condition's and the Event's (CamelCase);
    a temporary one is tried again after `delay` seconds."""

    def __init__(
        self, reason: str, message: str, *, permanent: bool = False, delay: float = 10.0
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message, self.permanent, self.delay = reason, message, permanent, delay


def api_message(e: ApiErrorLike) -> str:
    """The API server's own words (the Status message), not the HTTP dump."""
    try:
        return str(json.loads(e.body or "{}").get("message") or e.reason)
    except (ValueError, AttributeError):
        return str(e.reason)


def from_api(e: ApiErrorLike, what: str, *, rejected: str) -> Failure:
    """Classify an API error met doing `what` (e.g. "create Job x").

    `rejected` is the reason for a request the API server refused as invalid
    (`JobRejected`, ...): the same request is refused again until the spec changes.
    """
    said = api_message(e)
    message = f"cannot {what}: {said}"
    if e.status in (400, 422):
        return Failure(rejected, message, permanent=True)
    if e.status == 403:
        if " cannot " in said:  # RBAC's words, not an admission policy's
            message += f" ({RBAC_HINT})"
        return Failure("Forbidden", message, permanent=True)
    return Failure("APIUnavailable", message, delay=10.0)


def from_store(e: Exception, what: str) -> Failure:
    """Classify an object-store error met doing `what` (e.g. "save the ledger")."""
    if isinstance(e, S3Error) and e.code in ("AccessDenied", "InvalidAccessKeyId"):
        return Failure("StoreAccessDenied", f"cannot {what}: {e.code}: {e.message}", delay=60.0)
    return Failure("StoreUnavailable", f"cannot {what}: {type(e).__name__}: {e}", delay=10.0)


STORE_ERRORS = (S3Error, HTTPError, OSError, ValueError)
"""What the minio client raises for an unreachable, refusing or misbehaving store."""


def backoff(attempts: int) -> float:
    """Seconds before retrying an unexpected error for the `attempts`-th time in a row."""
    return float(min(MAX_DELAY_SECONDS, 10.0 * 2.0 ** max(0, attempts - 1)))
