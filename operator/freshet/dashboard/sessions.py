"""Logins and CSRF tokens.

A pasted token stays on the server: the browser holds only a random session id
in an HttpOnly, SameSite=Strict cookie, and sessions live in memory (a restart
logs everyone out; the chart runs one replica). Every form carries a CSRF token
bound to whoever is asking (the session, the forwarded bearer token, or the
local kubeconfig user), so a page on another site cannot make a user's browser
act, even behind a proxy that adds the Authorization header to every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from freshet.dashboard.access import User

COOKIE = "freshet-session"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Login:
    token: str
    user: User
    expires: float


class Sessions:
    def __init__(self, seconds: float = SESSION_SECONDS) -> None:
        self._seconds = seconds
        self._logins: dict[str, Login] = {}

    def open(self, token: str, user: User) -> str:
        """A new session for a reviewed token; returns its id for the cookie."""
        self._expire()
        sid = secrets.token_urlsafe(32)
        self._logins[sid] = Login(token, user, time.monotonic() + self._seconds)
        return sid

    def get(self, sid: str | None) -> Login | None:
        login = self._logins.get(sid or "")
        if login is None or login.expires < time.monotonic():
            return None
        return login

    def close(self, sid: str | None) -> None:
        self._logins.pop(sid or "", None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, login in self._logins.items() if login.expires < now]:
            del self._logins[sid]


class Csrf:
    """Stateless tokens: an HMAC of the requester's identity under a per-process key."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def token(self, requester: str) -> str:
        return hmac.new(self._key, requester.encode(), hashlib.sha256).hexdigest()

    def check(self, requester: str, presented: str | None) -> bool:
        return hmac.compare_digest(self.token(requester), str(presented or ""))


def bearer_requester(token: str) -> str:
    """The CSRF identity of a request that carries its own bearer token."""
    return "bearer:" + hashlib.sha256(token.encode()).hexdigest()
